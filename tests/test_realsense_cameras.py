"""RealSense cameras without a camera: discovery on this machine, a missing or unloadable pyrealsense2,
and the capture path driven by a fake pyrealsense2 (same calls, frames fed by the test), written to a
real episode file and read back."""
from __future__ import annotations

import importlib.abc
import queue
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from recorders import realsense_cameras as rsc
from recorders.episode_file import EpisodeMeta, StreamSpec, open_episode
from recorders.episode_writer import EpisodeWriter
from recorders.realsense_cameras import (
    CameraError, LatestFrame, RealSenseCamera, capture_time, frame_arrays, list_cameras, stream_specs,
)

W, H = 8, 6  # tiny frames keep the episode file small
GLOBAL_TIME, HARDWARE_CLOCK = 2, 0


# ---- a fake pyrealsense2: the calls the module makes, frames fed by the test -------------------------
class FakeFrame:
    def __init__(self, data, stamp_ms, domain=GLOBAL_TIME):
        self.data, self.stamp_ms, self.domain = data, stamp_ms, domain

    def get_data(self):
        return self.data

    def get_timestamp(self):
        return self.stamp_ms

    def get_frame_timestamp_domain(self):
        return self.domain


class FakeFrameset:
    def __init__(self, color, depth):
        self.color, self.depth, self.aligned = color, depth, False

    def get_color_frame(self):
        return self.color

    def get_depth_frame(self):
        return self.depth


class FakeAlign:
    def __init__(self, to):
        assert to == "color"

    def process(self, frames):
        frames.aligned = True
        return frames


class FakeConfig:
    def __init__(self):
        self.device, self.streams = None, {}

    def enable_device(self, serial):
        self.device = serial

    def enable_stream(self, stream, width, height, fmt, fps):
        self.streams[stream] = (width, height, fmt, fps)


class FakePipeline:
    def __init__(self, rs, ctx):
        self.rs, self.frames, self.stopped = rs, queue.Queue(), False
        self.returned = self.handled = 0  # frames given out / known handled by the capture loop
        self.cond = threading.Condition()

    def start(self, config):
        if self.rs.start_error:
            raise RuntimeError(self.rs.start_error)
        self.config = config
        self.rs.pipelines.append(self)
        intr = SimpleNamespace(fx=600.0, fy=601.0, ppx=3.5, ppy=2.5, width=W, height=H,
                               coeffs=[0.1, -0.05, 0.001, 0.0, 0.01])
        stream = SimpleNamespace(as_video_stream_profile=lambda: SimpleNamespace(get_intrinsics=lambda: intr))
        sensor = SimpleNamespace(get_depth_scale=lambda: 0.001)
        return SimpleNamespace(get_stream=lambda s: stream,
                               get_device=lambda: SimpleNamespace(first_depth_sensor=lambda: sensor))

    def wait_for_frames(self, timeout_ms):
        with self.cond:  # the capture loop is sequential: asking again means the last frame was handled
            self.handled = self.returned
            self.cond.notify_all()
        try:
            frames = self.frames.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            raise RuntimeError(f"Frame didn't arrive within {timeout_ms}") from None
        with self.cond:
            self.returned += 1
        return frames

    def wait_handled(self, n):
        """Wait until the capture loop has handled n frames (converted them and filled the slot)."""
        with self.cond:
            assert self.cond.wait_for(lambda: self.handled >= n, timeout=10)

    def feed(self, i, depth=True, stamp_ms=None):
        rgb = np.full((H, W, 3), i, np.uint8)
        dep = np.full((H, W), 1000 + i, np.uint16) if depth else None
        stamp = time.time() * 1000.0 - 20.0 if stamp_ms is None else stamp_ms  # 20 ms on the wire
        self.frames.put(FakeFrameset(FakeFrame(rgb, stamp), FakeFrame(dep, stamp) if depth else None))

    def stop(self):
        self.stopped = True


