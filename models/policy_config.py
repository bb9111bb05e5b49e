"""The diffusion policy's configuration and its training options, torch-free (STYLE.md rule 13).

Owns `VisionConfig` and `PolicyConfig` (saved in a checkpoint's config.json), `TrainOptions` (a
run's options.json, including which segments it learns from: all, or only those a takeover
intervention overlaps, and how much more often the latter are drawn), their choices, defaults,
bounds and help texts (field metadata: models/option_fields.py), and the defaults of keys that
older checkpoints and runs lack (`OLDER_DEFAULTS`, the one place for them). The CLI
(app/train_command.py), the Train form (app/train_launch.py) and resume derive from these classes;
models/diffusion_policy.py and models/train_policy.py build and train from them.

    options.json -> TrainOptions.from_dict -> .policy_config() -> PolicyConfig -> DiffusionPolicy
    config.json  -> PolicyConfig.from_dict (unknown keys and out-of-bounds sizes refused up front)
"""
from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, replace

from models.anchor_frame import FRAMES
from models.option_fields import default_of, option, options_of, validate_options
from models.policy_layout import COND_KINDS, OBS_KINDS, PROPRIO_DIM, STATE_DIM
from models.run_options import RunOptions, from_known_dict

PREDICTIONS = ("sample", "epsilon")
INTERVENTIONS = ("all", "only")  # every labelled segment, or only those a takeover intervention overlaps
MAX_WARMUP_STEPS = 500
MAX_WIDTH = 4096  # channels of any layer: bounds a config's allocation before anything is built
# Keys missing from checkpoints and runs saved before they existed take these values, not today's defaults
# (each class takes the keys it has: the last two are a run's options only).
OLDER_DEFAULTS = {"frame": "world", "prediction": "epsilon", "state_objects": True, "goal": False,
                  "interventions": "all", "intervention_weight": 1.0, "image_frames": None, "image_size": None,
                  "crop": 1.0, "vision_widths": (32, 64, 128, 256), "vision_depths": (2, 2, 2, 2)}


def _size(default, help: str = "", maximum: int = MAX_WIDTH, **meta):
    return option(default, help, kind="int", minimum=1, maximum=maximum, **meta)


