"""Intel RealSense cameras for recording on the real arm (DESIGN.md section 4): discovery, capture, streams.

This module owns everything that touches pyrealsense2; nothing else imports it. Per camera:

    wait_for_frames -> align depth to color -> numpy copies, capture time       (capture thread)
      -> LatestFrame (one slot: a pair not taken before the next arrives is replaced, counted in `drops`)
      -> on_frame(t, rgb (H, W, 3) uint8, depth (H, W) uint16 | None)             (delivery thread)

The capture thread never waits for the consumer, so no frame is lost unseen inside librealsense. `t` is
time.monotonic() when the sensor took the frame; the recorder subtracts its episode start. `stream_specs`
declares a camera's streams as recorders/observation.py declares the simulated ones. pyrealsense2 is
imported on first use: without it (or libusb-1.0-0) `list_cameras` returns [] with a reason and
`start` raises CameraError naming the fix.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from recorders.episode_file import StreamSpec

FrameCallback = Callable[[float, np.ndarray, "np.ndarray | None"], None]
_WAIT_MS = 1000  # one wait for a frame; stop() is noticed within it
_LOST_AFTER_S = 5.0  # no frame for this long: the camera is declared lost (unplugged, USB reset)
_INSTALL = "install it with: pip install 'pyrealsense2>=2.55' (the `hardware` extra)"
_NONE_FOUND = ("no RealSense camera connected (plug it into a USB 3 port; on Linux install the librealsense "
               "udev rules so that it can be opened without root)")


class CameraError(RuntimeError):
    """A camera cannot be found, opened or read; the message says what to do."""


@dataclass(frozen=True)
class CameraInfo:
    serial: str
    name: str  # e.g. "Intel RealSense D435"
    firmware: str


class CameraList(list):
    """`list_cameras`' answer: the cameras found, and `reason` (one line) when there are none."""

    def __init__(self, cameras=(), reason: str = ""):
        super().__init__(cameras)
        self.reason = reason


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def import_pyrealsense2():
    """The pyrealsense2 module, or CameraError saying how to install it or its system library."""
    try:
        import pyrealsense2 as rs
    except ModuleNotFoundError as e:
        if e.name == "pyrealsense2":
            raise CameraError(f"pyrealsense2 is not installed; {_INSTALL}") from e
        raise CameraError(f"pyrealsense2 is installed incompletely ({_one_line(e)}); reinstall it: {_INSTALL}") from e
    except (ImportError, OSError) as e:  # the extension module's dlopen failed
        raise CameraError(f"pyrealsense2 cannot be loaded ({_one_line(e)}); install the system library "
                          "libusb-1.0-0 (tools/bootstrap.sh does)") from e
    return rs


def list_cameras() -> CameraList:
    """The RealSense cameras connected now; never raises (an empty list carries the reason)."""
    try:
        rs = import_pyrealsense2()
        found = [CameraInfo(str(d.get_info(rs.camera_info.serial_number)), str(d.get_info(rs.camera_info.name)),
                            str(d.get_info(rs.camera_info.firmware_version)))
                 for d in rs.context().query_devices()]
    except CameraError as e:
        return CameraList(reason=str(e))
    except Exception as e:  # noqa: BLE001 - a USB or driver failure is reported, not raised
        return CameraList(reason=f"RealSense cameras could not be listed ({_one_line(e)})")
    return CameraList(found) if found else CameraList(reason=_NONE_FOUND)