def fake_rs(serials=("123",), start_error=None):
    def device(serial):
        info = {"serial": serial, "name": "Intel RealSense D435", "fw": "5.16.0.1"}
        return SimpleNamespace(get_info=info.__getitem__)

    rs = SimpleNamespace(
        start_error=start_error, pipelines=[],
        context=lambda: SimpleNamespace(query_devices=lambda: [device(s) for s in serials]),
        config=FakeConfig, align=FakeAlign,
        stream=SimpleNamespace(color="color", depth="depth"), format=SimpleNamespace(rgb8="rgb8", z16="z16"),
        camera_info=SimpleNamespace(serial_number="serial", name="name", firmware_version="fw"),
        timestamp_domain=SimpleNamespace(hardware_clock=HARDWARE_CLOCK, system_time=1, global_time=GLOBAL_TIME))
    rs.pipeline = lambda ctx=None: FakePipeline(rs, ctx)
    return rs


@pytest.fixture
def rs(monkeypatch):
    fake = fake_rs()
    monkeypatch.setattr(rsc, "import_pyrealsense2", lambda: fake)
    monkeypatch.setattr(rsc, "_WAIT_MS", 20)  # stop() returns within one wait
    return fake


# ---- discovery -----------------------------------------------------------------------------------------
def test_list_cameras_on_this_machine_never_raises():
    found = list_cameras()
    assert isinstance(found, list)
    if found:  # a machine with a camera plugged in
        assert found.reason == "" and all(c.serial for c in found)
    else:
        assert found.reason and "\n" not in found.reason


def test_missing_pyrealsense2_is_a_reason_and_a_camera_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)  # import raises ModuleNotFoundError
    found = list_cameras()
    assert found == [] and "pyrealsense2 is not installed" in found.reason and "pip install" in found.reason
    with pytest.raises(CameraError, match="pip install"):
        RealSenseCamera("123").start()


class _BrokenLibrary(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pyrealsense2":
            raise ImportError("libusb-1.0.so.0: cannot open shared object file: No such file or directory")
        return None


def test_unloadable_pyrealsense2_names_libusb(monkeypatch):
    monkeypatch.delitem(sys.modules, "pyrealsense2", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_BrokenLibrary(), *sys.meta_path])
    found = list_cameras()
    assert found == [] and "libusb-1.0-0" in found.reason and "libusb-1.0.so.0" in found.reason


def test_fake_cameras_are_listed(rs):
    assert list_cameras() == [rsc.CameraInfo("123", "Intel RealSense D435", "5.16.0.1")]


def test_unknown_serial_on_this_machine_is_a_camera_error():
    with pytest.raises(CameraError, match="no RealSense camera with serial 000000|pyrealsense2"):
        RealSenseCamera("000000").start()


def test_unknown_serial_names_the_connected_ones(rs):
    with pytest.raises(CameraError, match=r"serial 999 \(connected: 123\).*list_cameras"):
        RealSenseCamera("999").start()


@pytest.mark.parametrize("error, fix", [
    ("xioctl(VIDIOC_S_FMT) failed, errno=16 Last Error: Device or resource busy", "another program"),
    ("Couldn't resolve requests", "640x480 at 30 fps"),
    ("USB CAM overflow", "USB 3 port")])
def test_start_failures_say_what_to_do(monkeypatch, error, fix):
    monkeypatch.setattr(rsc, "import_pyrealsense2", lambda: fake_rs(start_error=error))
    cam = RealSenseCamera("123")
    with pytest.raises(CameraError, match=fix):
        cam.start()
    with pytest.raises(CameraError, match="start"):
        cam.intrinsics()


