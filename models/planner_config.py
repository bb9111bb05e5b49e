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
from models.run_options import RunOptions, as_paths, from_known_dict

OLDER_RUNS = {"balance_tasks": False}  # what runs saved before an option existed did (resume keeps it)
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
    known: tuple[str, ...] = option((), "the training instructions, normalised (models/instruction_check.py: "
                                    "instructions unlike all of them are refused)")
    templates: tuple[str, ...] = option((), "one recorded instruction per wording (models/instruction_canon.py: "
                                        "other wordings are read as the closest of them)")
    scene_facts: bool = option(False, "the prompt holds the facts read from the image (models/scene_facts.py: "
                               "which zone each cube lies in, nearest the robot first)", choices=(True, False))
    camera: dict | None = option(None, "the front camera's intrinsics and pose, for the facts' distances "
                                 "(from the training episodes)")

    def __post_init__(self):
        if isinstance(self.calls, dict):
            object.__setattr__(self, "calls", CallVocabulary.from_dict(self.calls))
        if not isinstance(self.calls, CallVocabulary):
            raise ValueError(f"calls must be a call vocabulary, got {self.calls!r}")
        for name in ("known", "templates"):
            texts = getattr(self, name)
            if not isinstance(texts, (list, tuple)) or not all(isinstance(k, str) for k in texts):
                raise ValueError(f"{name} must be a list of instruction texts")
            object.__setattr__(self, name, tuple(texts))
        if self.camera is not None:
            from models.scene_facts import CameraView

            object.__setattr__(self, "camera", CameraView.from_dict(self.camera).to_dict())
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
class PlannerTrainOptions(RunOptions):
    """One `train planner` run (options.json): RunOptions plus the planner's model and schedule."""
    data: tuple[str, ...] = option((), "episode folders or files (with the front camera)", flag="--data",
                                   kind="paths", resume="keep")
    val: tuple[str, ...] = option((), "held-out episodes: next-call accuracy and program exact match at the end",
                                  flag="--val", kind="paths")
    base: str | None = option(None, "a local pretrained image-text-to-text checkpoint (safetensors) to fine-tune "
                              "with LoRA (default: a tiny model trained from scratch)", flag="--base", resume="model")
    memory: bool = option(True, "withhold past calls and memory (the ablation)", flag="--no-memory", switch=False,
                          resume="model")
    steps: int = option(2000, "optimiser steps in all (on --resume: a new total)", flag="--steps", kind="int",
                        minimum=1)
    batch_size: int = option(32, "examples per step and process", flag="--batch-size", kind="int", minimum=1)
    lr: float | None = option(None, f"peak learning rate (default {SCRATCH_LR:g} from scratch, {LORA_LR:g} with "
                              "--base)", flag="--lr", kind="float")
    warmup_steps: int = option(100, "linear warm-up steps (at most a tenth of the steps)", kind="int", minimum=0)
    weight_decay: float = option(0.01, "AdamW weight decay", kind="float", minimum=0)
    lora_rank: int = option(8, "LoRA adapter rank (with --base)", flag="--lora-rank", kind="int", minimum=1,
                            maximum=1024, resume="model")
    rephrasings: int = option(0, "extra examples per call with its instruction rephrased (synonyms, politeness, "
                              "case; models/instruction_variants.py)", flag="--rephrasings", kind="int", minimum=0,
                              maximum=16, resume="model")
    colour_swaps: int = option(0, "extra examples per call with its colours permuted in the instruction, the calls "
                               "and the camera image (unseen colour pairs; simulated palette: models/colour_swaps.py)",
                               flag="--colour-swaps", kind="int", minimum=0, maximum=32, resume="model")
    balance_tasks: bool = option(True, "tasks with fewer demonstrations get proportionally more colour-swapped "
                                 "copies (without swaps: repeats), up to as many examples as the commonest task "
                                 "(--no-balance-tasks: each demonstration counts once)",
                                 flag="--no-balance-tasks", switch=False, resume="model")
    scene_facts: bool = option(False, "tell the planner what the image shows: which zone each cube lies in, nearest "
                               "the robot first (read from the front camera by models/scene_facts.py)",
                               flag="--scene-facts", switch=True, resume="model")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "val", as_paths(self.val))
        if self.base is not None:
            object.__setattr__(self, "base", str(self.base))
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
        return from_known_dict(PlannerTrainOptions, {k: v for k, v in d.items() if k != "model"}, "the run's options",
                               OLDER_RUNS)


MODEL_OPTIONS = tuple(n for n, o in options_of(PlannerTrainOptions).items() if o.resume == "model")
