"""Training runs as the Train workspace sees them: command lines, the metrics log, run folders.

No Qt and no torch: the panel turns its widgets into a `TrainSettings`, runs `python main.py` with
`train_argv` / `resume_argv` / `eval_argv` as a subprocess, tails the run's `metrics.jsonl` with a
`MetricsReader` into a `RunProgress` and lists the runs of a folder with `list_runs` (evaluation
results: app/eval_results.py). The run folder layout is the one models/train_policy.py
writes (its docstring is the reference); the names are repeated here so that listing runs does not
import torch, and a test keeps both in step.

    widgets -> TrainSettings -> argv -> `main.py train policy` -> run folder
    run folder -> MetricsReader (new complete lines only) -> RunProgress -> progress bar, loss curves
    run folder -> list_runs / list_checkpoints -> run and checkpoint tables
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from recorders.task_suite import TASKS

ROOT = Path(__file__).resolve().parents[1]
MAIN_SCRIPT = ROOT / "main.py"

# The run folder (models/train_policy.py)
OPTIONS_FILE = "options.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
FINAL = "final"
STATE_JSON = "trainer_state.json"  # written last: a checkpoint without it is half-written
WEIGHTS_FILE = "model.safetensors"

OBS_KINDS = ("state", "rgb")
VARIANTS = ("call", "flat", "no-memory")  # the policy, the task-conditioned baseline, the memory ablation
FRAMES = ("anchor", "world")  # positions relative to the call's object or target, or to the robot base
PREDICTIONS = ("sample", "epsilon")  # what the U-Net predicts: the clean action chunk, or the noise
DEVICES = ("auto", "cpu", "cuda", "mps")
# Keys of metrics.jsonl
EVENT, STEP, TOTAL_STEPS = "event", "step", "steps"
STARTED, RESUMED, STOPPED, FINISHED = "started", "resumed", "stopped", "finished"


class RunError(Exception):
    """A run that cannot be started, resumed, read or evaluated; one-line message."""


# ---- command lines -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainSettings:
    """What one `train policy` launch trains on and how; validated on construction."""
    data: tuple[str, ...]  # the chosen episode files (or folders)
    out: str  # the run folder
    tasks: tuple[str, ...] = ()  # the task filter the episodes were chosen with (empty: all tasks)
    edited_only: bool = False
    obs: str = "state"
    variant: str = "call"
    frame: str = "anchor"
    prediction: str = "sample"
    down_dims: tuple[int, ...] | None = None  # U-Net widths; None: the trainer's default
    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-4
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 500
    tiny: bool = False

    def __post_init__(self):
        object.__setattr__(self, "data", tuple(str(p) for p in self.data))
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "out", str(self.out))
        if self.down_dims is not None:
            object.__setattr__(self, "down_dims", tuple(self.down_dims))
            if not self.down_dims or not all(isinstance(w, int) and w >= 1 for w in self.down_dims):
                raise ValueError(f"U-Net widths must be positive integers such as 64,128,256, got {self.down_dims!r}")
        if not self.data:
            raise ValueError("no episodes selected: tick at least one episode to train on")
        if not self.out.strip():
            raise ValueError("the run needs a folder name")
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {', '.join(unknown)}")
        for name, allowed in (("obs", OBS_KINDS), ("variant", VARIANTS), ("frame", FRAMES), ("prediction", PREDICTIONS),
                              ("device", DEVICES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name, low in (("steps", 1), ("batch_size", 1), ("seed", 0), ("checkpoint_every", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name.replace('_', ' ')} must be an integer >= {low}, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"learning rate must be a number > 0, got {self.lr!r}")


def train_argv(s: TrainSettings) -> list[str]:
    """The `main.py` arguments that start a new run."""
    argv = ["train", "policy", "--data", *s.data, "--out", s.out, "--obs", s.obs, "--frame", s.frame,
            "--prediction", s.prediction,
            "--steps", str(s.steps), "--batch-size", str(s.batch_size), "--lr", repr(float(s.lr)),
            "--seed", str(s.seed), "--device", s.device, "--checkpoint-every", str(s.checkpoint_every)]
    if s.variant == "flat":
        argv.append("--flat")
    elif s.variant == "no-memory":
        argv.append("--no-memory")
    if s.down_dims:
        argv += ["--down-dims", ",".join(map(str, s.down_dims))]
    if s.tasks:
        argv += ["--tasks", ",".join(s.tasks)]
    if s.edited_only:
        argv.append("--edited-only")
    if s.tiny:
        argv.append("--tiny")
    return argv


def read_options(run) -> dict:
    """options.json of a run folder."""
    path = Path(run) / OPTIONS_FILE
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunError(f"{Path(run).name} has no readable {OPTIONS_FILE} ({type(e).__name__})") from None
    if not isinstance(options, dict) or not options.get("data"):
        raise RunError(f"{path} does not describe a training run")
    return options


def resume_argv(run) -> list[str]:
    """The `main.py` arguments that continue a run from its newest checkpoint, with the run's own
    options (those that change the model must not differ, and the rest keep the run reproducible)."""
    o = read_options(run)
    if not list_checkpoints(run, include_final=False):
        raise RunError(f"{Path(run).name} has no checkpoint to resume from")
    argv = ["train", "policy", "--data", *map(str, o["data"]), "--out", str(run), "--obs", o.get("obs", "state"),
            "--frame", o.get("frame", "world"),  # runs from before the anchor frame have none: world
            "--prediction", o.get("prediction", "epsilon"),  # nor before clean-chunk prediction: epsilon
            "--steps", str(o["steps"]), "--batch-size", str(o["batch_size"]), "--lr", repr(float(o["lr"])),
            "--seed", str(o["seed"]), "--device", o.get("device", "auto"),
            "--checkpoint-every", str(o["checkpoint_every"]),
            "--mixed-precision", o.get("mixed_precision", "no"), "--workers", str(o.get("num_workers", 0))]
    if o.get("down_dims"):
        argv += ["--down-dims", ",".join(map(str, o["down_dims"]))]
    if o.get("cond") == "flat":
        argv.append("--flat")
    if o.get("memory") is False:
        argv.append("--no-memory")
    if o.get("tasks"):
        argv += ["--tasks", ",".join(o["tasks"])]
    if o.get("edited_only"):
        argv.append("--edited-only")
    if o.get("tiny"):
        argv.append("--tiny")
    return argv + ["--resume"]


def parse_tasks(text: str) -> tuple[str, ...]:
    """'stack, pick_place' -> ('stack', 'pick_place'); RunError naming an unknown task."""
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    if not tasks:
        raise RunError("name at least one task to evaluate, e.g. stack,pick_place")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise RunError(f"unknown task(s) {', '.join(unknown)}; tasks: {', '.join(TASKS)}")
    return tasks


def eval_argv(policy, tasks, episodes: int, seed: int = 0, max_call_s: float | None = None) -> list[str]:
    """The `main.py` arguments that evaluate a run (its newest policy) or one checkpoint folder."""
    if episodes < 1:
        raise RunError(f"episodes must be at least 1, got {episodes}")
    argv = ["eval", "--policy", str(policy), "--tasks", ",".join(tasks), "--episodes", str(episodes),
            "--seed", str(seed), "--json"]
    return argv + (["--max-call-s", f"{max_call_s:g}"] if max_call_s is not None else [])


def command_env(environ=os.environ, cpus: int | None = None) -> dict[str, str]:
    """Environment for training and evaluation subprocesses started from the app: torch's threads
    capped at all cores but one, so the window and a live workcell keep a core (torch threads that
    share oversubscribed cores spin and slow training by up to 10x). A value the user set is kept."""
    if "OMP_NUM_THREADS" in environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (cpus or os.cpu_count() or 1) - 1))}


def default_run_name(variant: str, obs: str, now: float | None = None) -> str:
    return f"{variant}-{obs}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}"


def holds_run(folder) -> bool:
    folder = Path(folder)
    return any((folder / name).exists() for name in (OPTIONS_FILE, METRICS_FILE, CHECKPOINTS, FINAL))


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
    return RunInfo(run, state, progress.step, progress.total, latest.get("loss") if latest else None,
                   tuple(list_checkpoints(run, progress=progress)), updated)


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
