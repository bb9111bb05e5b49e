"""Low-level evaluation: a task's oracle program run in the workcell with a learned diffusion policy
executing every motion call (the paper's separate evaluation of low-level control).

Per motion call (pick, place, push, home) data flows
```
observe (arm state, object poses[, cameras]) -> FeatureBuilder: the very features PolicyDataset
    builds at training time (window clamped to the call's first frame, call vector with poses of the
    latest frame and the target resolved by the robot API, memory from the live Memory)
    -> policy.predict (a background thread) -> chunk (Tp, 8) + P(finished) per step
    -> ArmCommand per tick -> safety layer (cell.arm.command) -> cell.arm.wait_tick
```
until the termination head's P(finished) for the step about to run exceeds `done_threshold` (after
`min_call_ticks`) or `max_call_s` of workcell time pass. The call's postcondition, read from
simulator state with the scripted skills' own checks, makes it ok or failed (with the reason).
Memory, query and terminal calls (remember, recall, free_space, done) run on the robot API as usual.
With `cond="flat"` the policy knows only the task, so one loop drives the whole episode (its
termination head marks the episode's end) and no motion calls are logged.

Asynchronous chunking: while a chunk executes, the next one is predicted from the latest
observation, launched when `lead_steps` steps of the current chunk remain (default 4: 0.4 s at
10 Hz, many times the CPU inference time of the default model, while the next chunk is conditioned
on an observation only 0.4 s old). A chunk predicted from frame s starts executing at frame s + k
(k = steps that remained), so its first k actions, meant for frames already executed, are skipped,
keeping actions aligned with the frames they were trained for. A *stall* is a chunk whose inference
took longer than the time its predecessor's remaining k steps take at the control rate (for the
stepped simulator, whose ticks take no wall time, this is what a real-time arm would have waited).
The first chunk of a call is predicted before the arm moves (the arm rests between calls), so it
never counts as a stall.
"""
from __future__ import annotations

import json
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from models.anchor_frame import anchor_of
from models.call_encoding import CallEncoding, encode_memory, zone_pose
from recorders.arms.base import ArmCommand, ArmError
from recorders.call_log import CallAborted, CallLog, SkillFailed
from recorders.memory import Memory
from recorders.observation import Observation, append_tick, observe, stream_specs
from recorders.pose import Pose
from recorders.robot_api import RobotAPI
from recorders.robot_api_spec import API, Call
from recorders.sim.scene import CUBE_SIZE, SceneSpec
from recorders.skills import DIRECTIONS, HOME_POSITION
from recorders.task_suite import PLACE_TOLERANCE, TaskInstance, TaskMonitor, in_zone
from recorders.workcell import Workcell, open_workcell

if TYPE_CHECKING:
    from models.diffusion_policy import DiffusionPolicy, PolicyConfig

DEFAULT_LEAD_STEPS = 4
MIN_CALL_TICKS = 3  # the termination head is not trusted on a call's first ticks
HOLD_RADIUS_M = 0.03  # object centre to TCP for "held": the scripted skills' check
GRIPPER_CLOSED_ABOVE = 0.5  # action[7]


# ---- features: the live side of models/policy_dataset.py -----------------------------------------
def state_row(ob: Observation, names: Sequence[str]) -> np.ndarray:
    """(STATE_DIM,) float32 as PolicyDataset stacks it: ee_pose 7, gripper width 1, object poses
    (float32, in `names` order) zero-padded to MAX_OBJECTS."""
    from models.policy_dataset import MAX_OBJECTS

    objects = np.zeros((MAX_OBJECTS, 7), np.float32)
    for j, name in enumerate(names):
        objects[j] = ob.object_poses[name].to_array().astype(np.float32)
    return np.concatenate([ob.state.ee_pose.to_array().astype(np.float32),
                           np.array([ob.state.gripper_width], np.float32), objects.reshape(-1)])


def remembered(memory: Memory) -> list[np.ndarray]:
    """The remembered poses, first-stored order, as the dataset's memory_at gives them."""
    return [kp.pose.to_array().astype(np.float32) for kp in memory.poses.values()]


