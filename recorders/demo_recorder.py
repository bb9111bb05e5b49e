"""Scripted demonstrations: run a task's oracle program on a workcell and record it as an episode.

Per control tick the recorder pairs the observation taken just before a command (proprioception,
object poses, camera frames) with the command the safety layer actually sent, on the workcell's one
clock; the robot API logs every call into the same take (recorders/take.py); at the end the task
monitor decides success from simulator state and auto-segmentation turns the calls into labels.
`record_program` runs a written program the same way on a workcell that is already open, without a
task of the suite (a real arm: free-text instruction, success judged by the operator).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from recorders.arms.base import ArmCommand
from recorders.call_log import CallAborted, SkillFailed
from recorders.episode_meta import ModelRef, Provenance
from recorders.observation import OBS_KINDS, Observation, observe
from recorders.robot_api import RobotAPI
from recorders.robot_api_spec import Call
from recorders.take import Take
from recorders.video_quality import check_quality
from recorders.task_suite import TaskInstance
from recorders.cell.registry import open_workcell
from recorders.cell.workcell import Workcell

MAX_EPISODE_SECONDS = 180.0


@dataclass(frozen=True)
class RecordOptions:
    robot: str = "sim"
    obs: str = "rgb"  # "state": proprioception and object poses only; "rgb": plus both cameras
    control_hz: float = 10.0
    video_quality: str | None = None  # how camera streams are stored (recorders/video_quality.py); None: the take's default

    def __post_init__(self):
        if self.video_quality is not None:
            check_quality(self.video_quality)
        if self.obs not in OBS_KINDS:
            raise ValueError(f"obs must be one of {', '.join(OBS_KINDS)}, got {self.obs!r}")
        if not 1.0 <= self.control_hz <= 100.0:
            raise ValueError(f"control_hz must be within 1..100, got {self.control_hz}")


@dataclass(frozen=True)
class EpisodeResult:
    path: Path
    success: bool | None  # None: unknown (a free instruction, no task to check it against)
    frames: int
    episode_seconds: float  # on the workcell's clock
    wall_seconds: float
    failure: str | None = None
    calls: tuple[tuple[str, str], ...] = ()  # (code, status) of every logged call


class _ScriptedTicks:
    """The skills' tick hooks: observe and check the time budget before each command, then write
    the command the safety layer sent into the take."""

    def __init__(self, cell: Workcell, take: Take, cameras: bool, max_seconds: float):
        self.cell, self.take, self.cameras, self.max_seconds = cell, take, cameras, max_seconds
        self._observed: Observation | None = None

    def before_command(self) -> None:
        if self.take.clock() > self.max_seconds:
            raise CallAborted(f"episode longer than {self.max_seconds:.0f} s")
        self._observed = observe(self.cell, cameras=self.cameras)

    def after_command(self, sent: ArmCommand) -> None:
        self.take.tick(sent, self._observed)


def record_demo(inst: TaskInstance, path: Path, options: RecordOptions = RecordOptions(),
                should_abort: Callable[[], bool] | None = None,
                cell_factory: Callable[..., Workcell] = open_workcell,
                propose: Callable[[RobotAPI], Call] | None = None, max_calls: int = 20,
                models: tuple[ModelRef, ...] = (), source: str = "planner",
                instruction: str | None = None, on_take: Callable[[Take], None] | None = None) -> EpisodeResult:
    """Record one episode of `inst` into `path` (an .h5 episode file): the scripted demonstration,
    or with `propose` the program handed over call by call (RobotAPI.run_planned) by `source`: a
    planner, or "script" for the oracle program asked for one call at a time; `models`: the learned
    models behind `propose`, for the episode's provenance. `instruction`: a free instruction instead
    of the task (`inst` gives only the scene): the take has no task, so success is unknown (None).
    `on_take`: called with the take as it opens (`run --step` logs the operator's interventions in it)."""
    wall0 = time.perf_counter()
    with cell_factory(options.robot, inst.scene, options.control_hz) as cell:
        provenance = Provenance("script" if propose is None else source, cell.kind, models)
        with Take(path, cell, provenance, obs=options.obs, control_hz=options.control_hz,
                  inst=inst, instruction=instruction, does_task=instruction is None,
                  video_quality=options.video_quality) as take:
            if on_take is not None:
                on_take(take)
            ticks = _ScriptedTicks(cell, take, options.obs == "rgb", MAX_EPISODE_SECONDS)
            api = RobotAPI(cell, take.log, on_tick=ticks.after_command, should_abort=should_abort,
                           before_tick=ticks.before_command)
            failure = None
            try:
                if propose is None:
                    api.run_program(inst.program)
                else:
                    api.run_planned(propose, max_calls, source)
            except (SkillFailed, CallAborted) as e:
                failure = str(e)
            frames, seconds = take.frames, take.clock()
            result = take.finish(api.memory, failed=failure is not None)
        success = bool(result.success) if instruction is None else result.success
        if failure is None and success is False:
            failure = "the program ran but the task's success check failed"
        return EpisodeResult(result.path or path, success, frames, seconds, time.perf_counter() - wall0, failure,
                             tuple((r.code, r.status) for r in result.calls))


def record_program(cell: Workcell, calls: list[Call], path: Path, instruction: str, obs: str = "rgb",
                   control_hz: float = 10.0, should_abort: Callable[[], bool] | None = None,
                   judge: Callable[[str | None], bool | None] | None = None,
                   video_quality: str | None = None) -> EpisodeResult:
    """Record `calls` (a checked program) executed on the open `cell` as one episode labelled by its
    calls. `judge(failure)`: the operator's verdict once the program has run (None: unknown); a failed
    call makes the take failed whatever the verdict."""
    wall0 = time.perf_counter()
    with Take(path, cell, Provenance("script", cell.kind), obs=obs, control_hz=control_hz,
              instruction=instruction, realtime=not cell.arm.stepped, video_quality=video_quality) as take:
        ticks = _ScriptedTicks(cell, take, obs == "rgb", MAX_EPISODE_SECONDS)
        api = RobotAPI(cell, take.log, on_tick=ticks.after_command, should_abort=should_abort,
                       before_tick=ticks.before_command)
        failure = None
        try:
            api.run_program(calls)
        except (SkillFailed, CallAborted) as e:
            failure = str(e)
        frames, seconds = take.frames, take.clock()
        verdict = judge(failure) if judge is not None and failure is None else None
        result = take.finish(api.memory, failed=failure is not None, marked=verdict)
    return EpisodeResult(result.path or path, result.success, frames, seconds, time.perf_counter() - wall0, failure,
                         tuple((r.code, r.status) for r in result.calls))
