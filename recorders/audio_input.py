"""Microphone input for recording (DESIGN.md section 4): discovery, a PortAudio input stream, stream spec.

This module owns everything that touches sounddevice; nothing else imports it. Samples flow:

    PortAudio's thread -> AudioRecorder._callback (counts overflows, stamps the chunk's first sample
      on time.monotonic()) -> BlockAssembler (fixed blocks of block_ms) -> on_block(t, (n, channels) float32)

on_block runs on PortAudio's thread, so it must not block: EpisodeWriter.append with its default
drop_when_full does not. Episodes store audio as kind "array", float32 (samples_per_block, channels),
one row per block at 1000 / block_ms Hz, its time that of the block's first sample: the episode
format's "audio" kind holds one int16 sample per row, which would mean one writer append per sample.
A partial block at stop() (under block_ms) is not delivered. sounddevice is imported on first use:
without it (or without libportaudio2, when its import raises OSError) `list_microphones` returns []
with a reason and `start` raises AudioError naming the fix.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from recorders.episode_file import StreamSpec

BlockCallback = Callable[[float, np.ndarray], None]
_INSTALL = "install it with: pip install 'sounddevice>=0.4.6' (the `hardware` extra)"
_NONE_FOUND = ("no microphone found (PortAudio lists no input device; plug one in, and check that this user "
               "may use sound devices, e.g. is in the `audio` group)")


class AudioError(RuntimeError):
    """A microphone cannot be found or opened; the message says what to do."""


@dataclass(frozen=True)
class MicrophoneInfo:
    index: int  # PortAudio device index: AudioRecorder(device=index)
    name: str
    channels: int  # input channels
    default_samplerate: float


class MicrophoneList(list):
    """`list_microphones`' answer: the microphones found, and `reason` (one line) when there are none."""

    def __init__(self, microphones=(), reason: str = ""):
        super().__init__(microphones)
        self.reason = reason


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def import_sounddevice():
    """The sounddevice module, or AudioError saying how to install it or PortAudio."""
    try:
        import sounddevice as sd
    except ModuleNotFoundError as e:
        if e.name == "sounddevice":
            raise AudioError(f"sounddevice is not installed; {_INSTALL}") from e
        raise AudioError(f"sounddevice cannot be imported ({_one_line(e)}); reinstall it: {_INSTALL}") from e
    except (ImportError, OSError) as e:  # sounddevice raises OSError when libportaudio is missing
        raise AudioError(f"sounddevice cannot load PortAudio ({_one_line(e)}); install the system library "
                         "libportaudio2 (tools/bootstrap.sh does)") from e
    return sd


def list_microphones() -> MicrophoneList:
    """The input devices PortAudio sees now; never raises (an empty list carries the reason)."""
    try:
        sd = import_sounddevice()
        found = [MicrophoneInfo(int(d.get("index", i)), str(d["name"]), int(d["max_input_channels"]),
                                float(d["default_samplerate"]))
                 for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]
    except AudioError as e:
        return MicrophoneList(reason=str(e))
    except Exception as e:  # noqa: BLE001 - a PortAudio failure is reported, not raised
        return MicrophoneList(reason=f"microphones could not be listed ({_one_line(e)})")
    return MicrophoneList(found) if found else MicrophoneList(reason=_NONE_FOUND)


def input_latency(time_info, frames: int, samplerate: float) -> float:
    """Seconds from the chunk's first sample at the ADC to now: PortAudio's own figure when the host API
    reports one, else the chunk's duration (the callback runs once the chunk is complete)."""
    lag = time_info.currentTime - time_info.inputBufferAdcTime
    if time_info.inputBufferAdcTime > 0 and 0.0 <= lag < 1.0:
        return lag
    return frames / samplerate