def frame_arrays(color, depth, width: int, height: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Copies of one aligned pair, rgb (H, W, 3) uint8 and depth (H, W) uint16 (None without depth):
    librealsense reuses the frame buffers once the frames are released."""
    rgb = np.asanyarray(color.get_data())
    if rgb.shape != (height, width, 3) or rgb.dtype != np.uint8:
        raise CameraError(f"expected {width}x{height} RGB8 color frames, got {rgb.dtype} {rgb.shape}")
    if depth is None:
        return rgb.copy(), None
    d = np.asanyarray(depth.get_data())
    if d.shape != (height, width) or d.dtype != np.uint16:
        raise CameraError(f"expected {width}x{height} Z16 depth aligned to color, got {d.dtype} {d.shape}")
    return rgb.copy(), d.copy()


def capture_time(frame, rs, arrival_mono: float, arrival_wall_ms: float) -> float:
    """time.monotonic() at which the sensor took `frame`. In the global or system time domain its
    stamp is on the host's wall clock, so the transport lag is wall-now minus stamp; in the hardware
    domain, or with an implausible lag (the wall clock was stepped), the arrival time."""
    domains = (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time)
    if frame.get_frame_timestamp_domain() in domains:
        lag = (arrival_wall_ms - frame.get_timestamp()) / 1000.0
        if 0.0 <= lag < 1.0:
            return arrival_mono - lag
    return arrival_mono


class LatestFrame:
    """A one-slot mailbox between a producer that must never wait and a consumer that may be slow:
    `put` replaces an item not yet taken (counted in `drops`), `take` waits for the newest."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item, self._closed, self.drops = None, False, 0

    def put(self, item) -> bool:
        """Store `item`; False when it replaced one the consumer never took."""
        with self._cond:
            replaced = self._item is not None
            self.drops += replaced
            self._item = item
            self._cond.notify()
            return not replaced

    def take(self, timeout: float | None = None):
        """The newest item, waiting for one; None on timeout, or once closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class RealSenseCamera:
    """One RealSense camera streaming RGB and, with `depth`, depth aligned to the color image.

    start(); stream_specs(prefix, camera) for the writer; set `on_frame`; ...; stop(). Counters:
    `frames` pairs captured, `drops` pairs replaced before on_frame took them, `delivered`. `error`
    says why capture ended early (camera lost) or why on_frame failed; the recorder checks it.
    """

    def __init__(self, serial: str, width: int = 640, height: int = 480, fps: int = 30, depth: bool = True,
                 on_frame: FrameCallback | None = None):
        if not serial:
            raise ValueError("a RealSense camera needs its serial number (see list_cameras())")
        if width <= 0 or height <= 0 or fps <= 0:
            raise ValueError(f"width, height and fps must be > 0, got {width}x{height} at {fps} fps")
        self.serial, self.width, self.height, self.fps = str(serial), int(width), int(height), int(fps)
        self.depth = bool(depth)
        self.on_frame = on_frame  # read per frame, so it may be set after start()
        self.frames, self.delivered = 0, 0
        self.error: CameraError | None = None
        self._slot, self._stop, self._pipeline = LatestFrame(), threading.Event(), None
        self._intrinsics: dict | None = None
        self._depth_scale: float | None = None
        self._threads: list[threading.Thread] = []

    drops = property(lambda self: self._slot.drops)

    def start(self) -> None:
        """Open the camera and start streaming; CameraError (with the fix) if it cannot."""
        if self._pipeline is not None:
            raise CameraError(f"RealSense camera {self.serial} is already started")
        rs = import_pyrealsense2()
        ctx = rs.context()
        serials = [str(d.get_info(rs.camera_info.serial_number)) for d in ctx.query_devices()]
        if self.serial not in serials:
            connected = ", ".join(serials) or "none"
            raise CameraError(f"no RealSense camera with serial {self.serial} (connected: {connected}); check the "
                              "serial with list_cameras() and the USB cable")
        config = rs.config()
        config.enable_device(self.serial)
        config.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.fps)
        if self.depth:
            config.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
        pipeline = rs.pipeline(ctx)
        try:
            profile = pipeline.start(config)
        except RuntimeError as e:
            raise self._start_error(e) from e
        try:
            i = profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
            self._intrinsics = {"fx": float(i.fx), "fy": float(i.fy), "cx": float(i.ppx), "cy": float(i.ppy),
                                "width": int(i.width), "height": int(i.height)}
            coeffs = [float(c) for c in getattr(i, "coeffs", ())]
            if any(coeffs):  # the colour stream's lens model (OpenCV order k1 k2 p1 p2 k3); calibration uses it
                self._intrinsics["distortion"] = coeffs
            if self.depth:
                self._depth_scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
        except Exception:
            pipeline.stop()
            raise
        align = rs.align(rs.stream.color) if self.depth else None
        self._pipeline = pipeline
        self._stop.clear()
        self._slot = LatestFrame()
        self.frames, self.delivered, self.error = 0, 0, None
        self._threads = [threading.Thread(target=self._capture, args=(rs, pipeline, align), daemon=True,
                                          name=f"realsense-capture:{self.serial}"),
                         threading.Thread(target=self._deliver, daemon=True, name=f"realsense-deliver:{self.serial}")]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop streaming and release the camera (within about a second); safe to call twice."""
        if self._pipeline is None:
            return
        self._stop.set()
        self._threads[0].join()
        try:
            self._pipeline.stop()
        except RuntimeError:
            pass  # already stopped by a lost device
        self._pipeline = None
        self._slot.close()
        self._threads[1].join()  # after delivering the last pair captured

    def intrinsics(self) -> dict:
        """fx, fy, cx, cy, width, height of the color image (and of the depth aligned to it)."""
        if self._intrinsics is None:
            raise CameraError(f"RealSense camera {self.serial} has not been started; call start() first")
        return dict(self._intrinsics)

    @property
    def depth_scale_m(self) -> float:
        """Metres per depth unit (0.001 on D400 cameras)."""
        if self._depth_scale is None:
            raise CameraError(f"RealSense camera {self.serial} has no depth scale: start() it with depth=True")
        return self._depth_scale

    def __enter__(self) -> "RealSenseCamera":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start_error(self, e: RuntimeError) -> CameraError:
        msg = _one_line(e)
        if "busy" in msg.lower():
            return CameraError(f"RealSense camera {self.serial} is busy ({msg}): another program (realsense-viewer, "
                               "another Code2Act) has it open; close that program or replug the camera")
        if "resolve" in msg.lower():
            return CameraError(f"RealSense camera {self.serial} cannot stream {self.width}x{self.height} at "
                               f"{self.fps} fps ({msg}); use a mode it supports, e.g. 640x480 at 30 fps")
        return CameraError(f"RealSense camera {self.serial} failed to start ({msg}); replug it into a USB 3 port")

    def _capture(self, rs, pipeline, align) -> None:
        last_frame, last_t = time.monotonic(), float("-inf")
        while not self._stop.is_set():
            try:
                frames = pipeline.wait_for_frames(_WAIT_MS)
            except RuntimeError as e:  # "Frame didn't arrive within ..."
                if time.monotonic() - last_frame >= _LOST_AFTER_S:
                    self.error = CameraError(f"RealSense camera {self.serial} sent no frame for {_LOST_AFTER_S:g} s "
                                             f"({_one_line(e)}); check its USB cable, then record again")
                    return
                continue
            arrival_mono, arrival_wall_ms = time.monotonic(), time.time() * 1000.0
            last_frame = arrival_mono
            try:
                if align is not None:
                    frames = align.process(frames)
                color = frames.get_color_frame()
                depth = frames.get_depth_frame() if self.depth else None
                if not color or (self.depth and not depth):
                    continue  # an incomplete set right after start
                rgb, dep = frame_arrays(color, depth, self.width, self.height)
            except (CameraError, RuntimeError) as e:
                self.error = e if isinstance(e, CameraError) else CameraError(f"reading {self.serial}: {_one_line(e)}")
                return
            last_t = max(capture_time(color, rs, arrival_mono, arrival_wall_ms), last_t)  # never backwards
            self.frames += 1
            self._slot.put((last_t, rgb, dep))

    def _deliver(self) -> None:
        while (item := self._slot.take()) is not None:
            callback = self.on_frame
            try:
                if callback is not None:
                    callback(*item)
                self.delivered += 1
            except Exception as e:  # noqa: BLE001 - kept for the recorder; capture goes on
                if self.error is None:
                    self.error = CameraError(f"on_frame failed for camera {self.serial}: {_one_line(e)}")


def stream_specs(name_prefix: str, camera: RealSenseCamera) -> list[StreamSpec]:
    """`{prefix}_rgb` and, with depth, `{prefix}_depth` (aligned to color, so the one set of
    intrinsics serves both; uint16 units of `depth_scale_m`). Call after camera.start()."""
    meta = {"intrinsics": camera.intrinsics(), "serial": camera.serial}
    specs = [StreamSpec(f"{name_prefix}_rgb", "rgb", (camera.height, camera.width, 3), "uint8", camera.fps, meta)]
    if camera.depth:
        specs.append(StreamSpec(f"{name_prefix}_depth", "depth", (camera.height, camera.width), "uint16",
                                camera.fps, {**meta, "depth_scale_m": camera.depth_scale_m}))
    return specs
