"""The camera interface every workcell's cameras go through: rendered (simulator) and device (RealSense).

A `CameraStream` is one named camera of a workcell ("front", "wrist"): its newest frame, its
intrinsics and depth scale, its mount (recorders/cell/camera_geometry.py), and counters for the
Record workspace. Two kinds:

    RenderedCamera   frame() renders now (the simulator, franky-sim's server): one frame per control
                     tick, written into the episode with the tick (`free_running` False)
    DeviceCamera     a device's own thread delivers frames at its own rate (`free_running` True):
                     device thread -> _deliver -> newest frame (for observations and live views)
                                                -> every sink (a take writes each frame at its own time)

Frame times are `time.monotonic()` for devices (the device maps its hardware clock onto it) and the
workcell's clock for rendered cameras. A device that stops delivering (unplugged, USB reset) sets
`stats().error`; the take that records it notes the fault and goes on with the other streams.
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from recorders.cell.camera_geometry import CameraMount

FrameSink = Callable[[float, np.ndarray, "np.ndarray | None"], None]  # (t, rgb, depth)
_FPS_WINDOW = 30  # frames over which the delivered rate is measured


@dataclass(frozen=True)
class CameraFrame:
    t: float  # capture time: time.monotonic() for devices, the workcell's clock for rendered cameras
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray | None  # (H, W) uint16 in units of the camera's depth_scale_m, or None


@dataclass(frozen=True)
class CameraStats:
    frames: int  # frames delivered so far
    drops: int  # frames the device produced that nobody took in time
    fps: float  # delivered rate over the last frames (0 before two frames)
    error: str | None = None  # why the camera stopped delivering, once it did


class CameraStream(ABC):
    """One named camera of a workcell."""

    name: str
    free_running: bool  # True: frames arrive at the device's own rate and are recorded through sinks
    rate_hz: float | None  # the device's frame rate; None for rendered cameras (they follow the ticks)

    @abstractmethod
    def frame(self) -> CameraFrame | None:
        """The newest frame (a rendered camera renders it now); None before a device's first frame."""

    @abstractmethod
    def intrinsics(self) -> dict:
        """fx, fy, cx, cy, width, height of the colour image (and of the depth aligned to it)."""

    @abstractmethod
    def mount(self) -> CameraMount:
        """How the camera is held (its pose in the base frame, or relative to the TCP)."""

    @property
    def depth_scale_m(self) -> float:
        return 0.001

    @property
    def has_depth(self) -> bool:
        return True

    def stats(self) -> CameraStats:
        return CameraStats(0, 0, 0.0)

    def add_sink(self, sink: FrameSink) -> None:
        """Call `sink(t, rgb, depth)` with every frame from now on (free-running cameras only)."""
        raise TypeError(f"camera {self.name!r} renders on demand; record it with the control ticks")

    def remove_sink(self, sink: FrameSink) -> None:
        pass

    def close(self) -> None:
        pass


class RenderedCamera(CameraStream):
    """A camera the workcell renders on demand (`render` -> (rgb, depth | None), `clock` -> its time)."""

    free_running = False
    rate_hz = None

    def __init__(self, name: str, render: Callable[[], tuple], intrinsics: Callable[[], dict],
                 mount: Callable[[], CameraMount], clock: Callable[[], float], depth: bool):
        self.name = name
        self._render, self._intrinsics, self._mount, self._clock = render, intrinsics, mount, clock
        self._depth = depth
        self._frames = 0

    def frame(self) -> CameraFrame:
        rgb, depth = self._render()
        self._frames += 1
        return CameraFrame(self._clock(), rgb, depth)

    def intrinsics(self) -> dict:
        return self._intrinsics()

    def mount(self) -> CameraMount:
        return self._mount()

    @property
    def has_depth(self) -> bool:
        return self._depth

    def stats(self) -> CameraStats:
        return CameraStats(self._frames, 0, 0.0)


class DeviceCamera(CameraStream):
    """A free-running camera device as a workcell camera.

    `device` follows recorders/realsense_cameras.RealSenseCamera: start(), stop(), on_frame(t, rgb,
    depth), intrinsics(), depth_scale_m, width/height/fps/depth, and counters frames, drops, error.
    `mount` comes from the workcell's calibration (None: not calibrated yet; `mount()` then raises).
    """

    free_running = True

    def __init__(self, name: str, device, mount: CameraMount | None):
        self.name = name
        self.device = device
        self.rate_hz = float(device.fps)
        self._mount = mount
        self._lock = threading.Lock()
        self._latest: CameraFrame | None = None
        self._sinks: list[FrameSink] = []
        self._times: deque[float] = deque(maxlen=_FPS_WINDOW)
        self._delivered = 0
        self._sink_error: str | None = None
        device.on_frame = self._deliver

    def start(self) -> None:
        self.device.start()

    def close(self) -> None:
        self.device.stop()

    def frame(self) -> CameraFrame | None:
        with self._lock:
            return self._latest

    def intrinsics(self) -> dict:
        return self.device.intrinsics()

    @property
    def depth_scale_m(self) -> float:
        return self.device.depth_scale_m if self.device.depth else 0.001

    @property
    def has_depth(self) -> bool:
        return bool(self.device.depth)

    @property
    def calibrated(self) -> bool:
        return self._mount is not None

    def set_mount(self, mount: CameraMount | None) -> None:
        self._mount = mount

    def mount(self) -> CameraMount:
        if self._mount is None:
            raise ValueError(f"the {self.name} camera is not calibrated yet: run the calibration (Record > "
                             "Calibrate, or `calibrate --robot ...`)")
        return self._mount

    def add_sink(self, sink: FrameSink) -> None:
        with self._lock:
            self._sinks.append(sink)

    def remove_sink(self, sink: FrameSink) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def stats(self) -> CameraStats:
        with self._lock:
            times = list(self._times)
            delivered = self._delivered
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        error = self.device.error
        return CameraStats(delivered, int(self.device.drops), fps,
                           str(error) if error is not None else self._sink_error)

    def _deliver(self, t: float, rgb: np.ndarray, depth: np.ndarray | None) -> None:
        """On the device's delivery thread: keep the newest frame, hand it to every sink."""
        frame = CameraFrame(t, rgb, depth)
        with self._lock:
            self._latest = frame
            self._times.append(time.monotonic())
            self._delivered += 1
            sinks = list(self._sinks)
        for sink in sinks:
            try:
                sink(t, rgb, depth)
            except Exception as e:  # noqa: BLE001 - one failing sink must not stop the camera
                self._sink_error = f"recording the {self.name} camera failed: {e}"
