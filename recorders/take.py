"""One take: an episode being recorded from a workcell, whoever drives the arm.

Scripted demonstrations (recorders/demo_recorder.py), the Record workspace (app/recording.py),
policy rollouts (app/policy_rollout.py) and Run all record through a `Take`:
```
Take(path, cell, provenance, ...)    episode metadata (task, scene, roles, program, provenance),
                                     the episode writer, the task monitor, the call log
take.log                             the robot API logs its calls here, on the workcell's clock
take.log_intervention(i)             a supervised run's operator stepped in (recorders/intervention.py)
take.tick(sent, ob)                  once per control tick: the command the safety layer sent, with
                                     the observation taken just before it
take.finish(memory) / discard()      labels from auto-segmentation, success, memory -> EPISODE.h5
```
Leaving a `with Take(...)` block without finish or discard keeps the flushed `.partial` file, which
`recover_partial` turns into an episode (a crash loses at most the last second).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recorders.arms.base import ArmCommand
from recorders.call_log import CallLog, CallRecord
from recorders.episode_meta import EpisodeMeta, Provenance
from recorders.episode_writer import EpisodeWriter
from recorders.intervention import Intervention
from recorders.memory import Memory
from recorders.observation import Observation, append_tick, stream_specs
from recorders.segmentation import segment_calls
from recorders.task_suite import TaskInstance, TaskMonitor
from recorders.cell.workcell import Workcell

FREE_TASK = "teleop"  # the task id of a take recorded without a task of the suite
FREE_INSTRUCTION_TASK = "instruction"  # ... and of a planner following a free instruction in a suite scene


@dataclass(frozen=True)
class TakeResult:
    path: Path | None  # None: nothing was recorded, the take was discarded
    frames: int
    success: bool | None  # None: unknown (the workcell cannot see the objects, or no task)
    calls: tuple[CallRecord, ...]


class Take:
    """An episode of `cell` being recorded into `path`.

    `inst`: the task being done (its scene, roles and program are stored, and its monitor decides
    success) or None for free teleoperation. `does_task=False`: `inst` only lays out the scene (stored
    with its seed) for a free `instruction` a planner follows, so the task id is FREE_INSTRUCTION_TASK,
    no program or roles are stored and success is unknown. `realtime`: a live arm that must never wait
    on the disk, so samples are dropped (and counted) when the writer falls behind; otherwise ticks wait."""

    def __init__(self, path, cell: Workcell, provenance: Provenance, *, obs: str, control_hz: float,
                 inst: TaskInstance | None = None, instruction: str | None = None, realtime: bool = False,
                 does_task: bool = True):
        self.cell = cell
        sees_objects = inst is not None and bool(cell.spec.cubes)
        checks_task = sees_objects and does_task
        if inst is None:
            task = FREE_TASK
        else:
            task = inst.task.id if does_task else FREE_INSTRUCTION_TASK
        meta = EpisodeMeta(task=task,
                           instruction=instruction if instruction is not None else inst.instruction if inst else "",
                           robot=cell.kind, control_hz=control_hz, seed=inst.seed if inst else -1,
                           split=inst.split if inst else "", clock=cell.clock_name,
                           scene=inst.scene if sees_objects else None, roles=inst.roles if checks_task else {},
                           program=inst.program_code if checks_task else "", provenance=provenance)
        self.writer = EpisodeWriter(path, meta, stream_specs(cell, obs, control_hz), drop_when_full=realtime)
        self.monitor = TaskMonitor(inst, cell.object_poses()) if checks_task else None
        self.t0 = cell.arm.time()  # the take's time starts now, whatever the arm's clock reads
        self.log = CallLog(clock=self.clock, sink=self.writer.log_call)
        self.frame_times: list[float] = []

    @property
    def path(self) -> Path:
        return self.writer.path

    @property
    def frames(self) -> int:
        return len(self.frame_times)

    def clock(self) -> float:
        """Seconds since the take started, on the workcell's clock."""
        return self.cell.arm.time() - self.t0

    def tick(self, sent: ArmCommand, ob: Observation) -> dict[str, bool]:
        """Write one control tick: `sent`, the command the arm was given after the safety layer, and
        `ob`, observed just before it. Returns per stream whether the sample was kept (False: dropped
        because the writer is behind a real-time arm)."""
        t = ob.state.time - self.t0
        kept = append_tick(self.writer, t, sent, ob)
        if self.monitor is not None:
            self.monitor.update(ob.object_poses)
        self.frame_times.append(t)
        return kept

    def log_intervention(self, intervention: Intervention) -> None:
        """Store one intervention of the operator (recorders/intervention.py) as it ends."""
        self.writer.log_intervention(intervention.to_dict())

    def finish(self, memory: Memory | None = None, failed: bool = False) -> TakeResult:
        """Close an open hotkey stretch, label the frames from the logged calls, decide success and
        save the episode with `memory`. `failed`: a call of the take's program failed, so it did not
        succeed whatever the objects show. A take without ticks is discarded (path None)."""
        if self.log.open_record is not None:
            self.log.close_call("ok")  # the stretch ended when the take did
        calls = tuple(self.log.records)
        if not self.frame_times:
            self.writer.discard()
            return TakeResult(None, 0, None, calls)
        success = False if failed else None
        if not failed and self.monitor is not None:
            success = self.monitor.success(self.cell.object_poses())
        labels = segment_calls(calls, np.asarray(self.frame_times))
        path = self.writer.finish(success, [s.to_dict() for s in labels],
                                  None if memory is None else memory.to_json())
        return TakeResult(path, self.frames, success, calls)

    def discard(self) -> None:
        """Stop and delete what was recorded."""
        if self.log.open_record is not None:
            self.log.close_call("aborted", "the take was discarded")
        self.writer.discard()

    def __enter__(self) -> "Take":
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close_unfinished()  # after finish or discard: nothing left to do
