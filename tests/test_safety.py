"""The safety layer: random commands never leave the limits, the watchdog and the e-stop stop the arm."""
from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorders.arms.base import Arm, ArmCommand, ArmError, ArmInfo, ArmState
from recorders.arms.sim_arm import SimArm
from recorders.pose import Pose, quat_angle
from recorders.safety import SafeArm, SafetyLimits
from recorders.cell.scene import sample_layout

START = Pose.top_down((0.45, 0.0, 0.35))
TOL = 1e-9


class RecordingArm(Arm):
    """The safety layer's collaborator: records what reaches it; its clock is stepped or wall time."""

    def __init__(self, kind: str = "sim", control_hz: float = 10.0):
        self.info = ArmInfo(kind=kind, control_hz=control_hz, stepped=kind == "sim")
        self.log: list[tuple[str, ArmCommand | None]] = []
        self.stopped = threading.Event()
        self.clock = 0.0
        self.pose = START
        self.tracks = False  # True: the measured pose follows each command at once (an ideal arm)
        self.manual_clock = False  # True: a real-time arm whose clock the test sets in `clock`

    def connect(self) -> None:
        pass

    def disconnect(self) -> None:
        pass

    def state(self) -> ArmState:
        return ArmState(self.time(), np.zeros(7), np.zeros(7), self.pose, 0.08, False)

    def time(self) -> float:
        return self.clock if self.info.kind == "sim" or self.manual_clock else time.monotonic()

    def command(self, cmd: ArmCommand) -> None:
        self.log.append(("command", cmd))
        if self.tracks:
            self.pose = cmd.ee_target

    def wait_tick(self) -> None:
        self.clock += self.control_period

    def stop(self) -> None:
        self.log.append(("stop", None))
        self.stopped.set()

    @property
    def commands(self) -> list[ArmCommand]:
        return [c for kind, c in self.log if kind == "command"]


def check_within_limits(sent: list[ArmCommand], start: Pose, limits: SafetyLimits, hz: float,
                        boxed: bool = True) -> None:
    """Every command that reached the arm is finite, boxed, and one bounded step from the previous."""
    prev_pos, prev_quat = start.xyz, np.asarray(start.quat)
    for cmd in sent:
        pos, quat = cmd.ee_target.xyz, np.asarray(cmd.ee_target.quat)
        assert np.all(np.isfinite(pos)) and np.all(np.isfinite(quat)) and math.isfinite(cmd.gripper_force)
        assert limits.contains(pos, tol=TOL) or not boxed, pos
        assert abs(np.linalg.norm(quat) - 1.0) < 1e-9
        assert np.linalg.norm(pos - prev_pos) <= limits.max_step(hz) + TOL
        assert quat_angle(prev_quat, quat) <= limits.max_turn(hz) + 1e-6
        assert 0.0 <= cmd.gripper_force <= limits.max_gripper_force
        prev_pos, prev_quat = pos, quat


# ---- limits -------------------------------------------------------------------------------------
def test_limits_validate_and_name_the_bad_value():
    with pytest.raises(ValueError, match="max_speed must be a positive number, got -1"):
        SafetyLimits(max_speed=-1)
    with pytest.raises(ValueError, match="workspace z range .* got 0.5..0.1"):
        SafetyLimits(workspace_min=(0.2, -0.4, 0.5), workspace_max=(0.8, 0.4, 0.1))
    with pytest.raises(ValueError, match="watchdog_timeout .* nan"):
        SafetyLimits(watchdog_timeout=float("nan"))
    lim = SafetyLimits()
    assert lim.max_step(10.0) == pytest.approx(0.05)
    assert lim.max_turn(10.0) == pytest.approx(0.2)


