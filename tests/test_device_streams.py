"""Device cameras and the microphone in a take: frames and audio blocks written at their own times on
the take's clock, the camera rig, and devices that fail in the middle of a take (the take goes on,
what was recorded is kept, the stream is marked and the user is told)."""
from __future__ import annotations

import numpy as np
import pytest

from recorders.arms.base import ArmCommand
from recorders.cell.camera_rig import CameraRig, CameraRigError, open_rig
from recorders.cell.cameras import DeviceCamera
from recorders.cell.registry import open_workcell
from recorders.cell.sim_workcell import SimWorkcell
from recorders.episode_file import open_episode
from recorders.episode_meta import Provenance
from recorders.observation import observe, stream_specs
from recorders.take import AUDIO_STREAM, Take
from recorders.task_suite import make_instance
from tests.fake_devices import FakeCameraDevice, FakeMicrophone

INST = make_instance("stack", 0)


class DeviceCameraCell(SimWorkcell):
    """The simulated arm with device cameras instead of rendered ones (as a real cell has)."""

    def __init__(self, devices: dict[str, FakeCameraDevice]):
        super().__init__(INST.scene, 10.0)
        self.devices = {name: DeviceCamera(name, dev, None) for name, dev in devices.items()}
        for cam in self.devices.values():
            cam.start()

    @property
    def cameras(self):
        return tuple(self.devices)

    def camera(self, name):
        return self.devices[name]

    def close(self):
        for cam in self.devices.values():
            cam.close()
        super().close()


def _hold(ob) -> ArmCommand:
    return ArmCommand(ob.state.ee_pose, ob.state.gripper_closed)


def _ticks(cell, take, n):
    for _ in range(n):
        ob = observe(cell, cameras=True)
        take.tick(cell.arm.command(_hold(ob)), ob)
        cell.arm.wait_tick()


def test_device_frames_and_audio_are_written_at_their_own_times(tmp_path):
    front, wrist = FakeCameraDevice("111", depth=True), FakeCameraDevice("222", depth=False, seed=1)
    mic = FakeMicrophone()
    with DeviceCameraCell({"front": front, "wrist": wrist}) as cell:
        specs = {s.name: s for s in stream_specs(cell, "rgb", 10.0)}
        assert specs["front_rgb"].rate_hz == 30 and specs["front_rgb"].shape == (48, 64, 3)
        assert specs["front_depth"].meta["serial"] == "111" and "wrist_depth" not in specs
        mic.start()
        try:
            with Take(tmp_path / "ep.h5", cell, Provenance("gui", "sim"), obs="rgb", control_hz=10.0,
                      audio=mic, realtime=True) as take:
                start_front, start_blocks = front.delivered, mic.blocks
                _ticks(cell, take, 5)
                assert front.wait_frames(start_front + 20) and wrist.wait_frames(wrist.delivered + 20)
                assert mic.wait_blocks(start_blocks + 8)
                _ticks(cell, take, 5)
                result = take.finish()
        finally:
            mic.stop()
    with open_episode(result.path) as ep:
        assert ep.frames == 10
        n_front = ep.stream_count("front_rgb")
        assert n_front >= 15 and ep.stream_count("front_depth") == n_front
        t = ep.stream_time("front_rgb")
        assert np.all(np.diff(t) > 0) and t[0] >= 0.0
        assert 0.015 < float(np.median(np.diff(t))) < 0.1  # the device's own ~33 ms, with jitter and drops
        assert ep.stream_count("wrist_rgb") >= 15
        # device cameras are video-coded by default: colour H.264, depth FFV1 (lossless)
        assert ep.format_version == 2 and take.video_quality == "standard"
        assert ep.stream_encoding("front_rgb")["codec"] == "h264" and ep.stream_encoding("front_depth")["codec"] == "ffv1"
        assert ep.stream_data("front_rgb")[-1].shape == (48, 64, 3) and ep.stream_data("front_depth")[:].shape[0] == n_front
        audio = ep.stream_data(AUDIO_STREAM)[:]
        assert audio.shape[1:] == (800, 1) and len(audio) >= 6
        assert ep.stream_spec(AUDIO_STREAM).meta["samplerate"] == 16000
        assert np.all(np.diff(ep.stream_time(AUDIO_STREAM)) == pytest.approx(0.05, abs=1e-6))
        assert ep.faults == ()


