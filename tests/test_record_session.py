"""The record session without widgets: connect, teleop, logged calls, hotkey labels, takes, e-stop.

Logic tests turn real-time pacing off (`realtime=False`: the simulated arm runs as fast as the worker
loops) and wait on the session's condition (`wait_for`, `wait_for_event`), never on the wall clock;
the timeouts only bound a hang.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from app.record_session import RecordSession
from app.recording import next_episode_path
from recorders.arms.base import ArmError
from recorders.episode_file import open_episode
from recorders.robot_api_spec import Call
from recorders.safety import SafetyLimits
from recorders.teleop import TeleopIntent
from franky_sim_support import MIN_REALTIME_FACTOR_DEMO, loop_rate, skip_if_below_real_time

pytestmark = pytest.mark.slow
HANG_S = 120.0  # only a hung worker takes this long


@pytest.fixture
def session(tmp_path):
    s = RecordSession(tmp_path / "data", task="stack", seed=3, realtime=False)
    s.connect_robot()
    assert s.wait_until_live(HANG_S), s.snapshot().message
    yield s
    s.close(HANG_S)
    assert not s._thread.is_alive()  # the worker never outlives the session


def events_of(s, kind=None):
    return [e for e in s.drain_events() if kind is None or e.kind == kind]


def ticks_pass(s, n: int) -> None:
    """Wait until `n` more control ticks have run."""
    target = s.snapshot().tick + n
    assert s.wait_for(lambda snap: snap.tick >= target, HANG_S)


def test_connects_to_the_sim_and_publishes_cameras_state_and_scene(session):
    assert session.wait_for(lambda snap: len(snap.samples) >= 5, HANG_S)
    snap = session.snapshot()
    assert snap.connection == "live" and snap.robot == "sim"
    assert set(snap.images) == {"front", "wrist"}
    assert all(img.shape == (128, 128, 3) and img.dtype == np.uint8 for img in snap.images.values())
    assert len(snap.objects) >= 2 and snap.zones and snap.instruction.startswith("stack")
    times = [s.t for s in snap.samples]
    assert np.allclose(np.diff(times), 0.1)  # one sample per 10 Hz control tick


def test_teleop_moves_the_tcp_at_the_chosen_speed_per_control_tick(session):
    ticks_pass(session, 3)
    x0 = session.snapshot().samples[-1].ee_xyz
    session.set_speed_level(2)  # 10 cm/s: 1 cm per 10 Hz tick
    session.set_teleop(TeleopIntent(linear=(0.0, 0.0, -1.0)))
    ticks_pass(session, 15)
    session.set_teleop(TeleopIntent())
    ticks_pass(session, 5)  # the arm catches up with the last target
    samples = session.snapshot().samples
    z = np.array([s.ee_xyz[2] for s in samples])
    steps = -np.diff(z)
    assert steps.max() == pytest.approx(0.01, abs=0.002)  # never faster than the chosen speed
    assert (steps > 0.008).sum() >= 8  # and at it while the key was held
    x1 = samples[-1].ee_xyz
    assert abs(x1[0] - x0[0]) < 0.01 and abs(x1[1] - x0[1]) < 0.01 and x1[2] < x0[2] - 0.08


def test_real_time_pacing_holds_a_simulated_arm_to_the_wall_clock(tmp_path):
    s = RecordSession(tmp_path, task="stack", seed=3, obs="state")
    try:
        s.connect_robot()
        assert s.wait_until_live(HANG_S)
        ticks_pass(s, 2)
        wall0, tick0 = time.monotonic(), s.snapshot().tick
        ticks_pass(s, 10)
        ticks = s.snapshot().tick - tick0
        assert time.monotonic() - wall0 >= (ticks - 1) / s.control_hz  # never faster than real time
    finally:
        s.close()


def test_a_teleop_command_outside_the_workspace_is_recorded_clamped(tmp_path):
    from recorders.cell.registry import open_workcell

    box_max_x = 0.47  # just ahead of the arm's start

    def factory(robot, inst, hz, ip):
        return open_workcell(robot, inst.scene, hz, safety=SafetyLimits(workspace_max=(box_max_x, 0.45, 0.7)))

    s = RecordSession(tmp_path, task="stack", seed=3, obs="state", realtime=False, workcell_factory=factory)
    try:
        s.connect_robot()
        assert s.wait_until_live(HANG_S)
        s.start_recording()
        s.set_speed_level(2)
        s.set_teleop(TeleopIntent(linear=(1.0, 0.0, 0.0)))  # forward, into the box's front wall
        ticks_pass(s, 20)
        s.set_teleop(TeleopIntent())
        s.stop_recording()
        saved = s.wait_for_event("saved", HANG_S)
    finally:
        s.close()
    with open_episode(saved.path) as ep:
        action = ep.stream_data("action")[:]
    assert action[:, 0].max() <= box_max_x + 1e-6  # what the arm was sent, not the teleop target
    assert action[-1, 0] == pytest.approx(box_max_x, abs=1e-6)


def test_a_take_with_palette_calls_and_a_hotkey_stretch_is_saved_with_its_labels(session, tmp_path):
    objects = session.snapshot().objects
    session.start_recording("stack two cubes, by hand and by skill")
    session.call(Call("pick", (objects[0],)))
    session.call(Call("place", (objects[0], objects[1])))
    assert session.wait_until_idle(HANG_S)
    session.open_labelled_call(Call("home"))
    assert session.wait_for(lambda snap: snap.open_call == "home()", HANG_S)
    session.set_teleop(TeleopIntent(linear=(0.0, 0.0, 1.0)))
    ticks_pass(session, 6)
    session.set_teleop(TeleopIntent())
    session.close_labelled_call()
    session.stop_recording()
    saved = session.wait_for_event("saved", HANG_S)
    assert saved is not None and "success" in saved.text
    assert len(events_of(session, "saved")) == 1
    with open_episode(saved.path) as ep:
        assert ep.instruction == "stack two cubes, by hand and by skill" and ep.success is True
        sources = [(c.code, c.source, c.status) for c in ep.calls]
        assert sources == [(f'pick("{objects[0]}")', "gui", "ok"),
                           (f'place("{objects[0]}", "{objects[1]}")', "gui", "ok"), ("home()", "hotkey", "ok")]
        labels = ep.labels
        assert labels[0].start == 0 and labels[-1].end == ep.frames
        assert all(a.end == b.start for a, b in zip(labels, labels[1:]))
        assert {"front_rgb", "wrist_rgb"} <= set(ep.stream_names)
        assert ep.provenance.driver == "gui" and ep.provenance.robot == "sim"
    assert session.snapshot().recording is None


def test_bad_calls_are_reported_not_run(session):
    session.call(Call("pick", ("golden cube",)))
    session.close_labelled_call()  # nothing open
    session.open_labelled_call(Call("home"))  # not recording
    assert session.wait_until_idle(HANG_S)
    errors = [e.text for e in events_of(session, "error")]
    assert any("golden cube" in t for t in errors)
    assert any("no labelled stretch is open" in t for t in errors)
    assert any("start recording" in t for t in errors)
    assert session.snapshot().connection == "live"


def test_estop_aborts_the_running_call_and_refuses_teleop_until_reset(session, tmp_path):
    objects = session.snapshot().objects
    session.start_recording()
    session.call(Call("pick", (objects[0],)))
    assert session.wait_for(lambda snap: snap.running_call is not None, HANG_S)
    ticks_pass(session, 5)
    session.estop("test")
    assert session.wait_for(lambda snap: snap.running_call is None and snap.estop_reason == "test", HANG_S)
    ticks_pass(session, 6)  # the stopped arm settles where it was
    held = session.snapshot().samples[-1].ee_xyz
    session.set_teleop(TeleopIntent(linear=(1.0, 0.0, 0.0)))
    ticks_pass(session, 8)
    assert np.allclose(session.snapshot().samples[-1].ee_xyz, held, atol=0.01)  # no motion while stopped
    session.reset_estop()
    assert session.wait_for(lambda snap: snap.samples[-1].ee_xyz[0] > held[0] + 0.02, HANG_S)
    session.set_teleop(TeleopIntent())
    session.stop_recording()
    saved = session.wait_for_event("saved", HANG_S)
    events = session.drain_events()
    assert any(e.kind == "error" and "aborted" in e.text for e in events), [e.text for e in events]
    with open_episode(saved.path) as ep:
        assert ep.calls[0].status == "aborted"


def test_discard_leaves_nothing_and_close_saves_a_running_take(tmp_path):
    s = RecordSession(tmp_path, task="pick_place", seed=1, realtime=False)
    s.connect_robot()
    assert s.wait_until_live(HANG_S)
    s.start_recording()
    assert s.wait_for(lambda snap: snap.recording is not None, HANG_S)
    ticks_pass(s, 5)
    s.discard_recording()
    assert s.wait_for_event("discarded", HANG_S) is not None
    assert list(tmp_path.iterdir()) == []
    s.start_recording()
    assert s.wait_for(lambda snap: snap.recording is not None, HANG_S)
    ticks_pass(s, 5)
    s.close(HANG_S)
    assert not s._thread.is_alive()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["pick_place_0000.h5"]
    with open_episode(tmp_path / files[0]) as ep:
        assert ep.frames >= 3


def test_connection_failures_are_shown_never_raised(tmp_path):
    def refuse(robot, inst, hz, ip):
        raise ArmError(f"cannot reach the arm at {ip}: connection refused")

    s = RecordSession(tmp_path, robot="franky", robot_ip="10.0.0.9", workcell_factory=refuse)
    s.connect_robot()
    assert s.wait_until_idle(HANG_S)
    snap = s.snapshot()
    assert snap.connection == "error" and "connection refused" in snap.message and "\n" not in snap.message
    s.start_recording()
    assert s.wait_until_idle(HANG_S)
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
    from recorders.cell.registry import open_workcell

    unavailable, cells = [], []

    def factory(robot, inst, hz, ip):  # runs on the session's worker thread
        try:
            cells.append(open_workcell(robot, inst.scene, hz))
            return cells[-1]
        except FrankySimUnavailable as e:
            unavailable.append(str(e))
            raise

    s = RecordSession(tmp_path, robot="franky-sim", task="stack", seed=0, workcell_factory=factory)
    try:
        s.connect_robot()
        live = s.wait_until_live(HANG_S)
        if unavailable:  # only "cannot run here" skips; any other failure fails
            pytest.skip(f"franky-sim cannot start here: {unavailable[0]}")
        assert live, s.snapshot().message
        assert s.wait_for(lambda snap: len(snap.samples) > 3, HANG_S)
        z0 = s.snapshot().samples[-1].ee_xyz[2]
        s.set_teleop(TeleopIntent(linear=(0.0, 0.0, -1.0)))
        assert s.wait_for(lambda snap: snap.samples[-1].ee_xyz[2] < z0 - 0.03, HANG_S)
        s.set_teleop(TeleopIntent())
        s.start_recording()
        before = cells[-1].server.stats()
        s.call(Call("pick", (s.snapshot().objects[0],)))
        assert s.wait_until_idle(HANG_S)
        picked = [e for e in s.drain_events() if e.kind == "call" and e.text.startswith("pick(")]
        if not (picked and picked[-1].text.endswith("ok")):  # a grasp counts ticks: it needs a real-time loop
            skip_if_below_real_time(loop_rate(before, cells[-1].server.stats()), MIN_REALTIME_FACTOR_DEMO,
                                    f"the logged pick ({picked[-1].text if picked else 'no call event'})")
        s.estop("test")
        assert s.wait_for(lambda snap: snap.estop_reason == "test", HANG_S)
        s.recover_arm()  # franky's recover_from_errors, as the GUI's "Recover arm" does once confirmed
        s.stop_recording()
        assert s.wait_until_idle(HANG_S)
        events = s.drain_events()
        assert picked and picked[-1].text.endswith("ok"), picked
        assert any(e.text.startswith("arm errors cleared") for e in events), events
        saved = [e for e in events if e.kind == "saved"]
        with open_episode(saved[0].path) as ep:
            assert ep.meta.robot == "franky-sim" and ep.calls[0].source == "gui"
    finally:
        s.close()
