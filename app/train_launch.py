"""What the Train workspace launches: the settings of a new run and the `main.py` command lines that
train, resume and evaluate a diffusion policy or a planner. No Qt and no torch.

The form's choices, defaults and tooltips, and the settings' validation, come from the trainers'
own option declarations (models/policy_config.TrainOptions, models/planner_config.PlannerTrainOptions);
the command line is written from the options the settings make (`option_argv`, the inverse of the
parser app/train_command.py derives from the same declarations), so the form, the CLI and resume
cannot disagree.

    widgets -> TrainSettings -> .options() -> option_argv -> `main.py train policy|planner` -> run folder
    run folder -> resume_argv (`--out RUN --resume`: the run reads its own options) / eval_argv
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from app.train_command import option_argv
from app.train_runs import OPTIONS_FILE, RunError, list_checkpoints
from models.option_fields import default_of, options_of
from models.planner_config import PLANNER, SCRATCH_LR, PlannerTrainOptions
from models.policy_config import TrainOptions
from recorders.task_suite import TASKS

# The policy, its baselines (task only, no memory), and the planner: what each sets in the policy's options
POLICY_VARIANTS = {"call": {}, "flat": {"cond": "flat"}, "no-memory": {"memory": False}}
VARIANTS = (*POLICY_VARIANTS, PLANNER)
OBS_KINDS = options_of(TrainOptions)["obs"].choices
FRAMES = options_of(TrainOptions)["frame"].choices
PREDICTIONS = options_of(TrainOptions)["prediction"].choices
INTERVENTIONS = options_of(TrainOptions)["interventions"].choices
WEIGHT_RANGE = (options_of(TrainOptions)["intervention_weight"].minimum,
                options_of(TrainOptions)["intervention_weight"].maximum)
DEVICES = options_of(TrainOptions)["device"].choices


def help_of(name: str, variant: str = "call") -> str:
    """The declared help text of a training option (a tooltip)."""
    return options_of(PlannerTrainOptions if variant == PLANNER else TrainOptions)[name].help


def form_defaults(variant: str) -> dict:
    """The Train form's starting values for `variant`: the trainer's declared defaults (the
    planner's learning rate: the from-scratch one)."""
    if variant == PLANNER:
        values = {n: default_of(PlannerTrainOptions, n) for n in ("steps", "batch_size", "seed", "device",
                                                                   "checkpoint_every", "rephrasings",
                                                                   "colour_swaps", "scene_facts", "balance_tasks")}
        return {**values, "lr": SCRATCH_LR}
    return {n: default_of(TrainOptions, n) for n in ("obs", "frame", "prediction", "down_dims", "interventions",
                                                     "intervention_weight", "steps", "batch_size", "lr", "seed",
                                                     "device", "checkpoint_every")}


# ---- command lines -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainSettings:
    """What one launch trains on and how; validated on construction by the trainer's options
    (`options()`). None: the trainer's default."""
    data: tuple[str, ...]  # the chosen episode files (or folders)
    out: str  # the run folder
    tasks: tuple[str, ...] = ()  # the task filter the episodes were chosen with (empty: all tasks)
    edited_only: bool = False
    obs: str | None = None
    variant: str = "call"
    frame: str | None = None
    prediction: str | None = None
    down_dims: tuple[int, ...] | None = None  # U-Net widths
    interventions: str | None = None  # all | only: the segments a takeover intervention overlaps
    intervention_weight: float | None = None  # how much more often those segments are drawn
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int | None = None
    device: str | None = None
    checkpoint_every: int | None = None
    tiny: bool = False
    rephrasings: int | None = None  # the planner's: extra examples with the instruction reworded
    colour_swaps: int | None = None  # ... with the colours permuted in words and pixels
    scene_facts: bool | None = None  # ... whether it reads the facts of the image
    balance_tasks: bool | None = None  # ... whether tasks with fewer demonstrations get more copies

    def __post_init__(self):
        object.__setattr__(self, "data", tuple(str(p) for p in self.data))
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "out", str(self.out))
        if self.down_dims is not None:
            object.__setattr__(self, "down_dims", tuple(self.down_dims))
        if not self.data:
            raise ValueError("no episodes selected: tick at least one episode to train on")
        if not self.out.strip():
            raise ValueError("the run needs a folder name")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        self.options()

    def options(self) -> TrainOptions | PlannerTrainOptions:
        """The trainer's options these settings make; ValueError (one line) naming a bad value."""
        given = dict(data=self.data, out=self.out, tasks=self.tasks or None, edited_only=self.edited_only,
                     steps=self.steps, batch_size=self.batch_size, lr=self.lr, seed=self.seed, device=self.device,
                     checkpoint_every=self.checkpoint_every, tiny=self.tiny)
        # the planner learns from the front camera: obs, frame, widths and the intervention options do not apply
        if self.variant == PLANNER:
            given |= dict(rephrasings=self.rephrasings, colour_swaps=self.colour_swaps, scene_facts=self.scene_facts,
                          balance_tasks=self.balance_tasks)
            return PlannerTrainOptions(**{k: v for k, v in given.items() if v is not None})
        given |= dict(obs=self.obs, frame=self.frame, prediction=self.prediction, down_dims=self.down_dims,
                      interventions=self.interventions, intervention_weight=self.intervention_weight)
        return TrainOptions(**{k: v for k, v in given.items() if v is not None}, **POLICY_VARIANTS[self.variant])


def train_argv(s: TrainSettings) -> list[str]:
    """The `main.py` arguments that start a new run."""
    return ["train", PLANNER if s.variant == PLANNER else "policy", *option_argv(s.options())]


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
    """The `main.py` arguments that continue a run from its newest checkpoint; the run reads its
    own saved options (models/option_fields.resumed_options)."""
    o = read_options(run)
    if not list_checkpoints(run, include_final=False):
        raise RunError(f"{Path(run).name} has no checkpoint to resume from")
    return ["train", PLANNER if o.get("model") == PLANNER else "policy", "--out", str(run), "--resume"]


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