def test_an_unplugged_camera_is_marked_and_the_take_goes_on(tmp_path):
    front, wrist = FakeCameraDevice("111", fail_after=8), FakeCameraDevice("222", seed=1)
    with DeviceCameraCell({"front": front, "wrist": wrist}) as cell:
        with Take(tmp_path / "ep.h5", cell, Provenance("gui", "sim"), obs="rgb", control_hz=10.0,
                  realtime=True) as take:
            _ticks(cell, take, 3)
            front.wait_frames(10**6)  # returns once it fails
            assert wrist.wait_frames(wrist.delivered + 15)
            told = take.poll_faults()
            assert len(told) == 1 and "front_rgb" in told[0] and "USB cable" in told[0]
            assert take.poll_faults() == []  # told once
            _ticks(cell, take, 3)
            result = take.finish()
        assert cell.camera("front").stats().error is not None
    with open_episode(result.path) as ep:
        assert ep.frames == 6
        assert [f["stream"] for f in ep.faults] == ["front_rgb"]
        assert ep.stream_count("front_rgb") <= 8 < ep.stream_count("wrist_rgb")


def test_a_microphone_that_disappears_is_marked_and_the_recorded_sound_kept(tmp_path):
    mic = FakeMicrophone(fail_after=5)
    with open_workcell("sim", INST.scene, 10.0) as cell:
        mic.start()
        try:
            with Take(tmp_path / "ep.h5", cell, Provenance("gui", "sim"), obs="state", control_hz=10.0,
                      audio=mic, realtime=True) as take:
                _ticks(cell, take, 2)
                mic.wait_blocks(10**6)
                _ticks(cell, take, 2)
                told = take.poll_faults()
                result = take.finish()
        finally:
            mic.stop()
    assert len(told) == 1 and told[0].startswith("audio:")
    with open_episode(result.path) as ep:
        assert ep.frames == 4 and 1 <= ep.stream_count(AUDIO_STREAM) <= 5
        assert ep.faults[0]["stream"] == "audio"


def test_the_rig_says_which_camera_is_which():
    assert CameraRig().resolve(["A"]) == {"front": "A"}
    assert CameraRig(front="A", wrist="B").resolve(["B", "A"]) == {"front": "A", "wrist": "B"}
    with pytest.raises(CameraRigError, match="say which is the front"):
        CameraRig().resolve(["A", "B"])
    with pytest.raises(CameraRigError, match="not connected"):
        CameraRig(wrist="C").resolve(["A"])
    with pytest.raises(CameraRigError, match="no RealSense camera"):
        CameraRig().resolve([])
    with pytest.raises(CameraRigError, match="both"):
        CameraRig(front="A", wrist="A")
    with pytest.raises(CameraRigError, match="fps"):
        CameraRig(fps=25)
    rig = CameraRig(front="A", wrist="B", width=424, height=240, fps=15, depth=False)
    assert CameraRig.from_json(rig.to_json()) == rig
    with pytest.raises(CameraRigError, match="damaged"):
        CameraRig.from_json("{not json")


def test_opening_a_rig_stops_the_cameras_already_started_when_one_fails():
    started = []

    def factory(serial, **kw):
        if serial == "B":
            raise RuntimeError("B is busy")
        device = FakeCameraDevice(serial, **kw)
        started.append(device)
        return device

    with pytest.raises(RuntimeError, match="busy"):
        open_rig(CameraRig(front="A", wrist="B", width=64, height=48), ["A", "B"], {}, factory)
    assert started and started[0]._thread is None  # stopped again
    cams = open_rig(CameraRig(front="A", width=64, height=48), ["A"], {}, factory)
    try:
        assert list(cams) == ["front"] and cams["front"].rate_hz == 30
        assert not cams["front"].calibrated
        with pytest.raises(ValueError, match="not calibrated"):
            cams["front"].mount()
    finally:
        cams["front"].close()
