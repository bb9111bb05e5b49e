"""Smooth franky control: the smoothness metrics of `bench franky` on synthetic paths, the stream
motions FrankyArm builds, and on franky-sim a streamed teleop path that the stream mode executes
without braking between ticks, where the old waypoint mode stops and goes."""
from __future__ import annotations

import numpy as np
import pytest

from app.bench_franky_motion import (LATE_S, go_to_start, measure_smoothness, open_cell, savgol_derivatives,
                                      smoothness_metrics)
from franky_sim_support import MIN_REALTIME_FACTOR_DEMO, is_transient
from recorders.arms.base import ArmCommand, ArmError
from recorders.pose import Pose, quat_angle

SPEED = 0.15  # m/s of the synthetic paths
TICK = 0.1  # s between their targets
# The bound the stream mode keeps and the old mode fails: 10 ms steps of franky's commanded TCP speed
# that change it by more than 1 m/s^2, per second (measured: stream ~2-5, waypoint ~85-90, also with
# franky-sim at 0.55x real time).
MAX_COMMANDED_JUMPS_PER_S = 20.0
MIN_ON_TIME = 0.8  # share of the path on which the stream must have been on time for the dips to count


# ---- the metrics, on synthetic paths -------------------------------------------------------------------
def test_savgol_derivatives_are_exact_on_a_cubic():
    dt = 0.001
    t = np.arange(0.0, 0.2, dt)
    x = np.stack([1.0 + 2.0 * t - 3.0 * t ** 2 + 4.0 * t ** 3, 5.0 * t ** 3], axis=1)  # (N, 2)
    pos, vel, acc, jerk = savgol_derivatives(x, dt, 41)
    tc = t[20:-20]
    assert pos.shape == vel.shape == (len(t) - 40, 2)
    assert np.allclose(vel[:, 0], 2.0 - 6.0 * tc + 12.0 * tc ** 2, atol=1e-6)
    assert np.allclose(acc[:, 1], 30.0 * tc, atol=1e-5)
    assert np.allclose(jerk, [24.0, 30.0], atol=1e-3)


def _corner(s: np.ndarray) -> np.ndarray:
    """(N, 3) points at arc length `s` (m) along +x for 0.2 m, a quarter circle of 2 cm, then +y."""
    r, leg = 0.02, 0.2
    arc = np.pi * r / 2
    p = np.zeros((len(s), 3))
    first, turn, last = s < leg, (s >= leg) & (s < leg + arc), s >= leg + arc
    p[first, 0] = s[first]
    a = (s[turn] - leg) / r
    p[turn, 0], p[turn, 1] = leg + r * np.sin(a), r * (1 - np.cos(a))
    p[last, 0], p[last, 1] = leg + r, r + s[last] - leg - arc
    return p + (0.4, -0.1, 0.3)