class BlockAssembler:
    """Cuts contiguous chunks of any length into blocks of exactly `samples_per_block` rows, each
    stamped with the time of its first sample (from the time of the chunk it starts in)."""

    def __init__(self, samplerate: float, channels: int, samples_per_block: int):
        self.samplerate, self.channels = float(samplerate), int(channels)
        self.samples_per_block = int(samples_per_block)
        self._buf = np.zeros((self.samples_per_block, self.channels), np.float32)  # (n, channels)
        self._fill, self._t = 0, 0.0

    def feed(self, t_first: float, chunk: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """Add `chunk` (m, channels), its first sample taken at `t_first`; returns the completed blocks."""
        if chunk.ndim != 2 or chunk.shape[1] != self.channels:
            raise ValueError(f"expected chunks of shape (m, {self.channels}), got {chunk.shape}")
        blocks, i = [], 0
        while i < len(chunk):
            if self._fill == 0:
                self._t = t_first + i / self.samplerate
            k = min(len(chunk) - i, self.samples_per_block - self._fill)
            self._buf[self._fill:self._fill + k] = chunk[i:i + k]
            self._fill, i = self._fill + k, i + k
            if self._fill == self.samples_per_block:
                blocks.append((self._t, self._buf.copy()))
                self._fill = 0
        return blocks

    def reset(self) -> None:
        self._fill = 0


class AudioRecorder:
    """Records one microphone (`device`: a PortAudio index or name part; None: the default input).

    start(); stream_spec(name, recorder) for the writer; set `on_block`; ...; stop(). Counters:
    `blocks` delivered, `overflows` (PortAudio lost input because a callback came late). `error` keeps
    the first failure of on_block, which cannot be raised on PortAudio's thread.
    """

    def __init__(self, device: int | str | None = None, samplerate: int = 16000, channels: int = 1,
                 block_ms: int = 50, on_block: BlockCallback | None = None):
        if samplerate <= 0 or channels < 1 or block_ms <= 0:
            raise ValueError(f"need samplerate > 0, channels >= 1, block_ms > 0; got {samplerate}, {channels}, "
                             f"{block_ms}")
        if samplerate * block_ms % 1000:
            raise ValueError(f"block_ms={block_ms} is not a whole number of samples at {samplerate} Hz")
        self.device, self.samplerate, self.channels = device, int(samplerate), int(channels)
        self.block_ms = int(block_ms)
        self.samples_per_block = self.samplerate * self.block_ms // 1000
        self.on_block = on_block  # read per block, so it may be set after start()
        self.device_name = ""
        self.blocks, self.overflows = 0, 0
        self.error: AudioError | None = None
        self._assembler = BlockAssembler(self.samplerate, self.channels, self.samples_per_block)
        self._stream = None

    def start(self) -> None:
        """Open the microphone and start recording; AudioError (with the fix) if it cannot."""
        if self._stream is not None:
            raise AudioError(f"the microphone {self.device_name!r} is already recording")
        sd = import_sounddevice()
        which = "the default microphone" if self.device is None else f"microphone {self.device!r}"
        try:
            info = sd.query_devices(self.device, "input")
            sd.check_input_settings(device=self.device, channels=self.channels, dtype="float32",
                                    samplerate=self.samplerate)
        except ValueError as e:  # no such device, or not an input
            raise AudioError(f"no {which} ({_one_line(e)}); pick one from list_microphones()") from e
        except sd.PortAudioError as e:
            if self.device is None:
                raise AudioError(f"no default microphone ({_one_line(e)}); plug one in or pass device=") from e
            raise AudioError(f"{which} cannot record {self.channels} channel(s) at {self.samplerate} Hz "
                             f"({_one_line(e)}); use its default rate or fewer channels (list_microphones())") from e
        self.device_name = str(info["name"])
        self.blocks, self.overflows, self.error = 0, 0, None
        self._assembler.reset()
        try:
            stream = sd.InputStream(device=self.device, samplerate=self.samplerate, channels=self.channels,
                                    dtype="float32", blocksize=self.samples_per_block, callback=self._callback,
                                    finished_callback=self._finished)
            stream.start()
        except sd.PortAudioError as e:
            busy = any(w in str(e).lower() for w in ("busy", "unavailable"))
            fix = "another program has it open; close that program" if busy else "replug it and try again"
            raise AudioError(f"{which} ({self.device_name}) cannot be opened ({_one_line(e)}); {fix}") from e
        self._stream = stream

    def stop(self) -> None:
        """Stop recording and release the microphone; safe to call twice."""
        if self._stream is None:
            return
        stream, self._stream = self._stream, None
        try:
            stream.stop()  # returns after the last callback
        finally:
            stream.close()

    @property
    def recording(self) -> bool:
        return self._stream is not None

    def __enter__(self) -> "AudioRecorder":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _finished(self) -> None:
        """PortAudio ended the stream: unless stop() did (it clears `_stream` first), the device is gone."""
        if self._stream is not None and self.error is None:
            self.error = AudioError(f"the microphone {self.device_name!r} stopped delivering sound (unplugged or "
                                    "taken by another program); the take goes on without sound: plug it back in "
                                    "and choose it again in Record")

    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        """On PortAudio's thread, once per chunk: must neither block nor raise (raising ends the stream)."""
        now = time.monotonic()
        if status.input_overflow:
            self.overflows += 1
        try:  # indata (frames, channels) is PortAudio's buffer: the assembler copies it
            for t, block in self._assembler.feed(now - input_latency(time_info, frames, self.samplerate), indata):
                if self.on_block is not None:
                    self.on_block(t, block)
                self.blocks += 1
        except Exception as e:  # noqa: BLE001 - kept for the recorder to report
            if self.error is None:
                self.error = AudioError(f"on_block failed for {self.device_name}: {_one_line(e)}")


def stream_spec(name: str, recorder: AudioRecorder) -> StreamSpec:
    """The episode stream of `recorder`'s blocks: kind "array", float32 (samples_per_block, channels) at
    1000 / block_ms Hz; each row's time is its first sample's (see the module docstring for why)."""
    return StreamSpec(name, "array", (recorder.samples_per_block, recorder.channels), "float32",
                      1000.0 / recorder.block_ms,
                      {"samplerate": recorder.samplerate, "channels": recorder.channels, "block_ms": recorder.block_ms,
                       "device": recorder.device_name, "time": "first sample of each block"})
