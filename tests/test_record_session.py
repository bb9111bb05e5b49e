"""The record session without widgets: connect, teleop, logged calls, hotkey labels, takes, e-stop."""
from __future__ import annotations

import time

import numpy as np
import pytest

from app.record_session import RecordSession
from app.recording import next_episode_path
from recorders.arms.base import ArmError
from recorders.episode_file import open_episode
from recorders.robot_api_spec import Call
from recorders.teleop import TeleopIntent

pytestmark = pytest.mark.slow


def wait_for(predicate, timeout=20.0, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False


@pytest.fixture
def session(tmp_path):
    s = RecordSession(tmp_path / "data", task="stack", seed=3)
    s.connect_robot()
    assert s.wait_until_live(30), s.snapshot().message
    yield s
    s.close()


def events_of(s, kind=None):
    return [e for e in s.drain_events() if kind is None or e.kind == kind]


def test_connects_to_the_sim_and_publishes_cameras_state_and_scene(session):
    assert wait_for(lambda: len(session.snapshot().samples) >= 5)
    snap = session.snapshot()
    assert snap.connection == "live" and snap.robot == "sim"
    assert set(snap.images) == {"front", "wrist"}
    assert all(img.shape == (128, 128, 3) and img.dtype == np.uint8 for img in snap.images.values())
    assert len(snap.objects) >= 2 and snap.zones and snap.instruction.startswith("stack")
    times = [s.t for s in snap.samples]
    assert np.allclose(np.diff(times), 0.1)  # one sample per 10 Hz control tick


def test_teleop_moves_the_tcp_at_the_chosen_speed_in_real_time(session):
    wait_for(lambda: len(session.snapshot().samples) >= 3)
    x0 = session.snapshot().samples[-1].ee_xyz
    session.set_speed_level(2)  # 10 cm/s
    wall0 = time.monotonic()
    session.set_teleop(TeleopIntent(linear=(0.0, 0.0, -1.0)))
    time.sleep(1.5)
    session.set_teleop(TeleopIntent())
    wall = time.monotonic() - wall0
    time.sleep(0.4)  # the arm catches up with the last target
    x1 = session.snapshot().samples[-1].ee_xyz
    dz = x1[2] - x0[2]
    assert -0.1 * (wall + 0.2) <= dz <= -0.1 * (wall - 0.4), (dz, wall)  # 10 cm/s, down
    assert abs(x1[0] - x0[0]) < 0.01 and abs(x1[1] - x0[1]) < 0.01


def test_a_take_with_palette_calls_and_a_hotkey_stretch_is_saved_with_its_labels(session, tmp_path):
    objects = session.snapshot().objects
    session.start_recording("stack two cubes, by hand and by skill")
    session.call(Call("pick", (objects[0],)))
    session.call(Call("place", (objects[0], objects[1])))
    assert session.wait_until_idle(60)
    session.open_labelled_call(Call("home"))
    session.set_teleop(TeleopIntent(linear=(0.0, 0.0, 1.0)))
    time.sleep(0.6)
    session.set_teleop(TeleopIntent())
    session.close_labelled_call()
    session.stop_recording()
    assert session.wait_until_idle(30)
    saved = events_of(session, "saved")
    assert len(saved) == 1 and "success" in saved[0].text
    with open_episode(saved[0].path) as ep:
        assert ep.instruction == "stack two cubes, by hand and by skill" and ep.success is True
        sources = [(c["code"], c["source"], c["status"]) for c in ep.calls]
        assert sources == [(f'pick("{objects[0]}")', "gui", "ok"),
                           (f'place("{objects[0]}", "{objects[1]}")', "gui", "ok"), ("home()", "hotkey", "ok")]
        labels = ep.labels
        assert labels[0]["start"] == 0 and labels[-1]["end"] == ep.frames
        assert all(a["end"] == b["start"] for a, b in zip(labels, labels[1:]))
        assert {"front_rgb", "wrist_rgb"} <= set(ep.stream_names)
    assert session.snapshot().recording is None


def test_bad_calls_are_reported_not_run(session):
    session.call(Call("pick", ("golden cube",)))
    session.close_labelled_call()  # nothing open
    session.open_labelled_call(Call("home"))  # not recording
    assert session.wait_until_idle(10)
    errors = [e.text for e in events_of(session, "error")]
    assert any("golden cube" in t for t in errors)
    assert any("no labelled stretch is open" in t for t in errors)
    assert any("start recording" in t for t in errors)
    assert session.snapshot().connection == "live"


def test_estop_aborts_the_running_call_and_refuses_teleop_until_reset(session, tmp_path):
    objects = session.snapshot().objects
    session.start_recording()
    session.call(Call("pick", (objects[0],)))
    assert wait_for(lambda: session.snapshot().running_call is not None)
    time.sleep(0.5)
    session.estop("test")
    assert wait_for(lambda: session.snapshot().running_call is None, timeout=5)
    assert wait_for(lambda: session.snapshot().estop_reason == "test", timeout=5)
    time.sleep(0.6)  # the stopped arm settles where it was (a loaded CPU delays the e-stop by a tick or two)
    held = session.snapshot().samples[-1].ee_xyz
    session.set_teleop(TeleopIntent(linear=(1.0, 0.0, 0.0)))
    time.sleep(0.8)
    assert np.allclose(session.snapshot().samples[-1].ee_xyz, held, atol=0.01)  # no motion while stopped
    session.reset_estop()
    assert wait_for(lambda: session.snapshot().samples[-1].ee_xyz[0] > held[0] + 0.02, timeout=5)
    session.set_teleop(TeleopIntent())
    session.stop_recording()
    assert session.wait_until_idle(30)
    events = session.drain_events()
    assert any(e.kind == "error" and "aborted" in e.text for e in events), [e.text for e in events]
    saved = [e for e in events if e.kind == "saved"]
    with open_episode(saved[0].path) as ep:
        assert ep.calls[0]["status"] == "aborted"


def test_discard_leaves_nothing_and_close_saves_a_running_take(tmp_path):
    s = RecordSession(tmp_path, task="pick_place", seed=1)
    s.connect_robot()
    assert s.wait_until_live(30)
    s.start_recording()
    time.sleep(0.5)
    s.discard_recording()
    assert s.wait_until_idle(10)
    assert list(tmp_path.iterdir()) == []
    s.start_recording()
    time.sleep(0.5)
    s.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["pick_place_0000.h5"]
    with open_episode(tmp_path / files[0]) as ep:
        assert ep.frames >= 3


def test_connection_failures_are_shown_never_raised(tmp_path):
    def refuse(robot, inst, hz, ip):
        raise ArmError(f"cannot reach the arm at {ip}: connection refused")

    s = RecordSession(tmp_path, robot="franky", robot_ip="10.0.0.9", workcell_factory=refuse)
    s.connect_robot()
    assert s.wait_until_idle(10)
    snap = s.snapshot()
    assert snap.connection == "error" and "connection refused" in snap.message and "\n" not in snap.message
    s.start_recording()
    assert s.wait_until_idle(10)
    assert any("connect to a workcell first" in e.text for e in s.drain_events())
    s.close()


def test_episode_names_continue_after_the_highest_index(tmp_path):
    for name in ("stack_0000.h5", "stack_0007.h5.partial", "swap_0009.h5", "stack_x.h5"):
        (tmp_path / name).write_bytes(b"")
    assert next_episode_path(tmp_path, "stack").name == "stack_0008.h5"
    assert next_episode_path(tmp_path / "missing", "swap").name == "swap_0000.h5"


def test_franky_sim_through_the_session_teleop_a_logged_pick_and_estop(tmp_path):
    """The real-arm code path (franky against a franky-sim server process) behind the same session."""
    from recorders.sim.franky_sim_server import FrankySimUnavailable
    from recorders.workcell import open_workcell

    unavailable = []

    def factory(robot, inst, hz, ip):  # runs on the session's worker thread
        try:
            return open_workcell(robot, inst.scene, hz)
        except FrankySimUnavailable as e:
            unavailable.append(str(e))
            raise

    s = RecordSession(tmp_path, robot="franky-sim", task="stack", seed=0, workcell_factory=factory)
    try:
        s.connect_robot()
        live = s.wait_until_live(60)
        if unavailable:  # only "cannot run here" skips; any other failure fails
            pytest.skip(f"franky-sim cannot start here: {unavailable[0]}")
        assert live, s.snapshot().message
        assert wait_for(lambda: len(s.snapshot().samples) > 3)
        z0 = s.snapshot().samples[-1].ee_xyz[2]
        s.set_teleop(TeleopIntent(linear=(0.0, 0.0, -1.0)))
        assert wait_for(lambda: s.snapshot().samples[-1].ee_xyz[2] < z0 - 0.03, timeout=10)
        s.set_teleop(TeleopIntent())
        s.start_recording()
        s.call(Call("pick", (s.snapshot().objects[0],)))
        assert s.wait_until_idle(90)
        s.estop("test")
        assert wait_for(lambda: s.snapshot().estop_reason == "test", timeout=5)
        s.recover_arm()  # franky's recover_from_errors, as the GUI's "Recover arm" does once confirmed
        s.stop_recording()
        assert s.wait_until_idle(30)
        events = s.drain_events()
        assert any(e.kind == "call" and e.text.startswith("pick(") and e.text.endswith("ok") for e in events), events
        assert any(e.text.startswith("arm errors cleared") for e in events), events
        saved = [e for e in events if e.kind == "saved"]
        with open_episode(saved[0].path) as ep:
            assert ep.meta.robot == "franky-sim" and ep.calls[0]["source"] == "gui"
    finally:
        s.close()
