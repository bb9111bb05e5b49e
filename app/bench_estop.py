"""`python main.py bench estop [--trials N] [--json]`: e-stop latency, from the request to a stopped arm.

For each robot kind that can run here (`sim`, and `franky-sim` when franky-sim is installed), the
arm is driven at the safety layer's speed limit towards a target 0.2 m away, and the e-stop is
pressed while it moves. Three figures per trial, median and max over the trials:

- `estop_call_ms`: wall time for `SafeArm.estop()` to return (the stop has been sent to the arm);
- `stop_s`: time from the request until the tool centre point stands still (speed below
  STOPPED_SPEED_M_S), on the arm's clock: simulated time for `sim` (resolution one control tick),
  time.monotonic for `franky-sim`, sampled every POLL_S by an operator thread while the control
  loop keeps ticking, as in a recording session;
- `stopping_distance_mm`: how far the TCP went from where it was when the e-stop was pressed.

The stop is judged on the TCP's measured position rather than the joints' reported velocities:
franky-sim's joint 7 chatters at its torque limit, so its reported velocity never settles.
"""
from __future__ import annotations

import statistics
import sys
import threading
import time

import numpy as np

from app.errors import print_json

DEFAULT_TRIALS = 5
CONTROL_HZ = 10.0
TRAVEL_M = 0.2  # each trial drives this far along y, alternating sides of the start pose
MOVING_TICKS = 4  # ticks of motion before the e-stop: the arm is at speed by then
STOPPED_SPEED_M_S = 0.005
SPEED_WINDOW_S = 0.02  # the TCP speed is measured over this window (franky-sim)
POLL_S = 0.002
HOLD_S = 0.3  # a stop counts once the arm has stood still this long
GIVE_UP_S = 3.0  # a trial whose arm never stops is reported as such


def _scene():
    from recorders.cell.scene import CubeSpec, SceneSpec

    return SceneSpec((CubeSpec("red cube", "red", (0.5, 0.1), 0.3),), ())


def _summary(values: list[float], digits: int) -> dict:
    return {"median": round(statistics.median(values), digits), "max": round(max(values), digits)}


def _target(start, trial: int):
    side = 1.0 if trial % 2 == 0 else -1.0
    return start.with_position(tuple(start.xyz + (0.0, side * TRAVEL_M, 0.0)))


def bench_sim(trials: int) -> dict:
    """E-stop on the in-process arm, stepped: the stop time is counted in ticks of simulated time."""
    from recorders.arms.base import ArmCommand, ArmError
    from recorders.cell.registry import open_workcell

    calls_ms, stops, distances, speeds = [], [], [], []
    with open_workcell("sim", _scene(), CONTROL_HZ) as cell:
        arm, period = cell.arm, cell.arm.control_period
        for trial in range(trials):
            goal = _target(arm.state().ee_pose, trial)
            for _ in range(MOVING_TICKS):
                last = arm.state().ee_pose.xyz
                arm.command(ArmCommand(goal))
                arm.wait_tick()
            before = arm.state()
            speeds.append(float(np.linalg.norm(before.ee_pose.xyz - last)) / period)
            t0 = time.perf_counter()
            arm.estop("bench")
            calls_ms.append(1000.0 * (time.perf_counter() - t0))
            last, furthest = before.ee_pose.xyz, 0.0
            for _ in range(int(GIVE_UP_S / period)):
                arm.wait_tick()
                s = arm.state()
                speed = float(np.linalg.norm(s.ee_pose.xyz - last)) / period
                last = s.ee_pose.xyz
                furthest = max(furthest, float(np.linalg.norm(last - before.ee_pose.xyz)))
                if speed < STOPPED_SPEED_M_S:
                    stops.append(s.time - before.time)
                    distances.append(1000.0 * furthest)
                    break
            else:
                raise ArmError(f"the simulated arm did not stop within {GIVE_UP_S:g} s of the e-stop")
            arm.reset_estop()
    return {"trials": trials, "estop_call_ms": _summary(calls_ms, 3), "stop_s": _summary(stops, 3),
            "stopping_distance_mm": _summary(distances, 1), "stop_resolution_s": round(period, 3),
            "speed_at_estop_m_s": _summary(speeds, 3), "clock": "simulated"}