def _samples(progress, duration: float = 3.0, seed: int = 0):
    """A measured path like the sampler's: irregular robot times (some repeated), 2 um of noise."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.choice([0.001, 0.002, 0.003], size=int(duration / 0.002)))
    t = np.concatenate([t, t[::50]])  # a state read twice within a robot tick
    return t, _corner(progress(t)) + rng.normal(0.0, 2e-6, (len(t), 3))


def _stream(delay: float = 0.0, every: float = TICK):
    """The targets of a constant-speed stream along the corner, sent every `every` s, `delay` s ahead."""
    t_cmd = np.arange(0.0, 3.2, every)
    return t_cmd, _corner(SPEED * (t_cmd + delay))


def test_a_smooth_path_has_no_jumps_or_dips_and_its_lag_is_found():
    lag = 0.2
    t, p = _samples(lambda t: SPEED * np.maximum(t - lag, 0.0))
    t_cmd, p_cmd = _stream()
    m = smoothness_metrics(t, p, t_cmd, p_cmd, (0.5, 2.5))
    assert m.speed_dips_per_s == 0 and m.velocity_jumps_per_s < 1.0
    assert m.speed_ratio == pytest.approx(1.0, abs=0.03) and m.commanded_speed == pytest.approx(SPEED, rel=0.03)
    assert m.lag_s == pytest.approx(lag, abs=0.01) and m.path_error_mm < 1.0 and m.on_time == 1.0
    assert m.rms_jerk < 12.0  # the corner (v^2 / r = 1.1 m/s^2, entered at once) and the noise only


def _stop_and_go(t):
    """Arc length of a path that brakes to a standstill every tick: speed SPEED * (1 - cos(2 pi t / TICK))."""
    w = 2 * np.pi / TICK
    return SPEED * (t - np.sin(w * t) / w)


def test_stop_and_go_dips_every_tick_and_jumps():
    t, p = _samples(_stop_and_go)
    t_cmd, p_cmd = _stream()
    smooth = smoothness_metrics(*_samples(lambda t: SPEED * t), t_cmd, p_cmd, (0.5, 2.5))
    m = smoothness_metrics(t, p, t_cmd, p_cmd, (0.5, 2.5))
    assert m.speed_dips_per_s == pytest.approx(1 / TICK, abs=1.0)
    assert m.velocity_jumps_per_s > 50.0 and m.rms_jerk > 20 * max(smooth.rms_jerk, 1.0)
    assert m.speed_ratio == pytest.approx(1.0, abs=0.03)


def test_dips_while_the_stream_is_late_are_not_counted():
    t, p = _samples(_stop_and_go)
    on_time = smoothness_metrics(t, p, *_stream(), (0.5, 2.5))
    late = smoothness_metrics(t, p, *_stream(every=2 * LATE_S), (0.5, 2.5))  # every target LATE_S late
    assert late.on_time == pytest.approx(0.5, abs=0.05)
    assert 0 < late.speed_dips_per_s < 0.7 * on_time.speed_dips_per_s


def test_a_window_outside_the_samples_is_refused():
    t, p = _samples(lambda t: SPEED * t)
    with pytest.raises(ValueError, match="not inside the samples"):
        smoothness_metrics(t, p, *_stream(), (0.5, 3.5))


# ---- the motions FrankyArm streams (franky's motion objects, no robot) -------------------------------
@pytest.fixture
def arm():
    franky = pytest.importorskip("franky")
    from recorders.arms.franky_arm import FrankyArm

    arm = FrankyArm("127.0.0.9")  # never connected: only its motions are built
    arm._franky = franky
    arm._dynamics = 0.3 * np.array([[1.7, 2.5], [13.0, 25.0], [6500.0, 12500.0]])  # franky's FR3 limits
    return arm


def test_a_streamed_target_is_passed_short_by_the_braking_distance_then_held(arm):
    target = Pose.top_down((0.5, 0.0, 0.3), 0.2)
    motion = arm._motion_to(target, np.array([0.2, 0.0, 0.0, 0.0, 0.0, 0.0]))
    passing, rest = motion.waypoints
    assert not motion.return_when_finished
    assert passing.minimum_time.to_msec() == 150  # 1.5 control periods at 10 Hz
    a, j = 0.3 * 13.0, 0.3 * 6500.0
    braking = 0.2 ** 2 / (2 * a) + 0.2 * a / (2 * j)
    short = target.xyz - np.asarray(passing.target.pose.end_effector_pose.translation)
    assert short == pytest.approx([1.1 * braking, 0.0, 0.0], abs=1e-9)
    assert np.asarray(passing.target.velocity.end_effector_twist.linear) == pytest.approx([0.2, 0.0, 0.0])
    assert np.asarray(rest.target.pose.end_effector_pose.translation) == pytest.approx(target.xyz)
    assert np.asarray(rest.target.velocity.end_effector_twist.linear) == pytest.approx([0.0, 0.0, 0.0])


def test_the_stream_velocity_follows_the_robot_clock_and_stays_within_the_limits(arm):
    start = Pose.top_down((0.5, 0.0, 0.3), 0.0)
    assert np.all(arm._stream_velocity(start, 10.0) == 0.0)  # a new stream starts from rest
    v = arm._stream_velocity(start.moved(dx=0.02), 10.1)
    assert v[:3] == pytest.approx([0.2, 0.0, 0.0]) and v[3:] == pytest.approx([0.0, 0.0, 0.0])
    turned = Pose.top_down((0.52, 0.0, 0.3), 0.05)
    v = arm._stream_velocity(turned, 10.2)
    assert v[5] == pytest.approx(0.5, rel=1e-6)  # 0.05 rad in 0.1 s about the base z axis
    # A server running at half speed: the targets come twice as fast on the robot's clock.
    for k in range(20):
        v = arm._stream_velocity(turned.moved(dx=0.01 * (k + 1)), 10.25 + 0.05 * k)
    assert v[:3] == pytest.approx([0.2, 0.0, 0.0], rel=0.02)
    jump = arm._stream_velocity(turned.moved(dx=1.0), 11.3)  # a step no arm can follow at 10 Hz
    assert np.linalg.norm(jump[:3]) == pytest.approx(0.9 * 0.3 * 1.7)
    assert np.all(arm._stream_velocity(start, 20.0) == 0.0)  # after a gap: a new stream


def test_the_waypoint_mode_sends_the_target_at_rest(arm):
    arm.motion_mode = "waypoint"
    (only,) = arm._motion_to(Pose.top_down((0.5, 0.0, 0.3)), np.zeros(6)).waypoints
    assert only.minimum_time is None and arm.info.details["motion_mode"] == "waypoint"
    with pytest.raises(ValueError, match="motion_mode must be one of stream, waypoint"):
        arm.motion_mode = "velocity"


# ---- on franky-sim ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cell():
    from recorders.sim.franky_sim_server import FrankySimUnavailable

    try:
        wc = open_cell()
    except FrankySimUnavailable as e:
        pytest.skip(f"franky-sim cannot start here: {e}")
    yield wc
    wc.close()
    assert not wc.server.alive


def _run(cell, mode: str) -> dict:
    """A teleop run in `mode`; one transient planner error is recovered from by running again."""
    for attempt in range(2):
        r = measure_smoothness(mode, "teleop", cell=cell)
        if r["error"] is None or attempt == 1 or not is_transient(ArmError(r["error"])):
            break
    if r["realtime_factor"] < MIN_REALTIME_FACTOR_DEMO:  # the stream is paced by the wall clock
        pytest.skip(f"the {mode} teleop run: franky-sim's loop reached only {r['realtime_factor']:.2f}x real "
                    f"time on this machine (it needs a free core, this test >= {MIN_REALTIME_FACTOR_DEMO}x)")
    assert r["error"] is None, r["error"]
    return r


@pytest.mark.slow
def test_streamed_teleop_targets_never_brake_between_ticks(cell):
    from recorders.arms.franky_arm import FrankyArm

    r = _run(cell, "stream")
    executed, commanded = r["metrics"]["executed"], r["metrics"]["commanded"]
    if commanded["on_time"] < MIN_ON_TIME:
        pytest.skip(f"the control loop was late on {1 - commanded['on_time']:.0%} of the path (a busy machine)")
    # never slows below half the stream's speed, but for one hiccup: the teleop target waits for an arm
    # that franky-sim slowed for a moment (a fresh clone's full suite saw one dip in 2.4 s)
    assert commanded["speed_dips_per_s"] * commanded["window_s"] <= 1.01, commanded
    if commanded["velocity_jumps_per_s"] >= MAX_COMMANDED_JUMPS_PER_S and r["overruns"]:
        pytest.skip(f"{commanded['velocity_jumps_per_s']} velocity jumps a second while franky-sim's loop ran "
                    f"{r['overruns']} ticks late (a busy machine: the jumps are the simulator's)")
    assert commanded["velocity_jumps_per_s"] < MAX_COMMANDED_JUMPS_PER_S, commanded
    assert executed["speed_ratio"] > 0.8 and executed["lag_s"] < 0.4, executed  # it keeps up with the stream
    assert cell._franky_arm.motion_mode == "stream" and isinstance(cell._franky_arm, FrankyArm)


@pytest.mark.slow
def test_the_old_waypoint_mode_stops_and_goes(cell):
    r = _run(cell, "waypoint")
    commanded = r["metrics"]["commanded"]
    assert commanded["velocity_jumps_per_s"] > 2 * MAX_COMMANDED_JUMPS_PER_S, commanded
    assert cell._franky_arm.motion_mode == "stream"  # the run put the default back


@pytest.mark.slow
def test_a_stream_that_stops_coming_ends_at_rest_on_its_last_target(cell):
    """Targets at 0.2 m/s, then none (a stalled control loop): franky's commanded TCP never passes the
    last target the safety layer sent, and comes to rest on it."""
    from recorders.safety import EVENT_WATCHDOG

    go_to_start(cell)
    target = cell.arm.state().ee_pose
    for _ in range(12):
        target = cell.arm.command(ArmCommand(target.moved(dx=0.02))).ee_target
        cell.arm.wait_tick()
    trips = cell.arm.events[EVENT_WATCHDOG]
    t0, furthest = cell.server.stats()["sim_time"], -np.inf
    while cell.server.stats()["sim_time"] - t0 < 0.3:  # well past the stream horizon and the braking
        s = cell._franky_arm.robot_state()
        furthest = max(furthest, float(s.O_T_EE_c.translation[0]))
    s = cell._franky_arm.robot_state()
    rest = Pose(tuple(s.O_T_EE_c.translation), target.quat)
    stopped_early = cell.arm.events[EVENT_WATCHDOG] > trips  # a slow server: the watchdog stopped the arm
    cell.arm.stop()
    # at 0.2 m/s a plain stop would run ~5 mm past it; 2.5 mm allows the late ticks of a franky-sim
    # sharing the CPU with other work (0.55 mm seen on a quiet machine, 1.6 mm with five processes)
    assert furthest - target.xyz[0] < 2.5e-3
    if stopped_early:
        pytest.skip("franky-sim ran too slowly to see the arm come to rest before the watchdog stopped it")
    assert np.linalg.norm(rest.xyz - target.xyz) < 5e-4
    q = s.O_T_EE_c.quaternion  # (x, y, z, w)
    assert quat_angle(np.array([q[3], q[0], q[1], q[2]]), np.asarray(target.quat)) < 0.01
