"""One rollout: a task's oracle program (or a planner's calls) run in the workcell with a learned
diffusion policy executing every motion call (the paper's separate evaluation of low-level control;
app/policy_eval.py runs it over seeds). The control loop, the outcome check and the key poses are
app/policy_control.py's; this module opens the workcell and the take, runs the calls and sums up.

Memory, query and terminal calls (remember, recall, free_space, done) run on the robot API as usual.
With `cond="flat"` the policy knows only the task, so one loop drives the whole episode (its
termination head marks the episode's end) and no motion calls are logged.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from app.policy_control import (
    DEFAULT_LEAD_STEPS, MIN_CALL_TICKS, PolicyController, check_outcome, plain_hooks, run_motion_call,
)
from recorders.arms.base import ArmError
from recorders.call_log import CallAborted, CallLog, SkillFailed
from recorders.episode_meta import ModelRef, Provenance
from recorders.robot_api import RobotAPI
from recorders.robot_api_spec import Call
from recorders.take import Take
from recorders.task_suite import TaskInstance, TaskMonitor
from recorders.cell.registry import open_workcell
from recorders.cell.workcell import Workcell

if TYPE_CHECKING:
    from models.diffusion_policy import DiffusionPolicy

__all__ = ["DEFAULT_LEAD_STEPS", "CallOutcome", "RolloutResult", "check_outcome", "describe_policy", "rollout"]


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
                monitor = TaskMonitor(inst, cell.true_object_poses()) if instruction is None else None
            log = take.log if take is not None else CallLog(clock=clock)
            api = RobotAPI(cell, log)
            def judge(_sent, ob):
                if monitor is not None:
                    monitor.update(cell.true_object_poses() if cell.perceived_objects else ob.object_poses)
            record = take.tick if take is not None else judge
            runner = PolicyController(policy, cell, cell.spec, inst.task.id,
                                      plain_hooks(cell, policy.config.obs == "rgb", record),
                                      instruction=inst.instruction if instruction is None else instruction,
                                      lead_steps=lead_steps, min_call_ticks=min_call_ticks,
                                      done_threshold=done_threshold, seed=inst.seed if seed is None else seed,
                                      fixed_noise=fixed_noise)
            max_ticks = max(1, math.ceil(max_call_s * control_hz - 1e-9))
            try:
                calls = inst.program if propose is None else api.proposals(propose, max_calls)
                ticks, failure, aborted = _run_program(runner, api, inst, calls, max_ticks, max_call_s, source,
                                                       stop_on_failure)
            finally:
                runner.close()
            success = None if monitor is None else monitor.success(cell.true_object_poses())
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


def _run_program(runner: PolicyController, api: RobotAPI, inst: TaskInstance, calls, max_ticks: int,
                 max_call_s: float, source: str,
                 stop_on_failure: bool) -> tuple[dict[tuple[str, float], int], str | None, bool]:
    """Execute `calls` (the program, or a planner's proposals); returns ticks per motion call (by its
    record's code and start time), the first failure, and whether the run was aborted."""
    ticks = runner.call_ticks
    if runner.config.cond == "flat":  # the task alone: one loop over the whole episode
        n_motions = sum(c.spec.kind == "motion" for c in inst.program)
        runner.features.begin_call(None, None)
        _, finished = runner.drive(api.memory, max_ticks * max(1, n_motions))
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
                run_motion_call(runner, api, call, source, max_ticks, max_call_s)
        except (SkillFailed, CallAborted, ArmError) as e:  # ArmError: the safety layer refused a command
            failure = failure or str(e)
            aborted = isinstance(e, CallAborted)
            if stop_on_failure or aborted:
                break
        if api.finished:
            break
    return ticks, failure, aborted