# ---- per-frame conversion and the latest-frame slot ----------------------------------------------------
def test_frame_arrays_copies_and_checks_shapes():
    rgb, dep = np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.uint16)
    out_rgb, out_dep = frame_arrays(FakeFrame(rgb, 0), FakeFrame(dep, 0), W, H)
    rgb[:] = 7
    dep[:] = 7
    assert out_rgb.shape == (H, W, 3) and out_rgb.dtype == np.uint8 and out_rgb.max() == 0
    assert out_dep.shape == (H, W) and out_dep.dtype == np.uint16 and out_dep.max() == 0
    assert frame_arrays(FakeFrame(rgb, 0), None, W, H)[1] is None
    with pytest.raises(CameraError, match="RGB8"):
        frame_arrays(FakeFrame(np.zeros((H, W, 3), np.uint16), 0), None, W, H)
    with pytest.raises(CameraError, match="aligned"):
        frame_arrays(FakeFrame(rgb, 0), FakeFrame(np.zeros((H + 1, W), np.uint16), 0), W, H)


def test_capture_time_subtracts_the_transport_lag():
    rs = fake_rs()
    assert capture_time(FakeFrame(None, 1000.0), rs, 50.0, 1030.0) == pytest.approx(49.97)
    assert capture_time(FakeFrame(None, 1000.0, HARDWARE_CLOCK), rs, 50.0, 1030.0) == 50.0
    assert capture_time(FakeFrame(None, 1000.0), rs, 50.0, 9000.0) == 50.0  # wall clock stepped
    assert capture_time(FakeFrame(None, 2000.0), rs, 50.0, 1000.0) == 50.0  # stamp in the future


def test_latest_frame_keeps_the_newest_and_counts_drops():
    slot = LatestFrame()
    assert slot.put(1) is True
    assert slot.put(2) is False and slot.put(3) is False
    assert slot.drops == 2 and slot.take() == 3
    assert slot.take(timeout=0.01) is None
    slot.put(4)
    slot.close()
    assert slot.take() == 4 and slot.take() is None  # closed: the last item, then None without waiting


# ---- the capture threads, driven by the fake pipeline --------------------------------------------------
def test_frames_reach_on_frame_with_monotonic_times(rs):
    delivered = queue.Queue()
    cam = RealSenseCamera("123", width=W, height=H, fps=15, on_frame=lambda *frame: delivered.put(frame))
    cam.start()
    pipe = rs.pipelines[0]
    assert pipe.config.device == "123"
    assert pipe.config.streams == {"color": (W, H, "rgb8", 15), "depth": (W, H, "z16", 15)}
    before, got = time.monotonic(), []
    for i in range(5):  # the next frame only once the last was delivered: nothing to drop
        pipe.feed(i)
        got.append(delivered.get(timeout=10))
    cam.stop()
    assert pipe.stopped and cam.frames == 5 and cam.delivered == 5 and cam.drops == 0 and cam.error is None
    times = [t for t, _, _ in got]
    assert all(b > a for a, b in zip(times, times[1:]))
    assert before - 0.5 < times[0] and times[-1] < time.monotonic()  # on time.monotonic(), lag subtracted
    for i, (_, rgb, depth) in enumerate(got):
        assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8 and rgb[0, 0, 0] == i
        assert depth.shape == (H, W) and depth.dtype == np.uint16 and depth[0, 0] == 1000 + i
    assert cam.intrinsics() == {"fx": 600.0, "fy": 601.0, "cx": 3.5, "cy": 2.5, "width": W, "height": H,
                                "distortion": [0.1, -0.05, 0.001, 0.0, 0.01]}  # the lens model, for calibration
    assert cam.depth_scale_m == 0.001


def test_a_slow_consumer_gets_the_latest_frame_and_drops_are_counted(rs):
    first, release, got = threading.Event(), threading.Event(), []

    def slow(t, rgb, depth):
        got.append(int(rgb[0, 0, 0]))
        first.set()
        assert release.wait(10)

    cam = RealSenseCamera("123", width=W, height=H, on_frame=slow)
    cam.start()
    pipe = rs.pipelines[0]
    pipe.feed(0)
    assert first.wait(10)  # the consumer now holds frame 0
    for i in range(1, 5):
        pipe.feed(i)
    pipe.wait_handled(5)  # frames 1..4 captured while the consumer was busy
    assert cam.frames == 5 and cam.drops == 3  # 1, 2, 3 replaced in the slot; 4 waits there
    release.set()
    cam.stop()
    assert got == [0, 4] and cam.delivered == 2