def test_a_far_target_is_boxed_and_approached_one_step_per_tick():
    inner = RecordingArm()
    arm = SafeArm(inner)
    far = Pose.top_down((5.0, 0.0, -1.0))
    for _ in range(40):
        arm.command(ArmCommand(far, True, 1e6))
        arm.wait_tick()
    sent = inner.commands
    check_within_limits(sent, START, arm.limits, 10.0)
    assert sent[-1].ee_target.position == pytest.approx((0.8, 0.0, 0.005))  # the box corner it aimed at
    assert sent[-1].gripper_force == 70.0
    assert arm.events["workspace"] == 40 and arm.events["speed"] > 5 and arm.events["gripper_force"] == 40


def test_non_finite_and_degenerate_commands_are_refused():
    inner = RecordingArm()
    arm = SafeArm(inner)
    for bad in (Pose((float("nan"), 0.0, 0.3)), Pose((0.4, 0.0, 0.3), (0.0, 0.0, 0.0, 0.0)),
                Pose((0.4, float("inf"), 0.3))):
        with pytest.raises(ArmError, match="refused"):
            arm.command(ArmCommand(bad))
    with pytest.raises(ArmError, match="non-finite"):
        arm.command(ArmCommand(START, True, float("nan")))
    assert inner.commands == [] and arm.events["non_finite"] == 4


def test_an_arm_starting_outside_the_box_is_brought_in_with_bounded_steps():
    inner = RecordingArm()
    inner.pose = Pose.top_down((0.45, 0.0, 0.9))  # above the box
    arm = SafeArm(inner)
    for _ in range(10):
        arm.command(ArmCommand(Pose.top_down((0.45, 0.0, 0.3))))
        arm.wait_tick()
    check_within_limits(inner.commands, inner.pose, arm.limits, 10.0, boxed=False)
    heights = [c.ee_target.position[2] for c in inner.commands]
    assert heights[:4] == pytest.approx([0.85, 0.8, 0.75, 0.7])  # never further out, then inside
    assert all(arm.limits.contains(c.ee_target.position) for c in inner.commands[3:])
    assert heights[-1] == pytest.approx(0.4)


# ---- property test ------------------------------------------------------------------------------
wild = st.floats(allow_nan=True, allow_infinity=True)
coord = st.one_of(st.floats(-2.0, 2.0), wild, st.sampled_from([1e300, -1e300, 0.0]))
component = st.one_of(st.floats(-1.0, 1.0), wild, st.sampled_from([1e-300, 1e300, 0.0]))
commands = st.builds(
    lambda p, q, closed, force: ArmCommand(Pose(p, q), closed, force),
    st.tuples(coord, coord, coord),
    st.tuples(component, component, component, component),
    st.booleans(),
    st.one_of(st.floats(-1e6, 1e6), wild),
)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(st.lists(commands, min_size=100, max_size=100), st.integers(0, 120), st.sampled_from([10.0, 30.0]))
def test_random_commands_never_leave_the_limits(batch, estop_at, hz):
    """100 examples x 100 commands: only limited commands reach the arm, none after an e-stop."""
    inner = RecordingArm(control_hz=hz)
    inner.tracks = True  # after a watchdog stop the next step is limited from the measured pose
    arm = SafeArm(inner)
    logged_before_estop = len(batch)  # the log's length when the e-stop came (watchdog stops may precede it)
    for i, cmd in enumerate(batch):
        if i == estop_at:
            logged_before_estop = len(inner.log)
            arm.estop("property test")
        try:
            arm.command(cmd)
        except ArmError as e:
            assert "e-stop engaged" in str(e) if i >= estop_at else "refused" in str(e)
        arm.wait_tick()
    sent = inner.commands
    check_within_limits(sent, START, arm.limits, hz)
    if estop_at < len(batch):
        after = inner.log[logged_before_estop:]
        assert after and all(kind == "stop" for kind, _ in after)


