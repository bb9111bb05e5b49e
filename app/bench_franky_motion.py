"""`python main.py bench franky [--runs N] [--json]`: how smoothly the franky backend executes targets
streamed at the control rate, measured on franky-sim, for each of FrankyArm's motion modes ("waypoint",
the old stop-and-go, and "stream"; recorders/arms/franky_arm.py).

One run streams a path through the franky-sim workcell (registry.open_workcell, behind the safety
layer) at 10 Hz while a thread samples franky's robot state every SAMPLE_PERIOD_S, and computes the
metrics below on the robot's own clock (the server's simulated time, so a server starved of CPU slows
the run down rather than distorting the figures), for two paths of the TCP: the *executed* one (the
measured pose O_T_EE: franky-sim's joint PD controllers low-pass it and add ~0.1 s of lag, where a
real arm tracks within millimetres) and the *commanded* one (O_T_EE_c, what franky's motion sends the
arm's controller each millisecond; the stop-and-go shows there undamped). Paths:

- teleop: recorders/teleop.py's TeleopIntegrator with a key held at its top speed (0.2 m/s): forward
  (+x) for LEG_S, then left (+y) for LEG_S (a right-angle turn), then released;
- skill: recorders/skills.py's Motion.move at FAST (0.3 m/s): a straight move along +x, then one along
  +y (the same corner), as pick/place stream them.

Metrics (`smoothness_metrics`, pure numpy), over the steady window: from TRIM_S after the first moving
target (the start from rest is left out) to the last moving target (the final stop is left out):

- the path is resampled on a 1 kHz grid of robot time (linear interpolation between samples) and
  smoothed by a cubic Savitzky-Golay fit over SMOOTHING_S (41 ms), which also gives its velocity,
  acceleration and jerk; the speed is the norm of that velocity;
- velocity_jumps_per_s: 10 ms steps of the 100 Hz speed in which it changes by more than JUMP_M_S
  (a speed change faster than 1 m/s^2), per second of the window;
- speed_dips_per_s: how often the speed falls below DIP_LOW (50 %) of the commanded speed after having
  been above DIP_HIGH (80 %) of it (the hysteresis ignores noise), per second; the commanded speed is
  the target stream's own (its path length over the window, on the same clock); dips that start while
  the stream is late (the last target was sent more than LATE_S ago) are not counted, and the share of
  the window that was on time is reported as `on_time`;
- peak_jerk and rms_jerk (m/s^3): the largest and the root-mean-square jerk of the smoothed path; a
  jerk shorter than the 41 ms fit is spread over it, so these compare modes and paths rather than
  read the arm's jerk limit (the peak is usually the corner; stop-and-go raises the rms);
- mean_speed (m/s) and speed_ratio, the mean measured speed over the commanded speed (the teleop
  integrator keeps its target within MAX_LEAD_M of the measured pose, so its commanded speed, and
  the teleop path's mean_speed, fall as the arm's lag grows);
- lag_s: the delay that best aligns the measured path with the target stream (the targets joined by
  straight lines at the times they were sent), and path_error_mm, the mean distance at that delay.
"""
from __future__ import annotations

import statistics
import sys
import threading
from dataclasses import asdict, dataclass

import numpy as np

from app.errors import print_json
from recorders.arms.franky_arm import STREAM_HORIZON_PERIODS, FrankyArm

CONTROL_HZ = 10.0
DEFAULT_RUNS = 3
MODES = ("waypoint", "stream")  # before and after: FrankyArm.motion_mode
PATHS = ("teleop", "skill")
START_XYZ = (0.35, -0.15, 0.3)  # m, where every run starts, at rest, gripper pointing down
LEG_S = 1.5  # s of each teleop leg
SKILL_LEG_M = 0.3  # m of each skill leg
REST_S = 1.0  # s of commands at the final target after the path, while the arm comes to rest
SAMPLE_PERIOD_S = 0.002  # the sampler thread's period (franky's state arrives at 1 kHz)
GRID_S = 0.001  # the uniform grid the path is resampled on
SMOOTHING_S = 0.041  # Savitzky-Golay window (odd number of grid steps)
TRIM_S = 0.4  # the start from rest left out of the window
JUMP_STEP_S = 0.01
JUMP_M_S = 0.01  # m/s per JUMP_STEP_S
DIP_LOW, DIP_HIGH = 0.5, 0.8  # fractions of the commanded speed
MAX_LAG_S = 0.6
LATE_S = STREAM_HORIZON_PERIODS / CONTROL_HZ  # a stream whose last target is older than this is late


