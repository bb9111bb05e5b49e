"""Training runs as the Train workspace sees them: the metrics log and run folders.

No Qt and no torch: the panel starts commands built by app/train_launch.py, tails the run's
`metrics.jsonl` with a `MetricsReader` into a `RunProgress` and lists the runs of a folder with
`list_runs` (evaluation results: app/eval_results.py). The run folder layout is the one
models/run_folder.py defines for both trainers (policy and planner); it loads no torch.

    run folder -> MetricsReader (new complete lines only) -> RunProgress -> progress bar, loss curves
    run folder -> list_runs / list_checkpoints -> run and checkpoint tables
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

# The run folder's layout (STATE_JSON is written last: a checkpoint without it is half-written);
# OPTIONS_FILE is re-exported for app/train_launch.py.
from models.run_folder import CHECKPOINTS, FINAL, METRICS_FILE, OPTIONS_FILE, STATE_JSON, holds_run  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
MAIN_SCRIPT = ROOT / "main.py"

WEIGHTS_FILE = "model.safetensors"  # models/diffusion_policy.py (which imports torch); a test keeps both in step

# Keys of metrics.jsonl
EVENT, STEP, TOTAL_STEPS = "event", "step", "steps"
STARTED, RESUMED, STOPPED, FINISHED = "started", "resumed", "stopped", "finished"


class RunError(Exception):
    """A run that cannot be started, resumed, read or evaluated; one-line message."""


def choose_episodes(entries, task: str | None = None, edited_only: bool = False) -> list:
    """Dataset entries of `task` (None: all) whose labels were edited (if asked)."""
    return [e for e in entries if (task is None or e.task == task) and (e.edited or not edited_only)]


# ---- the metrics log -----------------------------------------------------------------------------
@dataclass
class MetricsUpdate:
    records: list[dict] = field(default_factory=list)  # new lines in file order
    restarted: bool = False  # the file was replaced or truncated: what was read before is void

    @property
    def steps(self) -> list[dict]:
        """Logged step lines (step, loss, diffusion, done, lr, samples_per_s, elapsed_s, eta_s)."""
        return [r for r in self.records if EVENT not in r]

    @property
    def events(self) -> list[dict]:
        """started / resumed / stopped / finished lines."""
        return [r for r in self.records if EVENT in r]


class MetricsReader:
    """Reads only what was appended to a metrics.jsonl since the last call, whole lines only: a
    line the trainer is still writing waits for its newline. Lines that are not JSON are skipped."""

    def __init__(self, path):
        self.path = Path(path)
        self._offset = 0
        self._identity = None
        self.bad_lines = 0

    def read_new(self) -> MetricsUpdate:
        update = MetricsUpdate()
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if (st.st_dev, st.st_ino) != self._identity or st.st_size < self._offset:
                    update.restarted = self._identity is not None
                    self._identity, self._offset = (st.st_dev, st.st_ino), 0
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return update
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        for raw in chunk[:end].splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
            if not isinstance(record, dict) or (EVENT not in record and not isinstance(record.get(STEP), int)):
                self.bad_lines += raw.strip() != b""
                continue
            update.records.append(record)
        return update


@dataclass
class RunProgress:
    """A run's history as far as its metrics log has been read."""
    steps: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)

    def add(self, update: MetricsUpdate) -> bool:
        """Fold in newly read lines; True if anything changed. A resume from step k drops the steps
        logged after k by the interrupted attempt (they are trained again)."""
        if update.restarted:
            self.steps, self.events = [], []
        for record in update.records:
            if EVENT not in record:
                self.steps.append(record)
                continue
            if record[EVENT] == RESUMED:
                k = int(record.get(STEP, 0))
                self.steps = [s for s in self.steps if s.get(STEP, 0) <= k]
            self.events.append(record)
        return bool(update.records or update.restarted)

    @property
    def total(self) -> int | None:
        """The run's step count (of its latest start or resume)."""
        for event in reversed(self.events):
            if TOTAL_STEPS in event:
                return int(event[TOTAL_STEPS])
        return None

    @property
    def latest(self) -> dict | None:
        return self.steps[-1] if self.steps else None

    @property
    def step(self) -> int:
        candidates = [int(r.get(STEP, 0)) for r in self.events[-1:] + self.steps[-1:]]
        return max(candidates, default=0)

    @property
    def state(self) -> str:
        """'new' (nothing logged), 'started' (started or resumed, no end yet), 'stopped', 'finished'."""
        if not self.events:
            return "new"
        last = self.events[-1].get(EVENT)
        return last if last in (STOPPED, FINISHED) else "started"


