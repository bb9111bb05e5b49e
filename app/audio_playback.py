"""An episode's audio for annotating: the samples placed on the episode clock, their envelope, playback.

Data flow:
```
episode stream "audio" (blocks, each row stamped with its first sample's time)
  -> AudioTrack.from_episode: one contiguous (S, channels) float32 signal on the episode clock;
     a dropped block leaves silence where it belonged
  -> AudioTrack.envelope(): min/max per ENVELOPE_HZ bucket, once per episode (vectorised; the
     waveform view reduces it further to one bucket per pixel with `reduce_envelope`)
  -> AudioPlayback.start(t): a sound output (recorders/audio_output.py) pulls samples from t on;
     `time()` is the playback clock: the samples heard so far when sound plays, else a monotonic clock
```
The video follows `time()`, so picture and narration stay together even when the sound card's
clock drifts from the computer's. Seeking while playing moves the read position at once, without
reopening the device. Nothing here imports Qt; the sound output is injectable, and tests hand in one
that consumes samples when told to.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from recorders.audio_output import AudioOutputError, SoundDeviceOutput, SoundOutput
from recorders.episode_file import Episode

AUDIO_STREAM = "audio"  # the stream recorders/audio_input.stream_spec describes
ENVELOPE_HZ = 200  # envelope buckets per second: 5 ms, finer than any pixel of a whole take
MAX_SPAN_S = 4 * 3600.0  # timestamps spanning more than this are damaged, not a take
STALL_S = 0.5  # an output that asks for nothing this long after its last buffer ran out has stopped


@dataclass(frozen=True)
class Envelope:
    """min and max of the samples (all channels) per bucket; `times` are the buckets' centres."""

    times: np.ndarray  # (K,) seconds on the episode clock
    lo: np.ndarray  # (K,) float32
    hi: np.ndarray  # (K,) float32

    @property
    def peak(self) -> float:
        return float(max(np.abs(self.lo).max(initial=0.0), np.abs(self.hi).max(initial=0.0)))