@dataclass(frozen=True)
class SmoothnessMetrics:
    window_s: float
    commanded_speed: float  # m/s
    mean_speed: float  # m/s
    speed_ratio: float
    velocity_jumps_per_s: float
    speed_dips_per_s: float
    on_time: float  # share of the window in which the stream was on time (dips counted there only)
    peak_jerk: float  # m/s^3
    rms_jerk: float  # m/s^3
    lag_s: float
    path_error_mm: float


def savgol_derivatives(x: np.ndarray, dt: float, window: int, order: int = 3) -> tuple[np.ndarray, ...]:
    """Position, velocity, acceleration and jerk of `x` (N, D), sampled every `dt`, from a least-squares
    polynomial of `order` over `window` samples centred on each one; (N - window + 1, D) each, for
    samples window // 2 ... N - window // 2 - 1."""
    if window % 2 == 0 or window <= order:
        raise ValueError(f"window must be odd and longer than the order {order}, got {window}")
    half = window // 2
    k = np.arange(-half, half + 1) * dt
    fit = np.linalg.pinv(np.vander(k, order + 1, increasing=True))  # (order + 1, window): coefficients
    out = []
    for d in range(4):  # the d-th derivative at the centre is d! * coefficient d
        weights = fit[d] * float(np.prod(np.arange(1, d + 1)))
        out.append(np.stack([np.correlate(x[:, j], weights, mode="valid") for j in range(x.shape[1])], axis=1))
    return tuple(out)


def smoothness_metrics(t: np.ndarray, p: np.ndarray, t_cmd: np.ndarray, p_cmd: np.ndarray,
                       window: tuple[float, float]) -> SmoothnessMetrics:
    """The metrics of the module docstring for a measured path (`t` (N,) s, `p` (N, 3) m, any sampling)
    following a target stream (`t_cmd` (K,) s when each target `p_cmd` (K, 3) was sent), over `window`."""
    order = np.argsort(t)
    t, p = np.asarray(t, dtype=float)[order], np.asarray(p, dtype=float)[order]
    keep = np.concatenate([[True], np.diff(t) > 0])  # one sample per robot tick
    t, p = t[keep], p[keep]
    w = int(round(SMOOTHING_S / GRID_S)) | 1
    half = w // 2
    lo, hi = window
    if lo < t[0] + half * GRID_S or hi > t[-1] - half * GRID_S or hi - lo < 10 * SMOOTHING_S:
        raise ValueError(f"window {lo:.3f}..{hi:.3f} s is not inside the samples {t[0]:.3f}..{t[-1]:.3f} s")
    grid = np.arange(lo - half * GRID_S, hi + half * GRID_S + GRID_S / 2, GRID_S)
    path = np.stack([np.interp(grid, t, p[:, j]) for j in range(3)], axis=1)
    _, vel, _, jerk = savgol_derivatives(path, GRID_S, w)
    tg = grid[half:len(grid) - half]
    speed = np.linalg.norm(vel, axis=1)  # (M,)

    cmd = np.stack([np.interp(tg, t_cmd, p_cmd[:, j]) for j in range(3)], axis=1)
    duration = tg[-1] - tg[0]
    commanded = float(np.sum(np.linalg.norm(np.diff(cmd, axis=0), axis=1))) / duration
    mean_speed = float(np.sum(np.linalg.norm(np.diff(path[half:len(path) - half], axis=0), axis=1))) / duration

    step = int(round(JUMP_STEP_S / GRID_S))
    jumps = int(np.sum(np.abs(np.diff(speed[::step])) > JUMP_M_S))

    # Late: the newest target sent before each instant is older than LATE_S.
    sent = np.searchsorted(t_cmd, tg, side="right") - 1
    late = (sent < 0) | (tg - t_cmd[np.maximum(sent, 0)] > LATE_S)
    dips, high = 0, False
    for s, is_late in zip(speed, late):
        if s >= DIP_HIGH * commanded:
            high = True
        elif s < DIP_LOW * commanded and high:
            high = False
            dips += not is_late

    lags = np.arange(0.0, MAX_LAG_S + 1e-9, 0.002)
    errors = [float(np.mean(np.linalg.norm(
        path[half:len(path) - half] - np.stack([np.interp(tg - lag, t_cmd, p_cmd[:, j]) for j in range(3)], axis=1),
        axis=1))) for lag in lags]
    best = int(np.argmin(errors))
    return SmoothnessMetrics(
        window_s=_r(duration, 3), commanded_speed=_r(commanded, 4), mean_speed=_r(mean_speed, 4),
        speed_ratio=_r(mean_speed / commanded, 3) if commanded > 0 else float("nan"),
        velocity_jumps_per_s=_r(jumps / duration, 2), speed_dips_per_s=_r(dips / duration, 2),
        on_time=_r(1.0 - np.mean(late), 3), peak_jerk=_r(np.max(np.linalg.norm(jerk, axis=1)), 1),
        rms_jerk=_r(np.sqrt(np.mean(np.sum(jerk ** 2, axis=1))), 1),
        lag_s=_r(lags[best], 3), path_error_mm=_r(1000.0 * errors[best], 2))