class _Driver(threading.Thread):
    """The control loop of a real-time arm: commands `goal` every tick until the e-stop refuses it,
    then keeps ticking (as a recording session does) until told to end."""

    def __init__(self, arm, goal):
        super().__init__(name="bench-estop-control", daemon=True)
        self.arm, self.goal = arm, goal
        self.moving = threading.Event()  # set after MOVING_TICKS ticks of motion
        self.end = threading.Event()
        self.errors: list[str] = []  # arm errors other than the e-stop's refusal

    def run(self) -> None:
        from recorders.arms.base import ArmCommand, ArmError

        ticks = 0
        while not self.end.is_set():
            try:
                if not self.arm.estopped:
                    self.arm.command(ArmCommand(self.goal))
                self.arm.wait_tick()
            except ArmError as e:
                if "e-stop engaged" not in str(e):
                    self.errors.append(str(e))
                    self.moving.set()  # the trial ends: nothing is moving any more
                    return
            ticks += 1
            if ticks == MOVING_TICKS:
                self.moving.set()


def _time_to_stop(arm, t_request: float) -> tuple[float, float] | None:
    """(seconds, mm): from `t_request` until the TCP moved less than STOPPED_SPEED_M_S over a window and
    then stood still for HOLD_S, and how far it went meanwhile; None if it never stopped within GIVE_UP_S."""
    samples: list[tuple[float, np.ndarray]] = []
    stopped_at, stopped_xyz = None, None
    while time.monotonic() - t_request < GIVE_UP_S:
        now = time.monotonic()
        samples.append((now, arm.state().ee_pose.xyz))
        earlier = [(t, x) for t, x in samples if now - t >= SPEED_WINDOW_S]
        if earlier:
            t, x = earlier[-1]
            speed = float(np.linalg.norm(samples[-1][1] - x)) / (now - t)
            if speed >= STOPPED_SPEED_M_S:
                stopped_at = None
            elif stopped_at is None:
                stopped_at, stopped_xyz = t, x
            elif now - stopped_at >= HOLD_S:
                return stopped_at - t_request, 1000.0 * float(np.linalg.norm(stopped_xyz - samples[0][1]))
        time.sleep(POLL_S)
    return None


def bench_franky_sim(trials: int) -> dict:
    """E-stop through franky against a franky-sim server, pressed from an operator thread."""
    from recorders.cell.registry import open_workcell
    from recorders.sim.franky_sim_server import FrankySimUnavailable

    try:
        cell = open_workcell("franky-sim", _scene(), CONTROL_HZ)
    except FrankySimUnavailable as e:
        return {"skipped": str(e)}
    calls_ms, stops, distances, errors, never_stopped = [], [], [], [], 0
    try:
        arm = cell.arm
        for trial in range(trials):
            driver = _Driver(arm, _target(arm.state().ee_pose, trial))
            driver.start()
            try:
                driver.moving.wait(GIVE_UP_S)
                if not driver.errors:
                    t_request = time.monotonic()
                    arm.estop("bench")
                    calls_ms.append(1000.0 * (time.monotonic() - t_request))
                    stop = _time_to_stop(arm, t_request)
                    never_stopped += stop is None
                    if stop is not None:
                        stops.append(stop[0])
                        distances.append(stop[1])
            finally:
                driver.end.set()
                driver.join(GIVE_UP_S)
            errors += driver.errors
            arm.reset_estop()
            if driver.errors:
                arm.recover()  # the bench is the operator: clear the reflex before the next trial
        stats = cell.server.stats()
    finally:
        cell.close()
    return {"trials": trials, "estop_call_ms": _summary(calls_ms, 3) if calls_ms else None,
            "stop_s": _summary(stops, 3) if stops else None,
            "stopping_distance_mm": _summary(distances, 1) if distances else None, "never_stopped": never_stopped,
            "arm_errors": errors, "server_realtime_factor": round(stats["realtime_factor"], 3),
            "clock": "monotonic"}


def run_bench_estop(args) -> int:
    trials = args.trials
    print(f"e-stop on the in-process arm, {trials} trials ...", file=sys.stderr)
    result = {"sim": bench_sim(trials)}
    print(f"e-stop through franky and franky-sim, {trials} trials ...", file=sys.stderr)
    result["franky-sim"] = bench_franky_sim(trials)
    if args.json:
        print_json(result)
        return 0
    for kind, r in result.items():
        if "skipped" in r:
            print(f"{kind}: skipped ({r['skipped']})")
            continue
        call, stop = r["estop_call_ms"], r["stop_s"]
        line = f"{kind}: estop() returns in {call['median']} ms median, {call['max']} ms max"
        if stop is not None:
            line += (f"; arm stopped {stop['median']} s median, {stop['max']} s max after the request "
                     f"({r['clock']} clock), {r['stopping_distance_mm']['max']} mm at most")
        print(line)
        if r.get("arm_errors") or r.get("never_stopped"):
            print(f"{kind}: {r.get('never_stopped', 0)} trials never stopped; arm errors: {r.get('arm_errors')}")
    return 0