def test_random_commands_on_the_simulated_arm_stay_in_the_box():
    """~200 random commands against the real in-process arm: sent and measured poses stay bounded."""
    rng = np.random.default_rng(7)
    spec = sample_layout(rng, ["red", "blue"], ["green"])
    sent: list[ArmCommand] = []

    class RecordedSimArm(SimArm):
        def command(self, cmd: ArmCommand) -> None:
            sent.append(cmd)
            super().command(cmd)

    sim = RecordedSimArm(spec)
    arm = SafeArm(sim)
    arm.connect()
    try:
        start = arm.state().ee_pose
        measured = [start.xyz]
        for _ in range(200):
            p = rng.uniform(-1.5, 1.5, 3) * rng.choice([1.0, 100.0])
            q = rng.normal(size=4)
            arm.command(ArmCommand(Pose(tuple(p), tuple(q)), bool(rng.integers(2)), float(rng.uniform(-1e3, 1e3))))
            arm.wait_tick()
            measured.append(arm.state().ee_pose.xyz)
        check_within_limits(sent, start, arm.limits, arm.info.control_hz)
        measured = np.array(measured)
        assert all(arm.limits.contains(p, tol=0.03) for p in measured)  # tracking overshoot only
    finally:
        arm.disconnect()


# ---- watchdog and e-stop -------------------------------------------------------------------------
def test_watchdog_stops_a_stepped_arm_on_its_own_clock():
    inner = RecordingArm("sim")
    arm = SafeArm(inner, SafetyLimits(watchdog_timeout=0.5))
    for _ in range(20):  # commands every tick: never tripped
        arm.wait_tick()
        arm.command(ArmCommand(START))
    assert not inner.stopped.is_set()
    ticks = 0
    while not inner.stopped.is_set():
        arm.wait_tick()
        ticks += 1
    assert ticks == 5  # 0.5 s at 10 Hz after the last command, on the arm's clock, not the wall clock
    for _ in range(10):
        arm.wait_tick()
    assert [k for k, _ in inner.log].count("stop") == 1 and arm.events["watchdog"] == 1


def test_watchdog_thread_stops_a_real_time_arm():
    inner = RecordingArm("franky")
    arm = SafeArm(inner, SafetyLimits(watchdog_timeout=0.1))
    arm.connect()
    try:
        t0 = time.monotonic()
        arm.command(ArmCommand(START))
        assert inner.stopped.wait(timeout=5.0), "the watchdog did not stop a stalled arm"
        assert time.monotonic() - t0 >= 0.1
        assert arm.events["watchdog"] == 1
    finally:
        arm.disconnect()


def test_estop_from_another_thread_latches_until_reset():
    inner = RecordingArm("franky")
    arm = SafeArm(inner)
    arm.connect()
    started = threading.Event()

    def press():
        started.wait(5.0)
        arm.estop("operator pressed Esc")

    presser = threading.Thread(target=press)
    presser.start()
    refused = None
    try:
        for i in range(100_000):
            if i == 50:
                started.set()
            try:
                arm.command(ArmCommand(START))
            except ArmError as e:
                refused = str(e)
                break
        presser.join(5.0)
        assert refused is not None and refused.startswith("e-stop engaged: operator pressed Esc")
        stop_index = inner.log.index(("stop", None))
        assert all(kind == "stop" for kind, _ in inner.log[stop_index:])
        n = len(inner.commands)
        with pytest.raises(ArmError, match="e-stop engaged"):
            arm.command(ArmCommand(START))
        assert len(inner.commands) == n and arm.estopped
        arm.reset_estop()
        arm.command(ArmCommand(START))
        assert len(inner.commands) == n + 1 and not arm.estopped
    finally:
        arm.disconnect()


# ---- speed by elapsed time ------------------------------------------------------------------------
FAR = Pose.top_down((0.75, 0.4, 0.6))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 0.3), min_size=1, max_size=40), st.sampled_from([10.0, 100.0]))
def test_the_target_moves_no_faster_than_the_limit_in_elapsed_time(gaps, hz):
    """Commands at random gaps on a real-time arm's clock: each step is at most max_speed times the
    time since the last one (at most one period's worth after a pause), however many commands."""
    inner = RecordingArm("franky", control_hz=hz)
    inner.manual_clock = True
    arm = SafeArm(inner)
    lim, period = arm.limits, 1.0 / hz
    for gap in gaps:
        inner.clock += gap
        arm.command(ArmCommand(FAR, False))
    positions = [START.xyz] + [c.ee_target.xyz for c in inner.commands]
    turns = [np.asarray(START.quat)] + [np.asarray(c.ee_target.quat) for c in inner.commands]
    allowed = [period] + [min(g, period) for g in gaps[1:]]  # the first step starts from the measured pose
    for i, dt in enumerate(allowed):
        assert np.linalg.norm(positions[i + 1] - positions[i]) <= lim.max_speed * dt + TOL
        assert quat_angle(turns[i], turns[i + 1]) <= lim.max_rotation_speed * dt + 1e-6