def read_progress(run) -> RunProgress:
    progress = RunProgress()
    progress.add(MetricsReader(Path(run) / METRICS_FILE).read_new())
    return progress


# ---- run folders ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointInfo:
    name: str  # step_000010 | final
    step: int | None  # None: final/ of a run whose finishing step is unknown
    path: Path
    mtime: float
    final: bool = False


def list_checkpoints(run, include_final: bool = True, progress: RunProgress | None = None) -> list[CheckpointInfo]:
    """Complete checkpoints in step order, then final/ (if it holds a policy; its step comes from the
    run's log, read here unless the caller has it in `progress`)."""
    run = Path(run)
    found = []
    for folder in sorted((run / CHECKPOINTS).glob("step_*")) if (run / CHECKPOINTS).is_dir() else []:
        try:
            step = int(folder.name.removeprefix("step_"))
        except ValueError:
            continue
        if folder.is_dir() and (folder / STATE_JSON).is_file():
            found.append(CheckpointInfo(folder.name, step, folder, (folder / STATE_JSON).stat().st_mtime))
    final = run / FINAL
    if include_final and (final / WEIGHTS_FILE).is_file():
        finished = [e for e in (progress or read_progress(run)).events if e.get(EVENT) == FINISHED]
        step = int(finished[-1][STEP]) if finished else None
        found.append(CheckpointInfo(FINAL, step, final, (final / WEIGHTS_FILE).stat().st_mtime, final=True))
    return found


@dataclass(frozen=True)
class RunInfo:
    path: Path
    state: str  # new | running | unfinished | stopped | finished
    step: int
    total: int | None
    loss: float | None
    checkpoints: tuple[CheckpointInfo, ...]
    updated: float  # mtime of the metrics log (or the folder)
    episodes: int | None = None  # episodes it trained on, as its first start logged them

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def newest_policy(self) -> CheckpointInfo | None:
        """What `eval --policy RUN` loads: the most recently written of final/ and the newest checkpoint."""
        return max(self.checkpoints, key=lambda c: c.mtime, default=None)

    @property
    def resumable(self) -> bool:
        return self.state in ("stopped", "unfinished") and any(not c.final for c in self.checkpoints)

    def describe(self) -> str:
        total = f" of {self.total}" if self.total else ""
        if self.state == "finished":
            return f"finished {self.step}{total} steps"
        if self.state == "stopped":
            return f"stopped at step {self.step}{total}"
        if self.state == "running":
            return f"running: step {self.step}{total}"
        if self.state == "unfinished":  # killed, or trained by another process right now
            last = max((c.step for c in self.checkpoints if not c.final), default=None)
            return f"unfinished at step {self.step}{total}" + (f"; resumes from {last}" if last is not None else "")
        return "not started"


def run_info(run, active=()) -> RunInfo:
    """The state of one run folder; `active` are the runs this app is training right now (a run whose
    log has no end event and is not among them is 'unfinished': killed, or trained elsewhere)."""
    run = Path(run)
    progress = read_progress(run)
    state = progress.state
    if run.resolve() in {Path(a).resolve() for a in active}:
        state = "running"
    elif state == "started":
        state = "unfinished"
    latest = progress.latest
    try:
        updated = max(p.stat().st_mtime for p in (run / METRICS_FILE, run) if p.exists())
    except ValueError:  # not created yet (a run that is just starting)
        updated = time.time()
    started = next((e for e in progress.events if e.get(EVENT) in (STARTED, RESUMED)), {})
    return RunInfo(run, state, progress.step, progress.total, latest.get("loss") if latest else None,
                   tuple(list_checkpoints(run, progress=progress)), updated, started.get("episodes"))


def list_runs(folder, active=()) -> list[RunInfo]:
    """Run folders directly inside `folder`, newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    runs = [run_info(p, active) for p in folder.iterdir() if p.is_dir() and holds_run(p)]
    return sorted(runs, key=lambda r: r.updated, reverse=True)


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "?"
    s = max(0, int(round(seconds)))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"
