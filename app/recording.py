"""One interactive take: a `Take` (recorders/take.py) of a live workcell and its live counters.

Made by the record session (app/record_session.py) when the operator presses Record; written to
by the session's worker thread once per control tick; finished (labels from auto-segmentation,
success from the task monitor where the workcell can see the objects) or discarded.
"""
from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from recorders.arms.base import ArmCommand
from recorders.call_log import CallLog
from recorders.episode_file import PARTIAL_SUFFIX
from recorders.episode_meta import Provenance
from recorders.memory import Memory
from recorders.observation import Observation
from recorders.take import Take, TakeResult
from recorders.task_suite import TaskInstance
from recorders.cell.workcell import Workcell

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


def next_episode_path(folder: Path, task: str) -> Path:
    """`folder/TASK_NNNN.h5` with NNNN one past the highest index already there (finished or not)."""
    pattern = re.compile(rf"^{re.escape(task)}_(\d+)\.h5(?:{re.escape(PARTIAL_SUFFIX)})?$")
    taken = [int(m.group(1)) for p in Path(folder).glob(f"{task}_*") if (m := pattern.match(p.name))]
    return Path(folder) / f"{task}_{max(taken, default=-1) + 1:04d}.h5"


class Recording:
    """A take of a live workcell with the counters the Record workspace shows (fps, drops, calls)."""

    def __init__(self, path: Path, cell: Workcell, inst: TaskInstance | None, instruction: str, obs: str,
                 control_hz: float, audio=None, video_quality: str | None = None):
        self.take = Take(path, cell, Provenance("gui", cell.kind), obs=obs, control_hz=control_hz, inst=inst,
                         instruction=instruction, realtime=True, audio=audio, video_quality=video_quality)
        self._fps: dict[str, float] = {name: 0.0 for name in self.take.writer.specs}
        self._window_start = time.monotonic()
        self._window_counts: Counter[str] = Counter()

    @property
    def path(self) -> Path:
        return self.take.path

    @property
    def log(self) -> CallLog:
        return self.take.log

    def write(self, sent: ArmCommand, ob: Observation) -> None:
        """One tick: the command the arm was sent, with the observation taken just before it."""
        self.take.tick(sent, ob)
        now = time.monotonic()
        if now - self._window_start >= FPS_WINDOW_S:  # every stream's rate, devices' included
            span = now - self._window_start
            appended = Counter(self.take.writer.appended)
            self._fps = {name: (appended[name] - self._window_counts[name]) / span for name in self.take.writer.specs}
            self._window_start, self._window_counts = now, appended

    def status(self) -> RecordingStatus:
        writer = self.take.writer
        streams = tuple(StreamStatus(name, round(self._fps.get(name, 0.0), 1), int(writer.dropped[name]))
                        for name in writer.specs)
        elapsed = self.take.frame_times[-1] if self.take.frame_times else 0.0
        return RecordingStatus(self.path, elapsed, streams, len(self.log.records))

    def finish(self, memory: Memory | None = None, marked: bool | None = None) -> TakeResult:
        """Save the take: labels, success where the workcell sees the objects (else the operator's
        mark), the memory."""
        return self.take.finish(memory, marked=marked)

    def discard(self) -> None:
        self.take.discard()