def _r(value, digits: int) -> float:
    return round(float(value), digits)


# ---- a run on franky-sim ------------------------------------------------------------------------------
class _Sampler(threading.Thread):
    """Samples the measured and the commanded TCP position, with the robot's clock, from franky's state
    until `end` is set (or the state cannot be read: the run's own commands then say why)."""

    def __init__(self, franky_arm):
        super().__init__(name="franky-motion-sampler", daemon=True)
        self.arm = franky_arm
        self.rows: list[tuple[float, ...]] = []  # robot time, measured xyz, commanded xyz
        self.end = threading.Event()

    def run(self) -> None:
        from recorders.arms.base import ArmError

        while not self.end.wait(SAMPLE_PERIOD_S):
            try:
                s = self.arm.robot_state()
            except ArmError:
                return
            self.rows.append((s.time.to_sec(), *(float(v) for v in s.O_T_EE.translation),
                              *(float(v) for v in s.O_T_EE_c.translation)))


@dataclass
class _Stream:
    """The targets a path sent, with the robot's clock when each was sent."""

    times: list[float]
    targets: list[np.ndarray]

    def sent(self, franky_arm, target) -> None:
        self.times.append(franky_arm.robot_state().time.to_sec())
        self.targets.append(np.asarray(target.position, dtype=float))


def _inner_arm(cell):
    """The workcell's FrankyArm, whose motion mode the bench switches and whose state it samples (the
    workcell keeps it private: everything else goes through the safety layer)."""
    arm = getattr(cell, "_franky_arm", None)
    if not isinstance(arm, FrankyArm):
        raise TypeError(f"bench franky needs a franky workcell, got {type(cell).__name__}")
    return arm


def go_to_start(cell) -> None:
    """Move to START_XYZ with the skills' own motion and wait until the TCP stands still there."""
    from recorders.arms.base import ArmCommand
    from recorders.skills import SLOW, Motion

    m = Motion(cell)
    m.move(START_XYZ, yaw=m.yaw, speed=SLOW, settle=2)
    last = cell.arm.state().ee_pose.xyz
    for _ in range(30):
        cell.arm.command(ArmCommand(m.target, m.closed))
        cell.arm.wait_tick()
        here = cell.arm.state().ee_pose.xyz
        if np.linalg.norm(here - last) < 2e-4:
            break
        last = here


