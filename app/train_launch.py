"""What the Train workspace launches: the settings of a new run and the `main.py` command lines that
train, resume and evaluate a diffusion policy or a planner. No Qt and no torch.

    widgets -> TrainSettings -> train_argv -> `main.py train policy|planner` -> run folder
    run folder (options.json) -> resume_argv / eval_argv -> `main.py train ... --resume` / `main.py eval`
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from app.train_runs import OPTIONS_FILE, RunError, list_checkpoints
from recorders.task_suite import TASKS

OBS_KINDS = ("state", "rgb")
VARIANTS = ("call", "flat", "no-memory", "planner")  # the policy, its baselines (task only, no memory), the planner
FRAMES = ("anchor", "world")  # positions relative to the call's object or target, or to the robot base
PREDICTIONS = ("sample", "epsilon")  # what the U-Net predicts: the clean action chunk, or the noise
DEVICES = ("auto", "cpu", "cuda", "mps")
PLANNER = "planner"  # the variant that trains the VLM planner instead of a policy


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


def _common_argv(tasks, edited_only: bool, tiny: bool) -> list[str]:
    argv = ["--tasks", ",".join(tasks)] if tasks else []
    return argv + ["--edited-only"] * bool(edited_only) + ["--tiny"] * bool(tiny)


def train_argv(s: TrainSettings) -> list[str]:
    """The `main.py` arguments that start a new run."""
    if s.variant == PLANNER:  # the planner learns from the front camera: obs, frame and widths do not apply
        return ["train", "planner", "--data", *s.data, "--out", s.out, "--steps", str(s.steps),
                "--batch-size", str(s.batch_size), "--lr", repr(float(s.lr)), "--seed", str(s.seed),
                "--device", s.device, "--checkpoint-every", str(s.checkpoint_every),
                *_common_argv(s.tasks, s.edited_only, s.tiny)]
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
    return argv + _common_argv(s.tasks, s.edited_only, s.tiny)


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


def is_planner_run(run) -> bool:
    """A planner's run folder (its options name the model), rather than a policy's."""
    try:
        return read_options(run).get("model") == PLANNER
    except RunError:
        return False


def resume_argv(run) -> list[str]:
    """The `main.py` arguments that continue a run from its newest checkpoint, with the run's own
    options (those that change the model must not differ, and the rest keep the run reproducible)."""
    o = read_options(run)
    if not list_checkpoints(run, include_final=False):
        raise RunError(f"{Path(run).name} has no checkpoint to resume from")
    if o.get("model") == PLANNER:
        argv = ["train", "planner", "--data", *map(str, o["data"]), "--out", str(run), "--steps", str(o["steps"]),
                "--batch-size", str(o["batch_size"]), "--seed", str(o["seed"]), "--device", o.get("device", "auto"),
                "--checkpoint-every", str(o["checkpoint_every"]), "--lora-rank", str(o.get("lora_rank", 8)),
                "--mixed-precision", o.get("mixed_precision", "no")]
        argv += ["--lr", repr(float(o["lr"]))] if o.get("lr") is not None else []
        argv += ["--val", *map(str, o["val"])] if o.get("val") else []
        argv += ["--base", str(o["base"])] if o.get("base") else []
        argv += ["--no-memory"] if o.get("memory") is False else []
        return argv + _common_argv(o.get("tasks"), o.get("edited_only"), o.get("tiny")) + ["--resume"]
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
    return argv + _common_argv(o.get("tasks"), o.get("edited_only"), o.get("tiny")) + ["--resume"]


def parse_tasks(text: str) -> tuple[str, ...]:
    """'stack, pick_place' -> ('stack', 'pick_place'); RunError naming an unknown task."""
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    if not tasks:
        raise RunError("name at least one task to evaluate, e.g. stack,pick_place")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise RunError(f"unknown task(s) {', '.join(unknown)}; tasks: {', '.join(TASKS)}")
    return tasks


def eval_argv(target, tasks, episodes: int, seed: int = 0, max_call_s: float | None = None,
              planner: bool = False) -> list[str]:
    """The `main.py` arguments that evaluate a run (its newest policy or planner) or one checkpoint
    folder; a planner runs with the oracle skills."""
    if episodes < 1:
        raise RunError(f"episodes must be at least 1, got {episodes}")
    who = ["--planner", str(target), "--policy", "oracle"] if planner else ["--policy", str(target)]
    argv = ["eval", *who, "--tasks", ",".join(tasks), "--episodes", str(episodes), "--seed", str(seed), "--json"]
    return argv + (["--max-call-s", f"{max_call_s:g}"] if max_call_s is not None else [])


def command_env(environ=os.environ, cpus: int | None = None) -> dict[str, str]:
    """Environment for training and evaluation subprocesses started from the app: torch's threads
    capped at all cores but one, so the window and a live workcell keep a core (torch threads that
    share oversubscribed cores spin and slow training by up to 10x). A value the user set is kept."""
    if "OMP_NUM_THREADS" in environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (cpus or os.cpu_count() or 1) - 1))}


def default_run_name(variant: str, obs: str, now: float | None = None) -> str:
    kind = variant if variant == PLANNER else f"{variant}-{obs}"
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}"