class FeatureBuilder:
    """Policy inputs for the latest frame of a live episode, equal to the PolicyDataset item of the
    same frame. Frames are added one per control tick (the observation before its command)."""

    def __init__(self, config: "PolicyConfig", names: Sequence[str], zones: dict[str, np.ndarray], task: str):
        from models.policy_dataset import MAX_OBJECTS, TASK_VOCAB

        if len(names) > MAX_OBJECTS:
            raise ValueError(f"{len(names)} objects; the policy takes at most {MAX_OBJECTS}")
        self.config, self.names, self.zones = config, list(names), dict(zones)
        self.task_index = TASK_VOCAB.index(task) if task in TASK_VOCAB else len(TASK_VOCAB)
        self.object_mask = (np.arange(MAX_OBJECTS) < len(names)).astype(np.float32)
        self.encoding = CallEncoding()
        self.states: list[np.ndarray] = []  # (STATE_DIM,) per frame
        self.images: list[dict[str, np.ndarray]] = []  # stream name -> (H, W, 3) per frame
        self.call: Call | None = None
        self.resolved: np.ndarray | None = None
        self.call_start = 0

    @staticmethod
    def for_scene(config: "PolicyConfig", scene: SceneSpec, task: str) -> "FeatureBuilder":
        return FeatureBuilder(config, scene.object_names, {z.name: zone_pose(z.position) for z in scene.zones}, task)

    def add_frame(self, state: np.ndarray, images: dict[str, np.ndarray] | None = None) -> int:
        self.states.append(np.asarray(state, np.float32))
        self.images.append(images or {})
        return len(self.states) - 1

    def drop_frame(self) -> None:
        """Forget the latest frame (observed, but no command followed it)."""
        self.states.pop()
        self.images.pop()

    def begin_call(self, call: Call | None, resolved: np.ndarray | None) -> None:
        """The next frame added is `call`'s first; `resolved`: the pose its nested recall/free_space
        target resolved to (None: no such target)."""
        self.call, self.resolved, self.call_start = call, resolved, len(self.states)

    def _poses(self, t: int) -> dict[str, np.ndarray]:
        objects = self.states[t][8:].reshape(-1, 7)
        return {**self.zones, **{n: objects[j] for j, n in enumerate(self.names)}}

    def features(self, memory_poses: Sequence[np.ndarray] = ()) -> dict:
        """The item (no batch dimension) of the latest frame; see PolicyDataset for the layout."""
        import torch

        c, t = self.config, len(self.states) - 1
        if t < 0:
            raise ValueError("no frame observed yet")
        first = self.call_start if c.cond == "call" else 0  # flat: one segment over the episode
        obs_idx = np.maximum(np.arange(t - c.obs_horizon + 1, t + 1), first)  # (To,)
        item = {"obs_state": torch.from_numpy(np.stack([self.states[i] for i in obs_idx])),
                "object_mask": torch.from_numpy(self.object_mask), "anchor": torch.zeros(3)}
        if c.cond == "call":
            if self.call is None:
                raise ValueError("no call begun: cond='call' policies need one")
            targets_recall = any(isinstance(a, Call) and a.name == "recall" for a in self.call.args)
            resolved = self.resolved if c.memory or not targets_recall else None
            item["call"] = torch.from_numpy(self.encoding.encode(self.call, self._poses(t), resolved))
            first_call = self.encoding.encode(self.call, self._poses(self.call_start), resolved)
            item["anchor"] = torch.from_numpy(anchor_of(first_call))
            item["function"] = torch.tensor(self.encoding.functions.index(self.call.name), dtype=torch.int64)
            if c.memory:
                item["memory"] = torch.from_numpy(encode_memory(memory_poses))
        else:
            item["task"] = torch.tensor(self.task_index, dtype=torch.int64)
        if c.obs == "rgb":
            for cam in ("front_rgb", "wrist_rgb"):
                frames = np.stack([self.images[i][cam] for i in obs_idx])  # (To, H, W, 3)
                item[cam] = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
        return item


# ---- results ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CallOutcome:
    code: str
    name: str
    status: str  # ok | failed | aborted
    ticks: int  # control ticks the policy ran (0 for memory, query and terminal calls)
    reason: str | None = None


@dataclass
class RolloutResult:
    task: str
    seed: int
    split: str
    success: bool
    calls: list[CallOutcome]
    frames: int
    episode_seconds: float  # on the workcell's clock
    inference_ms: list[float]  # per predicted chunk
    stalls: int  # chunks that were not ready when the arm needed them
    stall_ms: float  # total time the arm would have waited
    path: Path | None = None
    failure: str | None = None

    def to_dict(self) -> dict:
        return {**asdict(self), "path": None if self.path is None else str(self.path),
                "calls": [asdict(c) for c in self.calls]}