def _teleop(cell, franky_arm, stream: _Stream, speed: float) -> None:
    from recorders.teleop import SPEED_LEVELS_M_S, TeleopIntegrator, TeleopIntent

    if speed not in SPEED_LEVELS_M_S:
        raise ValueError(f"teleop speed must be one of {SPEED_LEVELS_M_S}, got {speed}")
    integrator = TeleopIntegrator(CONTROL_HZ, SPEED_LEVELS_M_S.index(speed))
    legs = [((1.0, 0.0, 0.0), LEG_S), ((0.0, 1.0, 0.0), LEG_S), ((0.0, 0.0, 0.0), REST_S)]
    for linear, seconds in legs:
        for _ in range(int(round(seconds * CONTROL_HZ))):
            sent = cell.arm.command(integrator.step(TeleopIntent(linear), cell.arm.state()))
            stream.sent(franky_arm, sent.ee_target)
            cell.arm.wait_tick()


def _skill(cell, franky_arm, stream: _Stream, speed: float) -> None:
    from recorders.skills import Motion

    m = Motion(cell, on_tick=lambda sent: stream.sent(franky_arm, sent.ee_target))
    x, y, z = m.target.xyz
    m.move((x + SKILL_LEG_M, y, z), speed=speed)
    m.move((x + SKILL_LEG_M, y + SKILL_LEG_M, z), speed=speed, settle=int(REST_S * CONTROL_HZ))


def measure_smoothness(mode: str, path: str = "teleop", speed: float | None = None, cell=None) -> dict:
    """One run of `path` in motion `mode` on franky-sim (`cell`, or a workcell opened and closed here):
    {"mode", "path", "speed", "metrics": {"executed", "commanded"}: SmoothnessMetrics as dicts (None if
    the run failed), "error", "realtime_factor" (the server's loop over the run), "overruns" (its late
    ticks), "samples"}."""
    from recorders.arms.base import ArmError
    from recorders.skills import FAST
    from recorders.teleop import SPEED_LEVELS_M_S

    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    speed = speed if speed is not None else (SPEED_LEVELS_M_S[-1] if path == "teleop" else FAST)
    if cell is None:
        with open_cell() as own:
            return measure_smoothness(mode, path, speed, own)
    franky_arm = _inner_arm(cell)
    result = {"mode": mode, "path": path, "speed": speed, "metrics": None, "error": None}
    sampler, stream = _Sampler(franky_arm), _Stream([], [])
    before, franky_arm.motion_mode = franky_arm.motion_mode, mode
    stats0 = cell.server.stats()  # replaced once at the start: a failed move there still has a loop rate
    try:
        go_to_start(cell)
        stats0 = cell.server.stats()
        sampler.start()
        (_teleop if path == "teleop" else _skill)(cell, franky_arm, stream, speed)
    except ArmError as e:  # e.g. a transient planner error: the bench is the operator, it recovers
        result["error"] = str(e).splitlines()[0]
        cell.arm.recover()
    finally:
        sampler.end.set()
        if sampler.is_alive():
            sampler.join()
        cell.arm.stop()  # rest: the watchdog must not take the pause before the next run for a stall
        franky_arm.motion_mode = before
    stats1 = cell.server.stats()
    wall = stats1["wall_time"] - stats0["wall_time"]
    result["realtime_factor"] = round((stats1["sim_time"] - stats0["sim_time"]) / wall, 3) if wall > 0 else 0.0
    result["overruns"] = stats1["overruns"] - stats0["overruns"]  # 1 kHz ticks the server's loop ran late
    result["samples"] = len(sampler.rows)
    if result["error"] is None:
        t_cmd, p_cmd = np.asarray(stream.times), np.asarray(stream.targets)
        moving = np.flatnonzero(np.linalg.norm(np.diff(p_cmd, axis=0), axis=1) > 1e-6) + 1
        rows = np.asarray(sampler.rows)
        window = (t_cmd[moving[0]] + TRIM_S, t_cmd[moving[-1]])
        try:
            result["metrics"] = {kind: asdict(smoothness_metrics(rows[:, 0], rows[:, columns], t_cmd, p_cmd, window))
                                 for kind, columns in (("executed", slice(1, 4)), ("commanded", slice(4, 7)))}
        except ValueError as e:  # a loop far behind the wall clock moved too little of the path to measure
            result["error"] = f"too little of the path to measure ({e})"
    return result