def reduce_envelope(lo: np.ndarray, hi: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge every `factor` buckets into one: (first index of each group, its min, its max)."""
    starts = np.arange(0, len(lo), max(1, int(factor)))
    if len(starts) == 0:
        return starts, lo[:0], hi[:0]
    return starts, np.minimum.reduceat(lo, starts), np.maximum.reduceat(hi, starts)


def block_offsets(times: np.ndarray, block: int, samplerate: float) -> np.ndarray:
    """Sample offset of each block from the first, given its first sample's time (sorted).

    Block times jitter by the audio callback's scheduling (milliseconds: dozens of samples), so a
    block within half a block of where the previous one ended continues it exactly; placing each by
    its own time would leave clicks of silence or overlap at every block. One within half a block of
    a whole number of blocks later follows that many dropped blocks (the writer fell behind; the
    microphone did not stop). Anything else (a clock jump) is placed by its own time. So every block
    lands within half a block of its time, and a sound card drifting from the computer's clock is
    caught up with a block of silence (or an overlap) whenever the drift reaches half a block."""
    raw = np.rint((times - times[0]) * samplerate).astype(np.int64)  # (N,)
    if block <= 1 or len(raw) < 2:
        return raw
    offsets, tolerance, previous = [0], block // 2, 0
    for r in raw[1:].tolist():  # a loop over blocks (12k for 10 minutes in 50 ms blocks): a few ms
        expected = previous + block
        skipped = round((r - expected) / block)
        on_grid = skipped >= 0 and abs(r - expected - skipped * block) <= tolerance
        previous = expected + skipped * block if on_grid else r
        offsets.append(previous)
    return np.asarray(offsets, np.int64)


@dataclass(frozen=True)
class AudioTrack:
    """An episode's audio as one signal: `samples[i]` was heard at `t_start + i / samplerate`."""

    samplerate: int
    samples: np.ndarray  # (S, channels) float32; zeros where blocks are missing
    t_start: float  # episode-clock time of samples[0]
    blocks: int  # blocks recorded
    missing_blocks: int  # blocks dropped between them (silent here)

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.samplerate

    def describe(self) -> str:
        chans = "mono" if self.channels == 1 else f"{self.channels} channels"
        gaps = f", {self.missing_blocks} dropped block(s) silent" if self.missing_blocks else ""
        return f"audio {self.samplerate / 1000:g} kHz {chans}, {self.duration_s:.1f} s{gaps}"

    def index_at(self, t: float) -> int:
        """The sample heard at episode time t (negative or past the end: outside the track)."""
        return int(math.floor((t - self.t_start) * self.samplerate + 0.5))

    def read(self, start: int, n: int) -> np.ndarray:
        """Samples [start, start + n) as (n, channels) float32, silent outside the track."""
        out = np.zeros((n, self.channels), np.float32)
        lo, hi = max(start, 0), min(start + n, len(self.samples))
        if lo < hi:
            out[lo - start:hi - start] = self.samples[lo:hi]
        return out

    def envelope(self, hz: int = ENVELOPE_HZ) -> Envelope:
        bucket = max(1, self.samplerate // hz)
        full = len(self.samples) // bucket
        body = self.samples[:full * bucket].reshape(full, -1)  # (K, bucket * channels), a view
        lo, hi = body.min(axis=1, initial=np.inf), body.max(axis=1, initial=-np.inf)
        tail = self.samples[full * bucket:]
        if len(tail):
            lo, hi = np.append(lo, tail.min()), np.append(hi, tail.max())
        times = self.t_start + (np.arange(len(lo)) + 0.5) * bucket / self.samplerate
        return Envelope(times, lo.astype(np.float32), hi.astype(np.float32))

    @staticmethod
    def from_episode(ep: Episode, name: str = AUDIO_STREAM) -> "AudioTrack | None":
        """The episode's audio, or None when it has none; ValueError (one line) when the stream is unusable.

        Blocks are kind "array" (samples_per_block, channels) float32 with the rate in meta
        `samplerate` (recorders/audio_input.py); the format's "audio" kind, one int16 sample per row at
        rate_hz, reads too."""
        if name not in ep.stream_names or ep.stream_count(name) == 0:
            return None
        spec = ep.stream_spec(name)
        n = ep.stream_count(name)
        if spec.kind == "array" and len(spec.shape) == 2:
            samplerate = spec.meta.get("samplerate")
            if not isinstance(samplerate, (int, float)) or samplerate <= 0:
                raise ValueError(f"audio stream {name!r} has no samplerate in its meta")
            blocks = np.asarray(ep.stream_data(name)[:n], np.float32)  # (N, block, channels)
        elif spec.kind == "audio":
            samplerate = spec.meta.get("samplerate", spec.rate_hz)
            blocks = (np.asarray(ep.stream_data(name)[:n], np.float32) / 32768.0)[:, None, :]  # (N, 1, channels)
        else:
            raise ValueError(f"stream {name!r} is not audio ({spec.kind} {spec.shape})")
        times = ep.stream_time(name)
        keep = np.isfinite(times)
        return AudioTrack.from_blocks(times[keep], blocks[keep], int(round(samplerate)))

    @staticmethod
    def from_blocks(times: np.ndarray, blocks: np.ndarray, samplerate: int) -> "AudioTrack":
        """Place `blocks` (N, block, channels), each starting at `times[i]`, on one signal."""
        times = np.asarray(times, float)
        if np.any(np.diff(times) < 0):  # written in order; sorting copies the whole take
            order = np.argsort(times, kind="stable")
            times, blocks = times[order], blocks[order]
        n, block, channels = blocks.shape
        if n == 0:
            raise ValueError("the audio stream has no readable blocks")
        if times[-1] - times[0] > MAX_SPAN_S:
            raise ValueError(f"the audio's times span {(times[-1] - times[0]) / 3600:.0f} h; they are damaged")
        offsets = block_offsets(times, block, samplerate)
        breaks = np.flatnonzero(np.diff(offsets) != block) + 1
        if len(breaks) == 0:  # nothing dropped: the blocks already are the signal
            samples = np.ascontiguousarray(blocks, np.float32).reshape(n * block, channels)
        else:  # one copy per run of contiguous blocks (a handful), not one per block
            samples = np.zeros((int(offsets[-1]) + block, channels), np.float32)
            for a, b in zip(np.r_[0, breaks], np.r_[breaks, n]):
                samples[offsets[a]:offsets[a] + (b - a) * block] = blocks[a:b].reshape(-1, channels)
        gaps = np.diff(offsets) - block
        missing = int(np.rint(gaps[gaps > 0] / block).sum())
        return AudioTrack(samplerate, samples, float(times[0]), n, missing)


class AudioPlayback:
    """Plays a track from a time; `time()` is the clock the video follows.

    `output`: where sound goes (None: the sound card, opened on the first play). `clock`: the
    monotonic clock used when nothing is heard (no track, or no output device) and to interpolate
    between the output's buffers. The output's thread calls `_fill`; the rest runs on the caller's."""

    def __init__(self, output: SoundOutput | None = None, clock: Callable[[], float] = time.monotonic):
        self._output = output
        self.clock = clock
        self.track: AudioTrack | None = None
        self._lock = threading.Lock()
        self._stream = None
        self._playing = False
        self._origin_t = 0.0  # episode time at the last start or seek
        self._origin_clock = 0.0  # clock() then
        self._read = 0  # next sample index the output gets
        self._delivered = 0  # samples handed to the output since the origin
        self._fill_clock, self._fill_n = 0.0, 0  # clock() at the last fill, and its length

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def audible(self) -> bool:
        """Whether sound is playing (else the clock is the monotonic one)."""
        return self._stream is not None

    def set_track(self, track: AudioTrack | None) -> None:
        self.stop()
        self.track = track

    def start(self, t: float) -> str:
        """Play from episode time t. Returns "" or one line saying why there is no sound (the
        playback then runs on the monotonic clock); never raises for a missing device."""
        self.stop()
        self.seek(t)
        self._playing = True
        if self.track is None:
            return ""
        try:
            if self._output is None:
                self._output = SoundDeviceOutput()
            self._stream = self._output.open(self.track.samplerate, self.track.channels, self._fill)
        except AudioOutputError as e:
            return f"playing without sound: {e}"
        return ""

    def seek(self, t: float) -> None:
        """Continue from episode time t (the output keeps running: the next buffer it asks for starts at t)."""
        with self._lock:
            self._origin_t, self._origin_clock = float(t), self.clock()
            self._read = self.track.index_at(t) if self.track is not None else 0
            self._delivered, self._fill_n = 0, 0

    def time(self) -> float:
        """The episode time being heard (or shown, without sound)."""
        with self._lock:
            if self._stream is None:
                return self._origin_t + (self.clock() - self._origin_clock if self._playing else 0.0)
            if self._delivered == 0:
                return self._origin_t
            # The last buffer's first sample is heard latency_s after it was filled; the clock runs on
            # from there between buffers (so the video moves smoothly) but not past what was filled,
            # unless the output stopped asking (a device unplugged): then the picture goes on alone.
            rate, latency = self.track.samplerate, self._stream.latency_s
            since_fill, filled = max(self.clock() - self._fill_clock, 0.0), self._fill_n / rate + latency
            since_fill = min(since_fill, filled) + max(since_fill - filled - STALL_S, 0.0)
            into_buffer = since_fill - latency
            heard = (self._delivered - self._fill_n) / rate + into_buffer
            return self._origin_t + max(heard, 0.0)

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        self._playing = False
        if stream is not None:
            stream.close()  # returns once the output's thread has left _fill

    def _fill(self, out: np.ndarray) -> None:
        """On the output's thread: the next len(out) samples from the read position."""
        n = len(out)
        with self._lock:
            start = self._read
            self._read += n
            self._delivered += n
            self._fill_clock, self._fill_n = self.clock(), n
        out[:] = self.track.read(start, n)
