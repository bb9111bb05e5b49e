"""How well perceived objects work in the simulated workcell: the tracker's error against the
simulator's truth, and the oracle's success when its skills use perceived poses instead of the truth.

    run_oracle(task, seed, objects="perceived")
      make_instance -> open_perceived_workcell("sim", ...)  (auto-taught; depth on, 128x128 or `cameras`)
      RobotAPI.run_program(oracle), before every control tick:
        cell.track() (the one tracker update of the tick, as observe() would cause)
        vs cell.true_object_poses() -> per object: position error, seen, resting | held | moving
        TaskMonitor.update(truth)
      -> OracleRun(success from the truth, failure, errors by state, tracker ms per update)
    evaluate(tasks, seeds) -> runs in both modes -> summary(): medians, 95th percentiles, success rates

An object is `held` while it is within 3 cm of the closed gripper's TCP and off the table, `moving`
when it moved more than 1 mm since the last tick otherwise (pushed, falling, settling), and `resting`
otherwise. Run as a bench:

    python -m recorders.perception.tracking_eval --tasks pick_place,stack,push,swap --seeds 10 [--json]
    python -m recorders.perception.tracking_eval --timing     (render and update times per resolution)
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from recorders.call_log import CallAborted, SkillFailed
from recorders.cell.registry import open_workcell
from recorders.cell.scene import CUBE_SIZE, CameraSettings
from recorders.perception.camera_frame import frame_from_workcell
from recorders.perception.calibration_procedure import simulated_camera_mounts
from recorders.perception.perceived_workcell import auto_teach, open_perceived_workcell
from recorders.perception.tracker import ObjectTracker
from recorders.robot_api import RobotAPI
from recorders.task_suite import TaskMonitor, make_instance

OBJECT_MODES = ("perceived", "true")
STATES = ("resting", "held", "moving")
HELD_TCP_M = 0.03
MOVING_M = 0.001
DEFAULT_TASKS = ("pick_place", "stack", "push", "swap")


@dataclass
class OracleRun:
    task: str
    seed: int
    objects: str  # "perceived" | "true"
    success: bool
    failure: str | None
    ticks: int
    wall_s: float
    errors_m: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STATES})  # seen objects
    unseen: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STATES})  # object-ticks not seen
    update_ms: list[float] = field(default_factory=list)  # the tracker's update per tick
    render_ms: list[float] = field(default_factory=list)  # rendering both cameras (RGB + depth) per tick


def _state(truth_xyz: np.ndarray, before_xyz: np.ndarray, tcp: np.ndarray, closed: bool) -> str:
    if closed and np.linalg.norm(truth_xyz - tcp) < HELD_TCP_M and truth_xyz[2] > CUBE_SIZE / 2 + 0.005:
        return "held"
    return "moving" if np.linalg.norm(truth_xyz - before_xyz) > MOVING_M else "resting"


def run_oracle(task: str, seed: int, objects: str = "perceived", cameras: CameraSettings | None = None,
               control_hz: float = 10.0, calibrated: bool = True) -> OracleRun:
    """One scripted oracle episode of `task` (no episode file); success is judged from the truth.
    `cameras`: the perceived mode's camera settings (default: the scene's own, with depth); `calibrated`:
    the cameras placed by hand-eye calibration (else by the simulator's own camera poses)."""
    if objects not in OBJECT_MODES:
        raise ValueError(f"objects must be one of {', '.join(OBJECT_MODES)}, got {objects!r}")
    inst = make_instance(task, seed)
    wall0 = time.perf_counter()
    perceived = objects == "perceived"
    mounts = simulated_camera_mounts() if perceived and calibrated else None
    cell = (open_perceived_workcell("sim", inst.scene, control_hz, cameras=cameras, mounts=mounts) if perceived
            else open_workcell("sim", inst.scene, control_hz))
    with cell:
        truth_of = cell.true_object_poses if perceived else cell.object_poses
        monitor = TaskMonitor(inst, truth_of())
        run = OracleRun(task, seed, objects, False, None, 0, 0.0)
        before = {n: p.xyz for n, p in truth_of().items()}

        def before_tick() -> None:
            nonlocal before
            truth = truth_of()
            monitor.update(truth)
            run.ticks += 1
            if perceived:
                tracked = cell.track()
                run.render_ms.append(cell.update_ms[0])
                run.update_ms.append(cell.update_ms[1])
                state = cell.arm.state()
                for name, t in tracked.items():
                    s = _state(truth[name].xyz, before[name], state.ee_pose.xyz, state.gripper_closed)
                    if t.seen:
                        run.errors_m[s].append(float(np.linalg.norm(t.pose.xyz - truth[name].xyz)))
                    else:
                        run.unseen[s] += 1
            before = {n: p.xyz for n, p in truth.items()}

        api = RobotAPI(cell, before_tick=before_tick)
        try:
            api.run_program(inst.program)
        except (SkillFailed, CallAborted) as e:
            run.failure = str(e)
        run.success = run.failure is None and monitor.success(truth_of())
        if run.failure is None and not run.success:
            run.failure = "the program ran but the task's success check failed"
    run.wall_s = time.perf_counter() - wall0
    return run


def evaluate(tasks=DEFAULT_TASKS, seeds=range(10), modes=OBJECT_MODES, cameras: CameraSettings | None = None,
             progress=None, calibrated: bool = True) -> list[OracleRun]:
    """Oracle runs of every task and seed in every mode; `progress(run)` after each."""
    runs = []
    for task in tasks:
        for seed in seeds:
            for mode in modes:
                runs.append(run_oracle(task, int(seed), mode, cameras, calibrated=calibrated))
                if progress is not None:
                    progress(runs[-1])
    return runs


def time_updates(cameras: CameraSettings, task: str = "sort", seeds=range(3), repeats: int = 10) -> dict:
    """Median milliseconds to render both cameras (RGB + depth) and to run one tracker update on them,
    in resting scenes of `task` rendered at `cameras`' resolution."""
    render_ms, update_ms = [], []
    for seed in seeds:
        inst = make_instance(task, int(seed), cameras=replace(cameras, depth=True))
        with open_workcell("sim", inst.scene) as cell:
            tracker = ObjectTracker(auto_teach(cell))
            for _ in range(repeats):
                t0 = time.perf_counter()
                frames = {cam: frame_from_workcell(cell, cam) for cam in cell.cameras}
                t1 = time.perf_counter()
                tracker.update(frames)
                render_ms.append(1000 * (t1 - t0))
                update_ms.append(1000 * (time.perf_counter() - t1))
    return {"width": cameras.width, "height": cameras.height, "render_ms": round(float(np.median(render_ms)), 2),
            "update_ms": round(float(np.median(update_ms)), 2),
            "update_p95_ms": round(float(np.percentile(update_ms, 95)), 2)}


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    mm = 1000 * np.asarray(values)
    return {"n": int(mm.size), "median_mm": round(float(np.median(mm)), 2),
            "p95_mm": round(float(np.percentile(mm, 95)), 2), "max_mm": round(float(mm.max()), 2)}


def summary(runs: list[OracleRun]) -> dict:
    """Tracking error by object state (all ticks pooled, the spread of per-episode medians, and per
    task), the share of object-ticks not seen, time per update, and success per task and mode (with
    its 95% Wilson interval)."""
    perceived = [r for r in runs if r.objects == "perceived"]
    out: dict = {"tracking": {}, "success": {}}
    for s in STATES:
        pooled = [e for r in perceived for e in r.errors_m[s]]
        medians = [1000 * float(np.median(r.errors_m[s])) for r in perceived if r.errors_m[s]]
        seen, unseen = len(pooled), sum(r.unseen[s] for r in perceived)
        out["tracking"][s] = {**_percentiles(pooled), "unseen_share": round(unseen / max(1, seen + unseen), 3),
                              "episode_median_mm_range": [round(min(medians), 2), round(max(medians), 2)]
                              if medians else None}
    out["tracking_by_task"] = {
        task: {s: _percentiles([e for r in perceived if r.task == task for e in r.errors_m[s]]) for s in STATES}
        for task in dict.fromkeys(r.task for r in perceived)}
    for key in ("update_ms", "render_ms"):
        ms = [m for r in perceived for m in getattr(r, key)]
        if ms:
            out[key] = {"median": round(float(np.median(ms)), 2), "p95": round(float(np.percentile(ms, 95)), 2)}
    for task in dict.fromkeys(r.task for r in runs):
        out["success"][task] = {}
        for mode in dict.fromkeys(r.objects for r in runs):
            rs = [r for r in runs if r.task == task and r.objects == mode]
            k, n = sum(r.success for r in rs), len(rs)
            out["success"][task][mode] = {"succeeded": k, "runs": n, "rate": round(k / n, 3) if n else None,
                                          "wilson_95": _wilson(k, n),
                                          "failures": sorted({r.failure for r in rs if r.failure})}
    return out


def _wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    """The 95% Wilson score interval of a success rate of k in n."""
    if not n:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(float(centre - half), 3), round(float(centre + half), 3)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--modes", default=",".join(OBJECT_MODES))
    parser.add_argument("--width", type=int, help="camera width for perceived objects (default: the scene's, 128)")
    parser.add_argument("--height", type=int, help="camera height for perceived objects (default: the scene's, 128)")
    parser.add_argument("--camera-poses", choices=("calibrated", "true"), default="calibrated",
                        help="place the cameras by hand-eye calibration (default) or by the simulator's own poses")
    parser.add_argument("--json", action="store_true", help="print the runs and the summary as one JSON object")
    parser.add_argument("--timing", action="store_true", help="only time rendering and tracker updates at "
                        "128x128, 320x240 and 640x480")
    args = parser.parse_args(argv)
    if args.timing:
        for w, h in ((128, 128), (320, 240), (640, 480)):
            print(json.dumps(time_updates(CameraSettings(w, h, depth=True))), flush=True)
        return 0
    cameras = CameraSettings(args.width, args.height, depth=True) if args.width and args.height else None
    show = None if args.json else (lambda r: print(f"{r.task} seed {r.seed} {r.objects}: "
                                                   f"{'ok' if r.success else 'FAILED ' + str(r.failure)} "
                                                   f"({r.ticks} ticks, {r.wall_s:.1f} s)", flush=True))
    runs = evaluate(args.tasks.split(","), range(args.seeds), args.modes.split(","), cameras, show,
                    calibrated=args.camera_poses == "calibrated")
    result = summary(runs)
    if args.json:
        per_tick = ("errors_m", "update_ms", "render_ms")
        print(json.dumps({"summary": result,
                          "runs": [{k: v for k, v in asdict(r).items() if k not in per_tick} for r in runs]}))
    else:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