def open_cell(host: str | None = None):
    """A franky-sim workcell with an empty table, served on `host` (a loopback address; default
    franky-sim's usual one)."""
    from recorders.cell.registry import open_workcell
    from recorders.cell.scene import SceneSpec

    return open_workcell("franky-sim", SceneSpec((), ()), CONTROL_HZ, **({"host": host} if host else {}))


# ---- the command --------------------------------------------------------------------------------------
KINDS = ("executed", "commanded")
SUMMARY_KEYS = ("velocity_jumps_per_s", "speed_dips_per_s", "peak_jerk", "rms_jerk", "mean_speed", "speed_ratio",
                "lag_s", "path_error_mm")


def bench_franky_motion(runs: int = DEFAULT_RUNS, modes=MODES, paths=PATHS, host: str | None = None) -> dict:
    """Every mode x path, `runs` times, on one franky-sim workcell (on `host`, see `open_cell`):
    {path: {mode: {"summary", "runs"}}}, the summary holding each metric's median and range over the
    runs for the executed and the commanded path."""
    from recorders.sim.franky_sim_server import FrankySimUnavailable

    try:
        cell = open_cell(host)
    except FrankySimUnavailable as e:
        return {"skipped": str(e)}
    results: dict = {}
    with cell:
        for path in paths:
            for mode in modes:
                print(f"bench franky: {mode} mode, {path} path, {runs} runs ...", file=sys.stderr)
                done = [measure_smoothness(mode, path, cell=cell) for _ in range(runs)]
                results.setdefault(path, {})[mode] = {"summary": _summary(done), "runs": done}
    return results


def _summary(runs: list[dict]) -> dict:
    ok = [r["metrics"] for r in runs if r["metrics"] is not None]
    summary = {"runs": len(runs), "failed": len(runs) - len(ok),
               "realtime_factor_min": min(r["realtime_factor"] for r in runs)}
    for kind in KINDS:
        summary[kind] = {}
        for key in SUMMARY_KEYS:
            values = [m[kind][key] for m in ok]
            summary[kind][key] = ({"median": round(statistics.median(values), 3), "min": min(values),
                                   "max": max(values)} if values else None)
    return summary


def run_bench_franky_motion(args) -> int:
    """`bench franky`: `args.runs` (None: DEFAULT_RUNS) runs per mode and path; a table, or `args.json`."""
    result = bench_franky_motion(getattr(args, "runs", None) or DEFAULT_RUNS)
    if args.json:
        print_json(result)
        return 0
    if "skipped" in result:
        print(f"franky-sim: skipped ({result['skipped']})")
        return 0
    heads = ("jumps/s", "dips/s", "peak jerk", "rms jerk", "speed m/s", "speed ratio", "lag s", "path err mm")
    print(f"{'path':<7} {'mode':<9} {'TCP':<10}" + "".join(f"{h:>22}" for h in heads))
    for path, by_mode in result.items():
        for mode, r in by_mode.items():
            s = r["summary"]
            for kind in KINDS:
                cells = [(f"{v['median']:g} [{v['min']:g}-{v['max']:g}]" if v else "-")
                         for v in (s[kind][k] for k in SUMMARY_KEYS)]
                print(f"{path:<7} {mode:<9} {kind:<10}" + "".join(f"{c:>22}" for c in cells)
                      + (f"  ({s['failed']} of {s['runs']} runs failed)" if s["failed"] else ""))
    factor = min(r["summary"]["realtime_factor_min"] for m in result.values() for r in m.values())
    print(f"median [min-max] over the runs; jerk in m/s^3; franky-sim's loop ran at >= {factor:.2f}x real time")
    return 0
