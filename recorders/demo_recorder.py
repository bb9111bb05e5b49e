"""Scripted demonstrations: run a task's oracle program on a workcell and record it as an episode.

Per control tick the recorder pairs the observation taken just before a command (proprioception,
object poses, camera frames) with that command, on the workcell's one clock; the robot API logs
every call into the same file; at the end the task monitor decides success from simulator state
and auto-segmentation turns the calls into labels.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from recorders.arms.base import ArmCommand
from recorders.call_log import CallAborted, CallLog, SkillFailed
from recorders.episode_file import EpisodeMeta
from recorders.episode_writer import EpisodeWriter
from recorders.observation import OBS_KINDS, append_tick, observe, stream_specs
from recorders.robot_api import RobotAPI
from recorders.robot_api_spec import Call
from recorders.segmentation import segment_calls
from recorders.task_suite import TaskInstance, TaskMonitor
from recorders.workcell import Workcell, open_workcell

MAX_EPISODE_SECONDS = 180.0


@dataclass(frozen=True)
class RecordOptions:
    robot: str = "sim"
    obs: str = "rgb"  # "state": proprioception and object poses only; "rgb": plus both cameras
    control_hz: float = 10.0

    def __post_init__(self):
        if self.obs not in OBS_KINDS:
            raise ValueError(f"obs must be one of {', '.join(OBS_KINDS)}, got {self.obs!r}")
        if not 1.0 <= self.control_hz <= 100.0:
            raise ValueError(f"control_hz must be within 1..100, got {self.control_hz}")


@dataclass(frozen=True)
class EpisodeResult:
    path: Path
    success: bool
    frames: int
    episode_seconds: float  # on the workcell's clock
    wall_seconds: float
    failure: str | None = None
    calls: tuple[tuple[str, str], ...] = ()  # (code, status) of every logged call


class _TickRecorder:
    """The robot API's tick callback: observe, check the episode's time budget, write."""

    def __init__(self, cell: Workcell, writer: EpisodeWriter, monitor: TaskMonitor, obs: str,
                 max_seconds: float):
        self.cell, self.writer, self.monitor, self.obs = cell, writer, monitor, obs
        self.t0 = cell.arm.time()  # episode time starts now, whatever the arm's clock reads
        self.max_seconds = max_seconds
        self.frame_times: list[float] = []

    def __call__(self, cmd: ArmCommand) -> None:
        t = self.clock()
        if t > self.max_seconds:
            raise CallAborted(f"episode longer than {self.max_seconds:.0f} s")
        ob = observe(self.cell, cameras=self.obs == "rgb")
        self.monitor.update(ob.object_poses)
        append_tick(self.writer, t, cmd, ob)
        self.frame_times.append(t)

    def clock(self) -> float:
        """Seconds since the episode started, on the workcell's clock."""
        return self.cell.arm.time() - self.t0


def record_demo(inst: TaskInstance, path: Path, options: RecordOptions = RecordOptions(),
                should_abort: Callable[[], bool] | None = None,
                cell_factory: Callable[..., Workcell] = open_workcell,
                propose: Callable[[RobotAPI], Call] | None = None, max_calls: int = 20) -> EpisodeResult:
    """Record one episode of `inst` into `path` (an .h5 episode file): the scripted demonstration,
    or with `propose` a planner writing the program call by call (RobotAPI.run_planned)."""
    wall0 = time.perf_counter()
    with cell_factory(options.robot, inst.scene, options.control_hz) as cell:
        meta = EpisodeMeta(task=inst.task.id, instruction=inst.instruction, robot=cell.kind,
                           control_hz=options.control_hz, seed=inst.seed, split=inst.split,
                           clock=cell.clock_name, scene=_scene_meta(inst))
        specs = stream_specs(cell, options.obs, options.control_hz)
        with EpisodeWriter(path, meta, specs, drop_when_full=False) as writer:  # scripted: wait, never drop
            monitor = TaskMonitor(inst, cell.object_poses())
            ticks = _TickRecorder(cell, writer, monitor, options.obs, MAX_EPISODE_SECONDS)
            log = CallLog(clock=ticks.clock, sink=writer.log_call)
            api = RobotAPI(cell, log, on_tick=ticks, should_abort=should_abort)
            failure = None
            try:
                if propose is None:
                    api.run_program(inst.program)
                else:
                    api.run_planned(propose, max_calls)
            except (SkillFailed, CallAborted) as e:
                failure = str(e)
            success = failure is None and monitor.success(cell.object_poses())
            if failure is None and not success:
                failure = "the program ran but the task's success check failed"
            labels = segment_calls(log.records, np.asarray(ticks.frame_times))
            final = writer.finish(success, [s.to_dict() for s in labels], api.memory.to_json())
        return EpisodeResult(final, success, len(ticks.frame_times), ticks.clock(),
                             time.perf_counter() - wall0, failure, tuple((r.code, r.status) for r in log.records))


def _scene_meta(inst: TaskInstance) -> dict:
    import json

    return {"spec": json.loads(inst.scene.to_json()), "roles": inst.roles, "program": inst.program_code}
