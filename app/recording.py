"""One interactive take: the episode file being written, its call log, and its live counters.

Made by the record session (app/record_session.py) when the operator presses Record; written to
by the session's worker thread once per control tick; finished (labels from auto-segmentation,
success from the task monitor where the workcell can see the objects) or discarded.
"""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recorders.arms.base import ArmCommand
from recorders.call_log import CallLog
from recorders.episode_file import PARTIAL_SUFFIX, EpisodeMeta
from recorders.episode_writer import EpisodeWriter
from recorders.observation import Observation, append_tick, stream_specs
from recorders.pose import Pose
from recorders.segmentation import segment_calls
from recorders.task_suite import TaskInstance, TaskMonitor
from recorders.workcell import Workcell

FPS_WINDOW_S = 1.0


@dataclass(frozen=True)
class StreamStatus:
    name: str
    fps: float
    dropped: int


@dataclass(frozen=True)
class RecordingStatus:
    path: Path
    elapsed_s: float
    streams: tuple[StreamStatus, ...]
    calls: int


@dataclass(frozen=True)
class TakeResult:
    path: Path | None  # None: nothing was recorded, the take was discarded
    frames: int
    success: bool | None


def next_episode_path(folder: Path, task: str) -> Path:
    """`folder/TASK_NNNN.h5` with NNNN one past the highest index already there (finished or not)."""
    pattern = re.compile(rf"^{re.escape(task)}_(\d+)\.h5(?:{re.escape(PARTIAL_SUFFIX)})?$")
    taken = [int(m.group(1)) for p in Path(folder).glob(f"{task}_*") if (m := pattern.match(p.name))]
    return Path(folder) / f"{task}_{max(taken, default=-1) + 1:04d}.h5"


class Recording:
    """An episode being recorded from a live workcell."""

    def __init__(self, path: Path, cell: Workcell, inst: TaskInstance | None, instruction: str, obs: str,
                 control_hz: float):
        self.path = path
        self.cell = cell
        scene = {"source": "gui"}
        if inst is not None and cell.spec.cubes:
            scene |= {"spec": json.loads(inst.scene.to_json()), "roles": inst.roles}
        meta = EpisodeMeta(task=inst.task.id if inst else "teleop", instruction=instruction, robot=cell.kind,
                           control_hz=control_hz, seed=inst.seed if inst else -1, split=inst.split if inst else "",
                           clock=cell.clock_name, scene=scene)
        self.writer = EpisodeWriter(path, meta, stream_specs(cell, obs, control_hz), drop_when_full=True)
        self.t0 = cell.arm.time()
        self.log = CallLog(clock=self.clock, sink=self.writer.log_call)
        self.monitor = TaskMonitor(inst, cell.object_poses()) if inst is not None and cell.spec.cubes else None
        self.frame_times: list[float] = []
        self.kept: Counter[str] = Counter()
        self._fps: dict[str, float] = {name: 0.0 for name in self.writer.specs}
        self._window_start = time.monotonic()
        self._window_counts: Counter[str] = Counter()

    def clock(self) -> float:
        """Seconds since the take started, on the workcell's clock."""
        return self.cell.arm.time() - self.t0

    def write(self, cmd: ArmCommand, ob: Observation) -> None:
        t = ob.state.time - self.t0
        kept = append_tick(self.writer, t, cmd, ob)
        if self.monitor is not None:
            self.monitor.update(ob.object_poses)
        self.frame_times.append(t)
        for name, ok in kept.items():
            if ok:
                self.kept[name] += 1
                self._window_counts[name] += 1
        now = time.monotonic()
        if now - self._window_start >= FPS_WINDOW_S:
            span = now - self._window_start
            self._fps = {name: self._window_counts[name] / span for name in self.writer.specs}
            self._window_start, self._window_counts = now, Counter()

    def status(self) -> RecordingStatus:
        streams = tuple(StreamStatus(name, round(self._fps.get(name, 0.0), 1), int(self.writer.dropped[name]))
                        for name in self.writer.specs)
        elapsed = self.frame_times[-1] if self.frame_times else 0.0
        return RecordingStatus(self.path, elapsed, streams, len(self.log.records))

    def finish(self, final_poses: dict[str, Pose] | None, memory: dict | None = None) -> TakeResult:
        """Close any open hotkey stretch, segment the calls, write labels, success and the memory."""
        if self.log.open_record is not None:
            self.log.close_call("ok")  # the stretch ended when the take did
        if not self.frame_times:
            self.writer.discard()
            return TakeResult(None, 0, None)
        success = self.monitor.success(final_poses) if self.monitor is not None and final_poses else None
        labels = segment_calls(self.log.records, np.asarray(self.frame_times))
        path = self.writer.finish(success, [s.to_dict() for s in labels], memory)
        return TakeResult(path, len(self.frame_times), success)

    def discard(self) -> None:
        if self.log.open_record is not None:
            self.log.close_call("aborted", "the take was discarded")
        self.writer.discard()