# ---- the control loop -------------------------------------------------------------------------------
@dataclass
class _Chunk:
    action: np.ndarray  # (Tp, 8)
    done: np.ndarray  # (Tp,)
    next: int  # index of the step to execute next
    stop: int  # one past the last step executed


@dataclass
class _Pending:
    future: Future
    launched: float  # perf_counter
    lead: int  # steps of the current chunk left at launch: the new chunk starts at index `lead`


@dataclass
class _Stats:
    inference_ms: list[float] = field(default_factory=list)
    stalls: int = 0
    stall_ms: float = 0.0


class _Runner:
    """One rollout: the workcell, robot API, feature builder, inference thread and optional writer."""

    def __init__(self, inst, policy, cell: Workcell, api: RobotAPI, monitor: TaskMonitor, clock, writer,
                 lead_steps: int, min_call_ticks: int, done_threshold: float, seed: int, fixed_noise: bool):
        import torch

        self.inst, self.policy, self.cell, self.api, self.monitor = inst, policy, cell, api, monitor
        self.clock, self.writer = clock, writer
        self.config = c = policy.config
        self.features = FeatureBuilder.for_scene(c, inst.scene, inst.task.id)
        self.lead = max(0, min(lead_steps, c.action_horizon, c.pred_horizon - c.action_horizon))
        self.min_call_ticks, self.done_threshold = min_call_ticks, done_threshold
        params = getattr(policy, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        self.device = first.device if first is not None else torch.device("cpu")
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.seed, self.fixed_noise = seed, fixed_noise
        self.dt = cell.arm.control_period
        self.cameras = c.obs == "rgb"
        self.frame_times: list[float] = []
        self.stats = _Stats()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-inference")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    # ---- inference ----
    def _infer(self, item: dict) -> tuple[np.ndarray, np.ndarray, float]:
        """On the inference thread: the chunk, P(finished) per step and when it was ready (perf_counter)."""
        batch = {k: v.unsqueeze(0).to(self.device) for k, v in item.items()}
        if self.fixed_noise:
            self.generator.manual_seed(self.seed)
        out = self.policy.predict(batch, generator=self.generator)
        action = out["action"][0].detach().float().cpu().numpy()  # (Tp, 8)
        done = out["done"][0].detach().float().cpu().numpy()  # (Tp,)
        return action, done, time.perf_counter()

    def _launch(self, lead: int) -> _Pending:
        item = self.features.features(remembered(self.api.memory))  # built here: the frame is the latest
        return _Pending(self.pool.submit(self._infer, item), time.perf_counter(), lead)

    def _collect(self, pending: _Pending, stall_counts: bool) -> _Chunk:
        needed = time.perf_counter()
        action, done, finished = pending.future.result()
        took = finished - pending.launched
        self.stats.inference_ms.append(1000 * took)
        budget = max(pending.lead * self.dt, needed - pending.launched)
        if stall_counts and took > budget:
            self.stats.stalls += 1
            self.stats.stall_ms += 1000 * (took - budget)
        start = pending.lead
        return _Chunk(action, done, start, min(start + self.config.action_horizon, len(action)))

    # ---- ticks ----
    def drive(self, max_ticks: int) -> tuple[int, bool]:
        """Run the policy until its termination head says finished (True) or `max_ticks` pass (False);
        returns the ticks run."""
        chunk, pending, ticks = None, None, 0
        try:
            while ticks < max_ticks:
                ob = observe(self.cell, cameras=self.cameras)
                self.features.add_frame(state_row(ob, self.features.names),
                                        {f"{cam}_rgb": rgb for cam, (rgb, _) in ob.images.items()})
                if chunk is None:  # the call's first chunk: the arm is at rest, waiting is no stall
                    chunk = self._collect(self._launch(0), stall_counts=False)
                elif chunk.next >= chunk.stop:
                    chunk = self._collect(pending or self._launch(0), stall_counts=True)
                    pending = None
                j = chunk.next
                if ticks >= self.min_call_ticks and chunk.done[j] > self.done_threshold:
                    self.features.drop_frame()  # no command follows this observation
                    return ticks, True
                if pending is None and chunk.stop - j == self.lead and self.lead > 0:
                    pending = self._launch(self.lead)
                self._tick(ob, chunk.action[j])
                chunk.next += 1
                ticks += 1
            return ticks, False
        finally:
            if pending is not None:
                pending.future.result()  # the generator and model are not shared across calls mid-step

    def _tick(self, ob: Observation, action: np.ndarray) -> None:
        cmd = ArmCommand(Pose.from_array(action[:7]), bool(action[7] > GRIPPER_CLOSED_ABOVE))
        t = self.clock()
        self.monitor.update(ob.object_poses)
        if self.writer is not None:
            append_tick(self.writer, t, cmd, ob)
        self.frame_times.append(t)
        self.cell.arm.command(cmd)  # the safety layer clamps it
        self.cell.arm.wait_tick()


# ---- call outcomes -----------------------------------------------------------------------------------
def check_outcome(cell: Workcell, call: Call, args: Sequence, before: dict[str, Pose]) -> str | None:
    """Why the finished motion `call` did not do what it names (None: it did), from the workcell's
    state with the scripted skills' tolerances. `args`: resolved arguments; `before`: object poses
    when the call began."""
    state, poses = cell.arm.state(), cell.object_poses()
    tcp = state.ee_pose.xyz
    held = lambda o: state.gripper_closed and np.linalg.norm(poses[o].xyz - tcp) < HOLD_RADIUS_M  # noqa: E731
    if call.name == "pick":
        return None if held(args[0]) else f"the policy ended {call.code} without holding the {args[0]}"
    if call.name == "place":
        obj, target = args
        if held(obj):
            return f"the policy ended {call.code} still holding the {obj}"
        p = poses[obj].xyz
        if isinstance(target, Pose):
            goal = target.xyz
        elif target in cell.spec.zone_names:
            ok = in_zone(p, cell.spec, target) and abs(p[2] - CUBE_SIZE / 2) < 0.01
            return None if ok else f"the {obj} is not resting in the {target}"
        else:
            goal = poses[target].xyz + (0.0, 0.0, CUBE_SIZE)
        off = float(np.linalg.norm(p - goal))
        if np.hypot(*(p[:2] - goal[:2])) > PLACE_TOLERANCE or abs(p[2] - goal[2]) > 0.02:
            return f"the {obj} came to rest {100 * off:.1f} cm from its goal"
        return None
    if call.name == "push":
        obj, direction, distance = args
        moved = float(np.dot(poses[obj].xyz[:2] - before[obj].xyz[:2], DIRECTIONS[direction]))
        if moved < 0.7 * float(distance):
            return f"the {obj} moved only {100 * moved:.1f} cm of {100 * float(distance):.1f} cm"
        return None
    if call.name == "home":
        off = float(np.linalg.norm(tcp - np.asarray(HOME_POSITION)))
        return None if off < 0.03 else f"the arm stopped {100 * off:.1f} cm from home"
    raise ValueError(f"{call.name}() is not a motion call")


# ---- one rollout ---------------------------------------------------------------------------------------
def _policy_name(policy) -> str:
    return str(getattr(policy, "run_path", None) or type(policy).__name__)


def rollout(inst: TaskInstance, policy: "DiffusionPolicy", out_path: Path | None = None, max_call_s: float = 30.0,
            *, robot: str = "sim", control_hz: float = 10.0, lead_steps: int = DEFAULT_LEAD_STEPS,
            min_call_ticks: int = MIN_CALL_TICKS, done_threshold: float = 0.5, source: str = "script",
            stop_on_failure: bool = True, policy_name: str | None = None, seed: int | None = None,
            fixed_noise: bool = True, cell_factory: Callable[..., Workcell] = open_workcell) -> RolloutResult:
    """Run `inst`'s oracle program with `policy` executing each motion call (see the module docstring).

    `source`: the call log's source for the program's calls ("script" for the oracle program,
    "planner" when a planner produced them). `stop_on_failure`: end the episode at the first failed
    call, as `RobotAPI.run_program` does. `out_path`: also save the rollout as an episode file.
    `fixed_noise`: every chunk starts DDIM from the same noise (deterministic sampling: consecutive
    chunks agree instead of switching between the modes of the demonstrations)."""
    from recorders.episode_file import EpisodeMeta
    from recorders.episode_writer import EpisodeWriter
    from recorders.segmentation import segment_calls

    if max_call_s <= 0:
        raise ValueError(f"max_call_s must be > 0, got {max_call_s}")
    if hasattr(policy, "eval"):
        policy.eval()
    name = policy_name or _policy_name(policy)
    with cell_factory(robot, inst.scene, control_hz) as cell:
        t0 = cell.arm.time()
        clock = lambda: cell.arm.time() - t0  # noqa: E731
        writer = None
        if out_path is not None:
            scene = {"spec": json.loads(inst.scene.to_json()), "roles": inst.roles,
                     "program": inst.program_code, "policy": name}
            meta = EpisodeMeta(task=inst.task.id, instruction=inst.instruction, robot=cell.kind,
                               control_hz=control_hz, seed=inst.seed, split=inst.split, clock=cell.clock_name,
                               scene=scene)
            writer = EpisodeWriter(out_path, meta, stream_specs(cell, policy.config.obs, control_hz),
                                   drop_when_full=False)
        try:
            monitor = TaskMonitor(inst, cell.object_poses())
            log = CallLog(clock=clock, sink=None if writer is None else writer.log_call)
            api = RobotAPI(cell, log)
            runner = _Runner(inst, policy, cell, api, monitor, clock, writer, lead_steps, min_call_ticks,
                             done_threshold, inst.seed if seed is None else seed, fixed_noise)
            max_ticks = max(1, math.ceil(max_call_s * control_hz - 1e-9))
            try:
                ticks, failure = _run_program(runner, api, log, inst, max_ticks, max_call_s, source, stop_on_failure)
            finally:
                runner.close()
            success = monitor.success(cell.object_poses())
            if failure is None and not success:
                failure = "the program ran but the task's success check failed"
            path = None
            if writer is not None:
                labels = segment_calls(log.records, np.asarray(runner.frame_times))
                path = writer.finish(success, [s.to_dict() for s in labels])
                writer = None
        finally:
            if writer is not None:
                writer.finish(False, [])
        outcomes = [CallOutcome(r.code, r.name, r.status, ticks.get(id(r), 0), r.reason) for r in log.records]
        s = runner.stats
        return RolloutResult(inst.task.id, inst.seed, inst.split, success, outcomes, len(runner.frame_times),
                             clock(), s.inference_ms, s.stalls, s.stall_ms, path, failure)


def _run_program(runner: _Runner, api: RobotAPI, log: CallLog, inst: TaskInstance, max_ticks: int,
                 max_call_s: float, source: str, stop_on_failure: bool) -> tuple[dict[int, int], str | None]:
    """Execute the program; returns ticks per motion record (by id) and the first failure."""
    ticks: dict[int, int] = {}
    if runner.config.cond == "flat":  # the task alone: one loop over the whole episode
        n_motions = sum(c.spec.kind == "motion" for c in inst.program)
        runner.features.begin_call(None, None)
        _, finished = runner.drive(max_ticks * max(1, n_motions))
        return ticks, None if finished else f"the flat policy did not finish within {n_motions * max_call_s:g} s"
    failure = None
    for call in inst.program:
        try:
            if call.spec.kind != "motion":
                api.execute(call, source)
            else:
                args = [api.execute(a, source) if isinstance(a, Call) else a for a in call.args]
                resolved = next((a.to_array().astype(np.float32) for a in args if isinstance(a, Pose)), None)
                before = api.cell.object_poses()
                with log.record(call, source) as rec:
                    runner.features.begin_call(call, resolved)
                    n, finished = runner.drive(max_ticks)
                    ticks[id(rec)] = n
                    if not finished:
                        raise SkillFailed(f"the policy did not finish {call.code} within {max_call_s:g} s")
                    reason = check_outcome(api.cell, call, args, before)
                    if reason is not None:
                        raise SkillFailed(reason)
                _capture(api, call, args)
                api.memory.history.append(call.code)
        except (SkillFailed, CallAborted, ArmError) as e:  # ArmError: the safety layer refused a command
            failure = failure or str(e)
            if stop_on_failure or isinstance(e, CallAborted):
                break
        if api.finished:
            break
    return ticks, failure


def _capture(api: RobotAPI, call: Call, args: Sequence) -> None:
    """Key poses on gripper events, as the robot API's scripted pick and place store them."""
    if call.name == "pick":
        api.memory.capture("pick", args[0], api.cell.arm.state().ee_pose, api.log.clock())
    elif call.name == "place":
        api.memory.capture("place", args[0], api.cell.object_pose(args[0]), api.log.clock())


# ---- evaluation over seeds ------------------------------------------------------------------------------
def evaluate(tasks: Sequence[str], episodes: int, policy, *, seed: int = 0, split: str = "train",
             robot: str = "sim", max_call_s: float = 30.0, out_dir: Path | None = None,
             lead_steps: int = DEFAULT_LEAD_STEPS, device: str = "cpu", fixed_noise: bool = True,
             on_episode: Callable[[RolloutResult], None] | None = None) -> dict:
    """Success per task and per call type (95% Wilson intervals) of `policy` (a checkpoint folder or
    a loaded DiffusionPolicy) executing the oracle programs of seeds seed .. seed + episodes - 1.
    With `out_dir`, every rollout is saved there as TASK_SEED.h5. Returns a JSON-able dict."""
    from app.eval_command import wilson_interval
    from recorders.task_suite import make_instance, task_def

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    for t in tasks:
        task_def(t)
    if isinstance(policy, (str, Path)):
        from models.diffusion_policy import DiffusionPolicy

        name, policy = str(policy), DiffusionPolicy.load(policy, device=device)
    else:
        name = _policy_name(policy)
    ci = lambda k, n: [round(v, 3) for v in wilson_interval(k, n)]  # noqa: E731
    rows, per_call, inference, stalls = [], {}, [], 0
    for task in tasks:
        results = []
        for s in range(seed, seed + episodes):
            path = None if out_dir is None else Path(out_dir) / f"{task}_{s:04d}.h5"
            r = rollout(make_instance(task, s, split), policy, path, max_call_s, robot=robot,
                        lead_steps=lead_steps, policy_name=name, fixed_noise=fixed_noise)
            results.append(r)
            inference += r.inference_ms
            stalls += r.stalls
            for c in r.calls:
                if API[c.name].kind == "motion":
                    entry = per_call.setdefault(c.name, [0, 0])
                    entry[0] += c.status == "ok"
                    entry[1] += 1
            if on_episode is not None:
                on_episode(r)
        wins = sum(r.success for r in results)
        rows.append({"task": task, "episodes": episodes, "successes": wins, "rate": wins / episodes,
                     "ci95": ci(wins, episodes),
                     "seeds": [{"seed": r.seed, "success": r.success, "failure": r.failure} for r in results]})
    calls = {k: {"calls": n, "ok": ok, "rate": ok / n, "ci95": ci(ok, n)} for k, (ok, n) in sorted(per_call.items())}
    ms = np.asarray(inference) if inference else np.zeros(1)
    return {"policy": name, "config": policy.config.to_dict() if hasattr(policy.config, "to_dict") else {},
            "split": split, "robot": robot, "max_call_s": max_call_s, "tasks": rows, "calls": calls,
            "inference_ms": {"chunks": len(inference), "mean": round(float(ms.mean()), 2),
                             "p95": round(float(np.percentile(ms, 95)), 2), "max": round(float(ms.max()), 2)},
            "stalls": stalls}


def report_text(result: dict) -> str:
    """The human-readable table of an `evaluate` result."""
    lines = [f"policy={result['policy']} split={result['split']} robot={result['robot']}",
             f"{'task':<11} {'success':>9}  95% interval"]
    for r in result["tasks"]:
        lines.append(f"{r['task']:<11} {r['successes']:>3}/{r['episodes']:<3} {100 * r['rate']:5.1f}%  "
                     f"[{100 * r['ci95'][0]:.0f}%, {100 * r['ci95'][1]:.0f}%]")
    for k, v in result["calls"].items():
        lines.append(f"{k:<11} {v['ok']:>3}/{v['calls']:<3} {100 * v['rate']:5.1f}%  "
                     f"[{100 * v['ci95'][0]:.0f}%, {100 * v['ci95'][1]:.0f}%]")
    inf = result["inference_ms"]
    lines.append(f"inference: {inf['chunks']} chunks, mean {inf['mean']} ms, p95 {inf['p95']} ms; "
                 f"stalls: {result['stalls']}")
    return "\n".join(lines)
