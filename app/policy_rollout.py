"""One rollout: a task's oracle program run in the workcell with a learned diffusion policy executing
every motion call (the paper's separate evaluation of low-level control; app/policy_eval.py runs
it over seeds).

Per motion call (pick, place, push, home) data flows
```
observe (arm state, object poses[, cameras]) -> FeatureBuilder (models/policy_features.py): the features PolicyDataset
    builds at training time (window clamped to the call's first frame, call vector with poses of the
    latest frame and the target resolved by the robot API, memory from the live Memory)
    -> policy.predict (a background thread) -> chunk (Tp, 8) + P(finished) per step
    -> ArmCommand per tick -> safety layer (cell.arm.command, returns what it sent) -> the take
    records that command with the observation -> cell.arm.wait_tick
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

import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from models.policy_features import FeatureBuilder, remembered, state_row
from recorders.arms.base import ArmCommand, ArmError
from recorders.call_log import CallAborted, CallLog, SkillFailed
from recorders.episode_meta import ModelRef, Provenance
from recorders.observation import Observation, observe
from recorders.pose import Pose
from recorders.robot_api import RobotAPI
from recorders.robot_api_spec import Call
from recorders.cell.scene import CUBE_SIZE
from recorders.skills import DIRECTIONS, HOME_POSITION
from recorders.take import Take
from recorders.task_suite import PLACE_TOLERANCE, TaskInstance, TaskMonitor, in_zone
from recorders.cell.registry import open_workcell
from recorders.cell.workcell import Workcell

if TYPE_CHECKING:
    from models.diffusion_policy import DiffusionPolicy

DEFAULT_LEAD_STEPS = 4
MIN_CALL_TICKS = 3  # the termination head is not trusted on a call's first ticks
HOLD_RADIUS_M = 0.03  # object centre to TCP for "held": the scripted skills' check
GRIPPER_CLOSED_ABOVE = 0.5  # action[7]


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
    success: bool | None  # None: unknown (a free instruction, no task to check it against)
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

    def __init__(self, inst, policy, cell: Workcell, api: RobotAPI, monitor: TaskMonitor, take: Take | None,
                 lead_steps: int, min_call_ticks: int, done_threshold: float, seed: int, fixed_noise: bool):
        import torch

        self.inst, self.policy, self.cell, self.api, self.monitor = inst, policy, cell, api, monitor
        self.take = take
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
        self.frames = 0
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
        sent = self.cell.arm.command(cmd)  # the safety layer clamps it
        if self.take is not None:
            self.take.tick(sent, ob)  # updates the take's task monitor, which is self.monitor
        elif self.monitor is not None:
            self.monitor.update(ob.object_poses)
        self.frames += 1
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
def describe_policy(policy) -> str:
    return str(getattr(policy, "run_path", None) or type(policy).__name__)


def rollout(inst: TaskInstance, policy: "DiffusionPolicy", out_path: Path | None = None, max_call_s: float = 30.0,
            *, robot: str = "sim", control_hz: float = 10.0, lead_steps: int = DEFAULT_LEAD_STEPS,
            min_call_ticks: int = MIN_CALL_TICKS, done_threshold: float = 0.5, source: str = "script",
            stop_on_failure: bool = True, policy_name: str | None = None, seed: int | None = None,
            fixed_noise: bool = True, cell_factory: Callable[..., Workcell] = open_workcell,
            propose: Callable[[RobotAPI], Call] | None = None, max_calls: int = 20,
            models: tuple[ModelRef, ...] = (), instruction: str | None = None,
            on_take: Callable[[Take], None] | None = None) -> RolloutResult:
    """Run `inst`'s oracle program with `policy` executing each motion call (see the module docstring).

    `propose`: instead of the oracle program, ask a planner for each next call (`propose(api)`, as
    RobotAPI.run_planned does) until done() or `max_calls` calls.

    `source`: the call log's source for the program's calls ("script" for the oracle program,
    "planner" when a planner produced them). `stop_on_failure`: end the episode at the first failed
    call, as `RobotAPI.run_program` does. `out_path`: also save the rollout as an episode file.
    `fixed_noise`: every chunk starts DDIM from the same noise (deterministic sampling: consecutive
    chunks agree instead of switching between the modes of the demonstrations). `models`: the
    models behind the rollout (the policy's checkpoint, the planner of `propose`), for the episode's
    provenance; without a policy entry the policy is named by `policy_name`. `instruction`: with
    `propose`, a free instruction instead of the task (`inst` gives only the scene): the take has no
    task, so success is unknown (None). `on_take`: called with the take as it opens (`run --step` logs
    the operator's interventions in it)."""
    if max_call_s <= 0:
        raise ValueError(f"max_call_s must be > 0, got {max_call_s}")
    if hasattr(policy, "eval"):
        policy.eval()
    name = policy_name or describe_policy(policy)
    with cell_factory(robot, inst.scene, control_hz) as cell:
        t0 = cell.arm.time()
        clock = lambda: cell.arm.time() - t0  # noqa: E731
        take = None
        if out_path is not None:
            given = () if any(m.role == "policy" for m in models) else (ModelRef("policy", name),)
            provenance = Provenance("policy", cell.kind, (*given, *models))
            take = Take(out_path, cell, provenance, obs=policy.config.obs, control_hz=control_hz,
                        inst=inst, instruction=instruction, does_task=instruction is None)
            if on_take is not None:
                on_take(take)
        try:
            if take is not None:
                monitor = take.monitor
            else:
                monitor = TaskMonitor(inst, cell.object_poses()) if instruction is None else None
            log = take.log if take is not None else CallLog(clock=clock)
            api = RobotAPI(cell, log)
            runner = _Runner(inst, policy, cell, api, monitor, take, lead_steps, min_call_ticks,
                             done_threshold, inst.seed if seed is None else seed, fixed_noise)
            max_ticks = max(1, math.ceil(max_call_s * control_hz - 1e-9))
            try:
                calls = inst.program if propose is None else api.proposals(propose, max_calls)
                ticks, failure, aborted = _run_program(runner, api, log, inst, calls, max_ticks, max_call_s,
                                                       source, stop_on_failure)
            finally:
                runner.close()
            success = None if monitor is None else monitor.success(cell.object_poses())
            if aborted:  # the operator stopped it: never a success, whatever the scene shows
                success = False
            if failure is None and success is False:
                failure = "the program ran but the task's success check failed"
            path = None
            if take is not None:
                path = take.finish(api.memory, failed=aborted).path
                take = None
        finally:
            if take is not None:  # the rollout broke off: save what ran, as a failure
                take.finish(failed=True)
        outcomes = [CallOutcome(r.code, r.name, r.status, ticks.get((r.code, r.t_start), 0), r.reason)
                    for r in log.records]
        s = runner.stats
        return RolloutResult(inst.task.id, inst.seed, inst.split, success, outcomes, runner.frames,
                             clock(), s.inference_ms, s.stalls, s.stall_ms, path, failure)


def _run_program(runner: _Runner, api: RobotAPI, log: CallLog, inst: TaskInstance, calls, max_ticks: int,
                 max_call_s: float, source: str,
                 stop_on_failure: bool) -> tuple[dict[tuple[str, float], int], str | None, bool]:
    """Execute `calls` (the program, or a planner's proposals); returns ticks per motion call (by its
    record's code and start time), the first failure, and whether the run was aborted."""
    ticks: dict[tuple[str, float], int] = {}
    if runner.config.cond == "flat":  # the task alone: one loop over the whole episode
        n_motions = sum(c.spec.kind == "motion" for c in inst.program)
        runner.features.begin_call(None, None)
        _, finished = runner.drive(max_ticks * max(1, n_motions))
        return ticks, None if finished else f"the flat policy did not finish within {n_motions * max_call_s:g} s", False
    failure, aborted = None, False
    upcoming = iter(calls)
    while True:
        try:
            call = next(upcoming)  # a planner's proposal may be refused (SkillFailed) or the operator quit
        except StopIteration:
            break
        except (SkillFailed, CallAborted) as e:
            failure = failure or str(e)
            aborted = isinstance(e, CallAborted)
            break
        try:
            if call.spec.kind != "motion":
                api.execute(call, source)
            else:
                args = [api.resolve(a, source) for a in call.args]
                resolved = next((a.to_array().astype(np.float32) for a in args if isinstance(a, Pose)), None)
                before = api.cell.object_poses()
                with log.record(call, source) as rec:
                    runner.features.begin_call(call, resolved)
                    n, finished = runner.drive(max_ticks)
                    ticks[rec.code, rec.t_start] = n
                    if not finished:
                        raise SkillFailed(f"the policy did not finish {call.code} within {max_call_s:g} s")
                    reason = check_outcome(api.cell, call, args, before)
                    if reason is not None:
                        raise SkillFailed(reason)
                _capture(api, call, args)
                api.memory.history.append(call.code)
        except (SkillFailed, CallAborted, ArmError) as e:  # ArmError: the safety layer refused a command
            failure = failure or str(e)
            aborted = isinstance(e, CallAborted)
            if stop_on_failure or aborted:
                break
        if api.finished:
            break
    return ticks, failure, aborted


def _capture(api: RobotAPI, call: Call, args: Sequence) -> None:
    """Key poses of pick and place, as the robot API's scripted skills store them; here at the end of
    the call (a learned policy's gripper events are not marked), so a pick's pose is the lifted one."""
    if call.name == "pick":
        api.memory.capture("pick", args[0], api.cell.object_pose(args[0]), api.log.clock())
    elif call.name == "place":
        api.memory.capture("place", args[0], api.cell.object_pose(args[0]), api.log.clock())
