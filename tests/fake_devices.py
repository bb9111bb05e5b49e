"""Fake devices with the interfaces of the real ones, for tests without hardware.

`FakeCameraDevice` has RealSenseCamera's interface (start, stop, on_frame, intrinsics, depth_scale_m,
counters frames / drops / error) and streams from its own thread at its frame rate with realistic
timing: capture stamps jitter by a few milliseconds, the device drops a frame now and then (its
sequence number skips), and `fail_after` makes it stop mid-take as an unplugged camera does (no more
frames, `error` set). Frames come from `source(i) -> (rgb, depth)`, default a synthetic pattern.

`FakeMicrophone` has AudioRecorder's interface (start, stop, on_block, samplerate, channels, block_ms,
samples_per_block, device_name, error) and delivers blocks of a sine tone from its own thread, block
times on time.monotonic(); `fail_after` ends it as a microphone that disappears does.

Tests wait on the counters (`wait_frames`, `wait_blocks`), never on the wall clock.
"""
from __future__ import annotations

import threading
import time

import numpy as np


class _DeviceThread:
    """start() runs `_run` on the device's own thread until stop(); `_stop` is set to end it."""

    _stop: threading.Event
    _thread: threading.Thread | None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"fake-device:{type(self).__name__}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class FakeCameraDevice(_DeviceThread):
    def __init__(self, serial: str, width: int = 64, height: int = 48, fps: int = 30, depth: bool = True,
                 source=None, jitter_s: float = 0.003, drop_every: int = 17, fail_after: int | None = None,
                 seed: int = 0):
        self.serial, self.width, self.height, self.fps, self.depth = serial, width, height, fps, depth
        self.on_frame = None
        self.frames = self.delivered = self.drops = 0
        self.error = None
        self.source = source or self._pattern
        self.jitter_s, self.drop_every, self.fail_after = jitter_s, drop_every, fail_after
        self._rng = np.random.default_rng(seed)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def intrinsics(self) -> dict:
        f = 0.9 * self.width
        return {"fx": f, "fy": f, "cx": (self.width - 1) / 2, "cy": (self.height - 1) / 2,
                "width": self.width, "height": self.height}

    @property
    def depth_scale_m(self) -> float:
        return 0.001

    def wait_frames(self, n: int, timeout: float = 30.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.delivered >= n or self.error is not None, timeout)

    def _pattern(self, i: int):
        rgb = np.full((self.height, self.width, 3), i % 256, np.uint8)
        rgb[:, : self.width // 2, 1] = 200
        depth = np.full((self.height, self.width), 800 + i % 100, np.uint16) if self.depth else None
        return rgb, depth

    def _run(self) -> None:
        period, start, i = 1.0 / self.fps, time.monotonic(), 0
        while not self._stop.is_set():
            due = start + i * period
            self._stop.wait(max(0.0, due - time.monotonic()))
            if self._stop.is_set():
                return
            i += 1
            if self.fail_after is not None and self.frames >= self.fail_after:
                with self._cond:
                    self.error = RuntimeError(f"RealSense camera {self.serial} sent no frame for 5 s (fake unplug); "
                                              "check its USB cable, then record again")
                    self._cond.notify_all()
                return
            if self.drop_every and i % self.drop_every == 0:
                self.drops += 1  # the sensor skipped this one
                continue
            t = due + float(self._rng.uniform(-self.jitter_s, self.jitter_s))
            rgb, depth = self.source(i)
            self.frames += 1
            callback = self.on_frame
            if callback is not None:
                callback(t, rgb, depth)
            with self._cond:
                self.delivered += 1
                self._cond.notify_all()


class FakeMicrophone(_DeviceThread):
    def __init__(self, samplerate: int = 16000, channels: int = 1, block_ms: int = 50,
                 fail_after: int | None = None, tone_hz: float = 440.0):
        self.samplerate, self.channels, self.block_ms = samplerate, channels, block_ms
        self.samples_per_block = samplerate * block_ms // 1000
        self.device_name = "fake microphone"
        self.on_block = None
        self.blocks = self.overflows = 0
        self.error = None
        self.fail_after, self.tone_hz = fail_after, tone_hz
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def wait_blocks(self, n: int, timeout: float = 30.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.blocks >= n or self.error is not None, timeout)

    def block(self, i: int) -> np.ndarray:
        """The samples of block i: a sine tone continuing across blocks."""
        k = np.arange(i * self.samples_per_block, (i + 1) * self.samples_per_block)
        tone = 0.3 * np.sin(2 * np.pi * self.tone_hz * k / self.samplerate).astype(np.float32)
        return np.repeat(tone[:, None], self.channels, axis=1)

    def _run(self) -> None:
        period, start, i = self.block_ms / 1000.0, time.monotonic(), 0
        while not self._stop.is_set():
            due = start + (i + 1) * period  # a block is delivered once its last sample is in
            self._stop.wait(max(0.0, due - time.monotonic()))
            if self._stop.is_set():
                return
            if self.fail_after is not None and self.blocks >= self.fail_after:
                with self._cond:
                    self.error = RuntimeError("the microphone 'fake microphone' stopped delivering sound (unplugged)")
                    self._cond.notify_all()
                return
            callback = self.on_block
            if callback is not None:
                callback(start + i * period, self.block(i))
            i += 1
            with self._cond:
                self.blocks += 1
                self._cond.notify_all()