@dataclass(frozen=True)
class VisionConfig:
    """One camera's image encoder (models/vision_encoder.py)."""
    feature_dim: int = _size(64, "features per camera")
    hidden_sizes: tuple[int, ...] = option((32, 64, 128, 256), "ResNet stage widths (ResNet-18: 64,128,256,512)",
                                           kind="widths", minimum=1, maximum=MAX_WIDTH)
    depths: tuple[int, ...] = option((2, 2, 2, 2), "residual blocks per stage", kind="widths", minimum=1, maximum=64)
    groups: int = _size(8, "GroupNorm groups", maximum=512)
    image_size: int | None = option(None, "images are resized to this many pixels square before the encoder "
                                    "(None: the camera's own size)", kind="int", minimum=8, maximum=1024)
    crop: float = option(1.0, "side of the random crop taken in training, as a fraction of the (resized) image; "
                         "inference takes the centre crop of the same size", kind="float", minimum=0.5, maximum=1.0)

    def __post_init__(self):
        for name in ("hidden_sizes", "depths"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        validate_options(self)
        if len(self.hidden_sizes) != len(self.depths):
            raise ValueError(f"hidden_sizes {self.hidden_sizes} and depths {self.depths} must have one entry per stage")

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "VisionConfig":
        return from_known_dict(VisionConfig, d, "the vision config")


@dataclass(frozen=True)
class PolicyConfig:
    obs: str = option("state", "state: arm and object poses; rgb: also the front and wrist cameras (slower)",
                      choices=OBS_KINDS)
    cond: str = option("call", "call: conditioned on the current call; flat: on the task alone (the baseline)",
                       choices=COND_KINDS)
    memory: bool = option(True, "condition on the remembered poses (False: the memory ablation)", choices=(True, False))
    # The state input holds every object's pose (True) or only the arm's (False: the call vector carries the
    # poses of the objects the call names, and the other objects are distractors). None: True only for flat.
    state_objects: bool | None = option(None, "every object's pose in the state input (default: only for flat)",
                                        choices=(True, False))
    # The flat baseline reads its instruction's named cubes and zones (models/policy_layout.goal_vector), as the
    # planner does: without them a multi-task flat policy cannot tell which cube "stack the red cube ..." means.
    goal: bool | None = option(None, "flat: also the instruction's named cubes and zones, their poses now and at "
                               "the start (default: True for flat)", choices=(True, False))
    frame: str = option("anchor", "positions relative to the call's object or target (anchor) or to the robot "
                        "base (world)", choices=FRAMES)
    obs_horizon: int = _size(2, "observation frames per prediction", maximum=64)
    image_frames: int | None = _size(None, "the latest this many frames of the observation window go through the "
                                     "cameras' encoders (None: all of them)", maximum=64)
    pred_horizon: int = _size(16, "actions per predicted chunk", maximum=1024)
    action_horizon: int = _size(8, "actions executed per chunk", maximum=1024)
    embed_dim: int = _size(128, "state, call, memory and task embedding width")
    down_dims: tuple[int, ...] = option((64, 128, 256), "U-Net channel widths per level (wider learns more; "
                                        "128,256,512 trains ~3x slower)", kind="widths", minimum=1, maximum=MAX_WIDTH)
    step_embed_dim: int = _size(128, "diffusion-step embedding width")
    train_timesteps: int = _size(100, "DDPM training steps", maximum=10_000)
    prediction: str = option("sample", "what the U-Net predicts: the clean action chunk (sample; learns faster) or "
                             "the noise (epsilon)", choices=PREDICTIONS)
    inference_steps: int = _size(10, "DDIM inference steps", maximum=10_000)
    vision: VisionConfig = option(default_factory=VisionConfig, help="the cameras' image encoder")

    def __post_init__(self):
        if isinstance(self.down_dims, (list, tuple)):
            object.__setattr__(self, "down_dims", tuple(self.down_dims))
        if self.state_objects is None:
            object.__setattr__(self, "state_objects", self.cond == "flat")
        if self.goal is None:
            object.__setattr__(self, "goal", self.cond == "flat")
        if isinstance(self.vision, dict):
            object.__setattr__(self, "vision", VisionConfig.from_dict(self.vision))
        if not isinstance(self.vision, VisionConfig):
            raise ValueError(f"vision must be a vision config, got {self.vision!r}")
        validate_options(self)
        if len(self.down_dims) > 8:
            raise ValueError(f"down_dims has {len(self.down_dims)} levels; at most 8")
        if self.action_horizon > self.pred_horizon:
            raise ValueError(f"action_horizon must be within 1..pred_horizon ({self.pred_horizon}), "
                             f"got {self.action_horizon}")
        if self.image_frames is not None and self.image_frames > self.obs_horizon:
            raise ValueError(f"image_frames must be within 1..obs_horizon ({self.obs_horizon}), got {self.image_frames}")
        if self.goal and self.cond != "flat":
            raise ValueError("goal is the flat baseline's input; a call-conditioned policy gets the call's poses")
        if self.inference_steps > self.train_timesteps:
            raise ValueError(f"inference_steps must be within 1..{self.train_timesteps}, got {self.inference_steps}")

    @property
    def uses_memory(self) -> bool:
        return self.cond == "call" and self.memory

    @property
    def uses_goal(self) -> bool:
        return self.cond == "flat" and bool(self.goal)

    @property
    def camera_frames(self) -> int:
        """How many of the latest observation frames each camera's encoder sees."""
        return self.obs_horizon if self.image_frames is None else self.image_frames

    @property
    def state_dim(self) -> int:
        """Per-frame width of the state the state encoder sees."""
        return STATE_DIM if self.state_objects else PROPRIO_DIM

    def to_dict(self) -> dict:
        return {**asdict(self), "vision": self.vision.to_dict()}

    @staticmethod
    def from_dict(d: dict) -> "PolicyConfig":
        return from_known_dict(PolicyConfig, d, "the policy config", OLDER_DEFAULTS)


TINY = dict(embed_dim=32, down_dims=(32, 64), step_embed_dim=16,
            vision=VisionConfig(feature_dim=8, hidden_sizes=(8, 16), depths=(1, 1), groups=4))


def _like(name: str, flag: str | None = None, help: str | None = None, default=MISSING, of=PolicyConfig, **meta):
    """A training option that sets the field `name` of PolicyConfig (or of `of`: VisionConfig, the
    cameras' encoder), shaping the model: its bounds, help (or `help` for a switch) and default (or a
    new run's `default`, when the config's own is what checkpoints saved before the option meant)."""
    o = options_of(of)[name]
    return option(default_of(of, name) if default is MISSING else default, help or o.help, choices=o.choices,
                  minimum=o.minimum, maximum=o.maximum, kind=o.kind, flag=flag, resume="model", **meta)


@dataclass(frozen=True)
class TrainOptions(RunOptions):
    """One `train policy` run (options.json): RunOptions plus the policy's model and schedule."""
    obs: str = _like("obs", "--obs")
    cond: str = _like("cond", "--flat", "condition on the task, not on calls (the paper's flat baseline)",
                      switch="flat")
    memory: bool = _like("memory", "--no-memory", "withhold memory (the ablation)", switch=False)
    frame: str = _like("frame", "--frame")
    prediction: str = _like("prediction", "--prediction")
    state_objects: bool | None = _like("state_objects")
    goal: bool | None = _like("goal", "--no-goal", "flat: withhold the instruction's named cubes and zones (the "
                              "task alone, the weaker baseline)", switch=False)
    interventions: str = option("all", "all: every labelled segment; only: only the segments a takeover "
                                "intervention of a supervised run overlaps (the operator's corrections)",
                                flag="--interventions", choices=INTERVENTIONS, resume="keep")
    intervention_weight: float = option(1.0, "segments a takeover intervention overlaps are drawn this many "
                                        "times as often as the others", flag="--intervention-weight",
                                        kind="float", minimum=1, maximum=1000, metavar="W", resume="keep")
    steps: int = option(3000, "optimiser steps in all (on --resume: a new total)", flag="--steps", kind="int",
                        minimum=1)
    batch_size: int = option(64, "training windows per step and process", flag="--batch-size", kind="int", minimum=1)
    lr: float = option(2e-4, "peak learning rate of AdamW (warm-up, then cosine)", flag="--lr", kind="float")
    weight_decay: float = option(1e-6, "AdamW weight decay", kind="float", minimum=0)
    warmup_steps: int | None = option(None, "linear warm-up steps (default: a tenth of the steps, at most "
                                      f"{MAX_WARMUP_STEPS})", kind="int", minimum=0)
    ema_power: float = option(0.75, "EMA warm-up power", kind="float", minimum=0)
    num_workers: int = option(0, "data-loading processes", flag="--workers", kind="int", minimum=0,
                              metavar="N")
    embed_dim: int = _like("embed_dim")
    down_dims: tuple[int, ...] = _like("down_dims", "--down-dims", metavar="W1,W2,...")
    # The rgb policy's cameras: what made it trainable on a CPU (README, "The rgb policy"); runs saved
    # before these options existed had the config classes' defaults (OLDER_DEFAULTS)
    image_frames: int | None = _like("image_frames", "--image-frames", default=1, metavar="N")
    image_size: int | None = _like("image_size", "--image-size", default=72, of=VisionConfig, metavar="PX")
    crop: float = _like("crop", "--crop", default=0.9, of=VisionConfig, metavar="FRACTION")
    vision_widths: tuple[int, ...] = _like("hidden_sizes", "--vision-widths", default=(16, 32, 64, 128),
                                           of=VisionConfig, metavar="W1,W2,...")
    vision_depths: tuple[int, ...] = _like("depths", "--vision-depths", default=(1, 1, 1, 1), of=VisionConfig,
                                           metavar="D1,D2,...")

    def __post_init__(self):
        super().__post_init__()
        for name in ("down_dims", "vision_widths", "vision_depths"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.intervention_weight, int) and not isinstance(self.intervention_weight, bool):
            object.__setattr__(self, "intervention_weight", float(self.intervention_weight))  # 2 in JSON is 2.0
        if self.warmup_steps is None and isinstance(self.steps, int):
            object.__setattr__(self, "warmup_steps", min(MAX_WARMUP_STEPS, self.steps // 10))
        validate_options(self)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")

    def policy_config(self) -> PolicyConfig:
        images = dict(image_size=self.image_size, crop=self.crop)
        if self.tiny:
            size = {**TINY, "vision": replace(TINY["vision"], **images)}
        else:
            size = dict(embed_dim=self.embed_dim, down_dims=self.down_dims,
                        vision=VisionConfig(hidden_sizes=self.vision_widths, depths=self.vision_depths, **images))
        return PolicyConfig(obs=self.obs, cond=self.cond, memory=self.memory, frame=self.frame,
                            prediction=self.prediction, state_objects=self.state_objects,
                            goal=self.goal,
                            image_frames=self.image_frames, **size)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "TrainOptions":
        return from_known_dict(TrainOptions, d, "the run's options", OLDER_DEFAULTS)


def trained_default(obs: str) -> PolicyConfig:
    """The configuration a new `train policy --obs OBS` run gets with no other option (the benches time it)."""
    return TrainOptions(obs=obs).policy_config()


MODEL_OPTIONS = tuple(n for n, o in options_of(TrainOptions).items() if o.resume == "model")
