"""What every training run's options share, torch-free (STYLE.md rule 13): the episodes it learns
from, the run folder, the episode filter, the seed, the device, checkpointing, resume and the tiny
switch, each declared once as an option field (models/option_fields.py).

`TrainOptions` (models/policy_config.py) and `PlannerTrainOptions` (models/planner_config.py) add the
fields of their model and its schedule to `RunOptions`; `from_known_dict` reads any config or
options file, refusing keys it does not know.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields

from models.option_fields import option
from recorders.task_suite import TASKS

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("no", "fp16", "bf16")


def from_known_dict(cls, d: dict, what: str, defaults: dict | None = None):
    """cls(**d) with `defaults` (those of them that are fields of cls) under `d`; ValueError naming
    unknown keys or a bad value."""
    if not isinstance(d, dict):
        raise ValueError(f"{what} is not a JSON object")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{what} has unknown key(s) {', '.join(unknown)}")
    try:
        return cls(**{**{k: v for k, v in (defaults or {}).items() if k in known}, **d})
    except TypeError as e:  # a required key missing
        raise ValueError(f"{what}: {e}") from None


def as_paths(value) -> tuple[str, ...]:
    return tuple(str(p) for p in ((value,) if isinstance(value, (str, os.PathLike)) else value))


@dataclass(frozen=True)
class RunOptions:
    """The options of any training run; subclasses validate the whole (validate_options) after
    calling `RunOptions.__post_init__`, which normalises paths and checks the task filter."""
    data: tuple[str, ...] = option((), "episode folders or files", flag="--data", kind="paths", resume="keep")
    out: str = option("", "the run folder", flag="--out")
    tasks: tuple[str, ...] | None = option(None, "comma-separated task ids to train on (default all)", flag="--tasks",
                                           kind="names", resume="keep")
    edited_only: bool = option(False, "only episodes whose labels were edited", flag="--edited-only", switch=True,
                               resume="keep")
    seed: int = option(0, "seeds the weights, the batch order and the noise", flag="--seed", kind="int", minimum=0,
                       resume="keep")
    device: str = option("auto", "auto: a GPU when torch sees one, else the CPU", flag="--device", choices=DEVICES)
    mixed_precision: str = option("no", "mixed precision on a GPU", flag="--mixed-precision", choices=PRECISIONS)
    checkpoint_every: int = option(500, "write a checkpoint every N steps (0: only at the end and when stopped)",
                                   flag="--checkpoint-every", kind="int", minimum=0)
    log_every: int = option(10, "steps per metrics line", kind="int", minimum=1)
    resume: bool = option(False, "continue the run in --out from its newest checkpoint, with its own options",
                          flag="--resume", switch=True)
    tiny: bool = option(False, "a very small model (tests, smoke runs)", flag="--tiny", switch=True, resume="model")

    def __post_init__(self):
        object.__setattr__(self, "data", as_paths(self.data))
        object.__setattr__(self, "out", str(self.out))
        if self.tasks is not None:
            object.__setattr__(self, "tasks", (self.tasks,) if isinstance(self.tasks, str) else tuple(self.tasks))
            unknown = [t for t in self.tasks if t not in TASKS]
            if unknown:
                raise ValueError(f"unknown task(s) {', '.join(unknown)}; tasks: {', '.join(TASKS)}")