def test_a_burst_of_commands_moves_the_target_by_the_elapsed_time_only():
    """20 commands as fast as they go (about a millisecond): the target moves one period's step for the
    first plus max_speed times the burst's duration, not 20 steps."""
    inner = RecordingArm("franky", control_hz=10.0)
    arm = SafeArm(inner)
    t0 = time.monotonic()
    for _ in range(20):
        arm.command(ArmCommand(FAR, False))
    elapsed = time.monotonic() - t0
    moved = np.linalg.norm(inner.commands[-1].ee_target.xyz - START.xyz)
    assert moved <= arm.limits.max_step(10.0) + arm.limits.max_speed * elapsed + TOL
    assert moved < 0.5 * np.linalg.norm(FAR.xyz - START.xyz)


def test_commands_between_two_ticks_of_a_stepped_arm_do_not_move_the_target_further():
    """Simulated time stands still between ticks, so a second command in the same tick adds no step."""
    inner = RecordingArm("sim")
    arm = SafeArm(inner)
    first = arm.command(ArmCommand(FAR))
    again = arm.command(ArmCommand(FAR))
    assert again.ee_target.position == pytest.approx(first.ee_target.position)
    arm.wait_tick()
    moved = np.linalg.norm(arm.command(ArmCommand(FAR)).ee_target.xyz - first.ee_target.xyz)
    assert moved == pytest.approx(arm.limits.max_step(10.0))


# ---- e-stop latency ------------------------------------------------------------------------------
class SlowArm(RecordingArm):
    """A real-time arm whose `command` blocks until the test releases it (a slow network, a busy driver)."""

    def __init__(self):
        super().__init__("franky")
        self.entered = threading.Event()
        self.release = threading.Event()

    def command(self, cmd: ArmCommand) -> None:
        self.entered.set()
        self.release.wait(30.0)
        super().command(cmd)  # it reaches the arm only now


def test_estop_does_not_wait_for_a_command_in_progress_and_stops_after_it():
    inner = SlowArm()
    arm = SafeArm(inner)
    outcome: list[BaseException | ArmCommand] = []

    def send():
        try:
            outcome.append(arm.command(ArmCommand(START.moved(dz=0.01))))
        except ArmError as e:
            outcome.append(e)

    sender = threading.Thread(target=send, name="slow-command")
    sender.start()
    estopped = threading.Event()
    presser = threading.Thread(target=lambda: (arm.estop("operator pressed Esc"), estopped.set()), name="estop")
    try:
        assert inner.entered.wait(10.0)
        presser.start()
        assert estopped.wait(10.0), "estop() waited behind the command in progress"
        assert not inner.release.is_set() and sender.is_alive()  # the command is still blocked
        assert inner.log == [("stop", None)] and arm.estopped
    finally:
        inner.release.set()
        sender.join(10.0)
        presser.join(10.0)
    assert not sender.is_alive()
    # The command reached the arm after the e-stop's stop: it was stopped again and reported refused.
    assert [kind for kind, _ in inner.log] == ["stop", "command", "stop"]
    assert isinstance(outcome[0], ArmError) and "e-stop engaged: operator pressed Esc" in str(outcome[0])
    with pytest.raises(ArmError, match="e-stop engaged"):
        arm.command(ArmCommand(START))
    assert len(inner.commands) == 1
    assert not hasattr(arm, "inner")  # the unguarded arm is reachable only through the safety layer
