"""Takes on a real workcell, through the Record session: a free-text instruction instead of a suite task,
the operator's success mark, sound from the microphone, device cameras at their own rate, and devices
or the arm failing in the middle of a take (the take goes on, the fault is noted, the operator told).

The "real" workcell here is the simulated arm with fake RealSense devices and kind "franky", so the
session takes every real-arm branch without hardware; tests/test_franky_sim_perception.py drives the
real franky backend."""
from __future__ import annotations

import pytest

from app.record_session import RecordSession
from recorders.arms.base import ArmError
from recorders.episode_file import open_episode
from recorders.take import AUDIO_STREAM, FREE_TASK
from tests.fake_devices import FakeCameraDevice, FakeMicrophone
from tests.test_device_streams import DeviceCameraCell

pytestmark = pytest.mark.slow
HANG_S = 120.0


class FakeRealCell(DeviceCameraCell):
    kind = "franky"  # a real arm: no task monitor, the operator judges the take
    clock_name = "sim"


@pytest.fixture
def devices():
    return {"front": FakeCameraDevice("111", fail_after=40), "wrist": FakeCameraDevice("222", seed=1)}


@pytest.fixture
def session(tmp_path, devices):
    s = RecordSession(tmp_path / "data", robot="franky", robot_ip="10.0.0.2", realtime=True,
                      workcell_factory=lambda robot, inst, hz, ip: FakeRealCell(devices))
    s.connect_robot()
    assert s.wait_until_live(HANG_S), s.snapshot().message
    yield s
    s.close(HANG_S)
    assert not s._thread.is_alive()


def test_a_real_take_has_free_text_sound_device_frames_and_the_operators_verdict(session, devices):
    snap = session.snapshot()
    assert not snap.simulated and [c.name for c in snap.cameras] == ["front", "wrist"]
    session.start_recording("   ")
    assert session.wait_for_event("error", HANG_S).text.startswith("type what the take shows")
    session.drain_events()
    mic = FakeMicrophone()
    session.set_microphone(mic, "fake microphone")
    session.start_recording("wipe the table with the sponge")
    assert session.wait_for(lambda s: s.recording is not None and s.microphone == "fake microphone", HANG_S)
    assert mic.wait_blocks(6)
    fault = session.wait_for_event("error", HANG_S)  # the front camera unplugs after 40 frames
    assert "front_rgb" in fault.text and "USB cable" in fault.text and "take goes on" in fault.text
    assert devices["wrist"].wait_frames(devices["wrist"].delivered + 10)
    assert session.wait_for(lambda s: any(c.error for c in s.cameras), HANG_S)
    session.stop_recording(success=True)
    saved = session.wait_for_event("saved", HANG_S)
    assert "success" in saved.text
    assert mic._thread is None  # the microphone is released with the take
    with open_episode(saved.path) as ep:
        assert ep.task == FREE_TASK and ep.instruction == "wipe the table with the sponge"
        assert ep.success is True and ep.robot == "franky"
        assert ep.stream_count(AUDIO_STREAM) >= 5
        assert ep.stream_count("wrist_rgb") > ep.stream_count("front_rgb") > 0
        assert [f["stream"] for f in ep.faults] == ["front_rgb"]


def test_an_arm_error_in_a_take_is_noted_once_and_the_take_is_kept(session):
    session.start_recording("stack the blocks")
    assert session.wait_for(lambda s: s.recording is not None, HANG_S)

    def reflex():
        raise ArmError("cartesian_reflex: the arm stopped (collision); check the workspace, then recover")
    session._submit(reflex)
    session._submit(reflex)  # the same error again is not noted twice
    assert "cartesian_reflex" in session.wait_for_event("error", HANG_S).text
    session.stop_recording()  # no verdict: unknown
    saved = session.wait_for_event("saved", HANG_S)
    with open_episode(saved.path) as ep:
        assert ep.success is None
        assert [f["stream"] for f in ep.faults if f["stream"] == "arm"] == ["arm"]