def test_rgb_only_camera_and_its_streams(rs):
    got, done = [], threading.Event()
    cam = RealSenseCamera("123", width=W, height=H, depth=False,
                          on_frame=lambda t, rgb, depth: (got.append(depth), done.set()))
    with cam:
        assert "depth" not in rs.pipelines[0].config.streams
        rs.pipelines[0].feed(0, depth=False)
        assert done.wait(10)
    assert got == [None]
    assert [s.name for s in stream_specs("front", cam)] == ["front_rgb"]
    with pytest.raises(CameraError, match="depth"):
        cam.depth_scale_m


def test_a_lost_camera_sets_error(rs, monkeypatch):
    monkeypatch.setattr(rsc, "_LOST_AFTER_S", 0.05)
    cam = RealSenseCamera("123", width=W, height=H)
    cam.start()
    cam._threads[0].join(10)  # the capture thread gives up on its own
    assert isinstance(cam.error, CameraError) and "sent no frame" in str(cam.error)
    cam.stop()


def test_a_failing_consumer_is_reported_not_fatal(rs):
    calls = []

    def broken(t, rgb, depth):
        calls.append(t)
        raise ValueError("disk full")

    cam = RealSenseCamera("123", width=W, height=H, on_frame=broken)
    cam.start()
    for i in range(3):
        rs.pipelines[0].feed(i)
        rs.pipelines[0].wait_handled(i + 1)
    cam.stop()
    assert len(calls) >= 1 and "disk full" in str(cam.error) and cam.delivered == 0


# ---- into a real episode file --------------------------------------------------------------------------
def test_stream_specs_match_what_the_episode_writer_records(rs, tmp_path):
    cam = RealSenseCamera("123", width=W, height=H, fps=30)
    cam.start()
    specs = stream_specs("wrist", cam)
    assert [(s.name, s.kind, s.shape, s.dtype, s.rate_hz) for s in specs] == [
        ("wrist_rgb", "rgb", (H, W, 3), "uint8", 30.0), ("wrist_depth", "depth", (H, W), "uint16", 30.0)]
    assert specs[1].meta["depth_scale_m"] == 0.001 and specs[0].meta["intrinsics"]["fx"] == 600.0

    action = StreamSpec("action", "array", (8,), "float32", 10.0)
    meta = EpisodeMeta(task="push", instruction="push the cube", robot="franky", control_hz=10.0)
    writer = EpisodeWriter(tmp_path / "ep.h5", meta, [action, *specs], drop_when_full=False)
    t0, written = time.monotonic(), queue.Queue()

    def on_frame(t, rgb, depth):  # what a recorder does: episode time, then append
        writer.append("wrist_rgb", t - t0, rgb)
        writer.append("wrist_depth", t - t0, depth)
        written.put(t - t0)

    cam.on_frame = on_frame
    times = []
    for i in range(3):
        rs.pipelines[0].feed(10 + i)
        times.append(written.get(timeout=10))
    cam.stop()
    assert cam.drops == 0
    writer.append("action", 0.0, np.zeros(8, np.float32))
    path = writer.finish(success=True, labels=[])

    with open_episode(path) as ep:
        assert ep.stream_spec("wrist_rgb") == specs[0] and ep.stream_spec("wrist_depth") == specs[1]
        rgb, depth = ep.stream_data("wrist_rgb")[:], ep.stream_data("wrist_depth")[:]
        assert rgb.shape == (3, H, W, 3) and rgb.dtype == np.uint8 and list(rgb[:, 0, 0, 0]) == [10, 11, 12]
        assert depth.shape == (3, H, W) and depth.dtype == np.uint16 and list(depth[:, 0, 0]) == [1010, 1011, 1012]
        assert np.allclose(ep.stream_time("wrist_rgb"), times) and np.all(np.diff(ep.stream_time("wrist_depth")) > 0)
