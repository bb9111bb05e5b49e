"""The planner's configuration and its training options, torch-free (STYLE.md rule 13).

Owns `PlannerConfig` (saved in a checkpoint's planner.json) and `PlannerTrainOptions` (a run's
options.json): their choices, defaults, bounds and help texts as field metadata
(models/option_fields.py), from which the CLI (app/train_command.py), the Train form
(app/train_launch.py) and resume derive; models/planner.py and models/train_planner.py build and
train from them.

    options.json -> PlannerTrainOptions.from_dict -> PlannerConfig -> Planner.scratch | Planner.from_base
    planner.json -> PlannerConfig.from_dict (unknown keys and out-of-bounds sizes refused up front)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from models.option_fields import option, options_of, validate_options
from models.planner_grammar import CallVocabulary
from models.policy_config import DEVICES, PRECISIONS, from_known_dict
from recorders.task_suite import TASKS

PLANNER = "planner"  # options.json's "model": how the Train workspace tells a planner run from a policy run
SCRATCH_LR = 1e-3  # the learning rate from scratch ...
LORA_LR = 2e-4  # ... and for LoRA adapters on a --base checkpoint


def _size(default, help: str, maximum: int):
    return option(default, help, kind="int", minimum=1, maximum=maximum)


@dataclass(frozen=True)
class PlannerConfig:
    memory: bool = option(True, "the prompt holds the past calls and memory keys (False: the memory ablation)",
                          choices=(True, False))
    image_size: int = _size(64, "pixels (square) the scratch model sees", 1024)
    patch_size: int = _size(8, "ViT patch size", 256)
    vision_width: int = _size(64, "ViT width", 8192)
    vision_layers: int = _size(2, "ViT layers", 128)
    text_width: int = _size(128, "decoder width", 8192)
    text_layers: int = _size(2, "decoder layers", 128)
    heads: int = _size(4, "attention heads", 256)
    vocab_size: int = _size(384, "BPE vocabulary trained on the corpus (scratch only)", 1_000_000)
    base: str | None = option(None, "a local pretrained checkpoint fine-tuned with LoRA")
    lora_rank: int = _size(8, "LoRA adapter rank", 1024)
    calls: CallVocabulary = option(default_factory=CallVocabulary, help="what the planner learned to say")

    def __post_init__(self):
        if isinstance(self.calls, dict):
            object.__setattr__(self, "calls", CallVocabulary.from_dict(self.calls))
        if not isinstance(self.calls, CallVocabulary):
            raise ValueError(f"calls must be a call vocabulary, got {self.calls!r}")
        if self.base is not None and not isinstance(self.base, str):
            raise ValueError(f"base must be a folder name, got {self.base!r}")
        validate_options(self)
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")

    def to_dict(self) -> dict:
        return {**asdict(self), "calls": self.calls.to_dict()}

    @staticmethod
    def from_dict(d: dict) -> "PlannerConfig":
        return from_known_dict(PlannerConfig, d, "the planner config")


TINY = dict(image_size=32, patch_size=8, vision_width=32, vision_layers=1, text_width=64, text_layers=1,
            heads=2, vocab_size=300)


@dataclass(frozen=True)
class PlannerTrainOptions:
    """One `train planner` run (options.json); `resume` says what a resumed run may change."""
    data: tuple[str, ...] = option((), "episode folders or files (with the front camera)", flag="--data",
                                   kind="paths", resume="keep")
    out: str = option("", "the run folder", flag="--out")
    val: tuple[str, ...] = option((), "held-out episodes: next-call accuracy and program exact match at the end",
                                  flag="--val", kind="paths")
    base: str | None = option(None, "a local pretrained image-text-to-text checkpoint (safetensors) to fine-tune "
                              "with LoRA (default: a tiny model trained from scratch)", flag="--base", resume="model")
    memory: bool = option(True, "withhold past calls and memory (the ablation)", flag="--no-memory", switch=False,
                          resume="model")
    tasks: tuple[str, ...] | None = option(None, "comma-separated task ids to train on (default all)", flag="--tasks",
                                           kind="names", resume="keep")
    edited_only: bool = option(False, "only episodes whose labels were edited", flag="--edited-only", switch=True,
                               resume="keep")
    steps: int = option(2000, "optimiser steps in all (on --resume: a new total)", flag="--steps", kind="int",
                        minimum=1)
    batch_size: int = option(32, "examples per step and process", flag="--batch-size", kind="int", minimum=1)
    lr: float | None = option(None, f"peak learning rate (default {SCRATCH_LR:g} from scratch, {LORA_LR:g} with "
                              "--base)", flag="--lr", kind="float")
    warmup_steps: int = option(100, "linear warm-up steps (at most a tenth of the steps)", kind="int", minimum=0)
    weight_decay: float = option(0.01, "AdamW weight decay", kind="float", minimum=0)
    seed: int = option(0, "seeds the weights and the batches", flag="--seed", kind="int", minimum=0, resume="keep")
    device: str = option("auto", "auto: a GPU when torch sees one, else the CPU", flag="--device", choices=DEVICES)
    mixed_precision: str = option("no", "mixed precision on a GPU", flag="--mixed-precision", choices=PRECISIONS)
    checkpoint_every: int = option(500, "write a checkpoint every N steps (0: only at the end and when stopped)",
                                   flag="--checkpoint-every", kind="int", minimum=0)
    log_every: int = option(10, "steps per metrics line", kind="int", minimum=1)
    lora_rank: int = option(8, "LoRA adapter rank (with --base)", flag="--lora-rank", kind="int", minimum=1,
                            maximum=1024, resume="model")
    resume: bool = option(False, "continue the run in --out from its newest checkpoint, with its own options",
                          flag="--resume", switch=True)
    tiny: bool = option(False, "a very small model (tests, smoke runs)", flag="--tiny", switch=True, resume="model")

    def __post_init__(self):
        for name in ("data", "val"):
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(str(p) for p in ((value,) if isinstance(value, str) else value)))
        object.__setattr__(self, "out", str(self.out))
        if self.base is not None:
            object.__setattr__(self, "base", str(self.base))
        if self.tasks is not None:
            object.__setattr__(self, "tasks", (self.tasks,) if isinstance(self.tasks, str) else tuple(self.tasks))
            unknown = [t for t in self.tasks if t not in TASKS]
            if unknown:
                raise ValueError(f"unknown task(s) {', '.join(unknown)}; tasks: {', '.join(TASKS)}")
        validate_options(self)
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (LORA_LR if self.base else SCRATCH_LR)

    def to_dict(self) -> dict:
        return {"model": PLANNER, **asdict(self)}  # the Train workspace tells planner runs by this

    @staticmethod
    def from_dict(d: dict) -> "PlannerTrainOptions":
        return from_known_dict(PlannerTrainOptions, {k: v for k, v in d.items() if k != "model"}, "the run's options")


MODEL_OPTIONS = tuple(n for n, o in options_of(PlannerTrainOptions).items() if o.resume == "model")
