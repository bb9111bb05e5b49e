"""Sound output for playing an episode's audio back (DESIGN.md sections 4 and 9): a PortAudio output stream.

This module owns everything that plays sound through sounddevice (recorders/audio_input.py owns the
microphone and the lazy `import_sounddevice` both use). Samples flow the other way round from recording:

    PortAudio's thread -> _SoundDeviceStream._callback(outdata) -> fill(outdata) (the player copies
      the episode's samples at its read position into outdata and counts them: that count is its clock)

A `SoundOutput` opens started streams; `SoundDeviceOutput` is the real one, and tests hand the player
another implementation that consumes samples when the test says so (there is no sound device in CI).
Opening raises `AudioOutputError` with a one-line message naming the fix (no sounddevice, no
libportaudio2, no output device, a rate the device refuses); the player shows it and plays silently.
"""
from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from recorders.audio_input import AudioError, import_sounddevice

FillCallback = Callable[[np.ndarray], None]  # fills (frames, channels) float32 in place; on the audio thread
_NO_DEVICE = ("no sound output device (PortAudio lists none: plug in speakers or headphones, and check that this "
              "user may use sound devices, e.g. is in the `audio` group)")


class AudioOutputError(AudioError):
    """Sound cannot be played; the message is one line saying why and what to do."""


class OutputStream(Protocol):
    """A started output stream; `latency_s` is how long a sample takes from `fill` to the speaker."""

    latency_s: float

    def close(self) -> None: ...


class SoundOutput(Protocol):
    """Opens started output streams: `fill` is called for every buffer the device wants."""

    def open(self, samplerate: int, channels: int, fill: FillCallback) -> OutputStream: ...


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


class _SoundDeviceStream:
    def __init__(self, sd, fill: FillCallback, **settings):
        self._fill = fill
        self._stream = sd.OutputStream(dtype="float32", callback=self._callback, **settings)
        self._stream.start()
        self.latency_s = float(self._stream.latency or 0.0)

    def _callback(self, outdata: np.ndarray, frames: int, time_info, status) -> None:
        """On PortAudio's thread: must neither block nor raise (raising ends the stream)."""
        try:
            self._fill(outdata)
        except Exception:  # noqa: BLE001 - silence rather than a dead stream; the clock stops with it
            outdata.fill(0.0)

    def close(self) -> None:
        try:
            self._stream.abort()  # drop what is buffered: a pause is heard at once
        finally:
            self._stream.close()


class SoundDeviceOutput:
    """The sound card through PortAudio: `device` is an index or name part, None the default output."""

    def __init__(self, device: int | str | None = None, latency: str = "low"):
        self.device, self.latency = device, latency

    def open(self, samplerate: int, channels: int, fill: FillCallback) -> OutputStream:
        try:
            sd = import_sounddevice()
        except AudioError as e:  # not installed, or no libportaudio2: the message names the fix
            raise AudioOutputError(str(e)) from e
        which = "the default sound output" if self.device is None else f"sound output {self.device!r}"
        try:
            info = sd.query_devices(self.device, "output")
        except (ValueError, sd.PortAudioError) as e:  # no such device; or PortAudio has no default output
            raise AudioOutputError(_NO_DEVICE if self.device is None else
                                   f"no {which} ({_one_line(e)}); pick another output device") from e
        name = str(info["name"])
        try:
            sd.check_output_settings(device=self.device, channels=channels, dtype="float32", samplerate=samplerate)
        except (ValueError, sd.PortAudioError) as e:
            raise AudioOutputError(f"{name} cannot play {channels} channel(s) at {samplerate} Hz "
                                   f"({_one_line(e)}); choose an output that resamples (e.g. PulseAudio's)") from e
        try:
            return _SoundDeviceStream(sd, fill, device=self.device, samplerate=samplerate, channels=channels,
                                      latency=self.latency)
        except sd.PortAudioError as e:
            raise AudioOutputError(f"{name} cannot be opened ({_one_line(e)}); close the program using it "
                                   "or replug it") from e
