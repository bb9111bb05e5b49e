"""The torch-free configs (models/policy_config.py, models/planner_config.py, models/option_fields.py):
they validate themselves with errors that name the value, refuse unknown keys and absurd sizes, give
older runs their missing keys from one place, and decide what a resumed run may change."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from models.option_fields import resumed_options
from models.planner_config import PlannerConfig, PlannerTrainOptions
from models.policy_config import OLDER_DEFAULTS, PolicyConfig, TrainOptions, VisionConfig

ROOT = Path(__file__).resolve().parents[1]


def test_the_configs_and_the_train_launcher_load_no_torch():
    code = ("import sys\nimport models.policy_config, models.planner_config, models.policy_layout\n"
            "import app.train_launch, app.train_command, app.model_loading\n"
            "print(sorted(m for m in ('torch', 'transformers', 'diffusers', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("make, message", [
    (lambda: PolicyConfig(obs="camera"), "obs must be one of state, rgb, got 'camera'"),
    (lambda: PolicyConfig(down_dims=(64, 10 ** 9)), "down_dims must be <= 4096, got 1000000000"),
    (lambda: PolicyConfig(embed_dim=0), "embed_dim must be >= 1, got 0"),
    (lambda: PolicyConfig(embed_dim="128"), "embed_dim must be an integer, got '128'"),
    (lambda: PolicyConfig(action_horizon=20), "action_horizon must be within 1..pred_horizon"),
    (lambda: VisionConfig(hidden_sizes=(8, 16), depths=(1,)), "one entry per stage"),
    (lambda: PolicyConfig.from_dict({"colour": "red"}), "unknown key.*colour"),
    (lambda: PlannerConfig(vocab_size=10 ** 9), "vocab_size must be <= 1e\\+06, got 1000000000"),
    (lambda: PlannerConfig(image_size=30), "multiple of patch_size"),
    (lambda: PlannerConfig.from_dict({"memory": True, "layers": 3}), "unknown key.*layers"),
    (lambda: TrainOptions(data=("a",), out="r", steps=0), "steps must be >= 1, got 0"),
    (lambda: TrainOptions(data=("a",), out="r", lr=-1.0), "lr must be > 0"),
    (lambda: TrainOptions(data=("a",), out="r", interventions="some"), "interventions must be one of all, only"),
    (lambda: TrainOptions(data=("a",), out="r", intervention_weight=0.0), "intervention_weight must be >= 1, got 0.0"),
    (lambda: PlannerTrainOptions(data=("a",), out="r", device="tpu"), "device must be one of"),
    (lambda: PlannerTrainOptions(data=("a",), out="r", tasks=("juggle",)), "unknown task"),
])
def test_configs_refuse_bad_values_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_older_runs_and_checkpoints_get_their_missing_keys_from_one_place():
    old_run = TrainOptions.from_dict({"data": ["a.h5"], "out": "r"})
    old_checkpoint = PolicyConfig.from_dict({})
    for key, value in OLDER_DEFAULTS.items():  # each takes the keys it has; a run has them all
        assert getattr(old_run, key) == getattr(old_checkpoint, key, value) == value
    assert (old_run.interventions, old_run.intervention_weight) == ("all", 1.0)  # runs only: not a model's keys
    assert TrainOptions(data=("a.h5",), out="r").frame == "anchor"  # new runs: today's default


def test_a_resume_overrides_the_schedule_and_refuses_what_shapes_the_model_or_data():
    saved = TrainOptions(data=("a.h5",), out="r", steps=100, tiny=True, seed=3)
    longer = resumed_options(saved, {"out": "r", "resume": True, "steps": 300, "device": "cpu", "num_workers": 2})
    assert (longer.steps, longer.device, longer.num_workers, longer.resume) == (300, "cpu", 2, True)
    assert longer.warmup_steps == saved.warmup_steps == 10  # the schedule it started with
    assert resumed_options(saved, {"data": ["a.h5"], "tiny": True}) == saved  # repeating a value is fine
    for change in ({"obs": "rgb"}, {"cond": "flat"}, {"data": ("b.h5",)}, {"seed": 4}, {"tasks": ("stack",)},
                   {"interventions": "only"}, {"intervention_weight": 2.0}):
        with pytest.raises(ValueError, match="a resumed run keeps the options it was started with"):
            resumed_options(saved, change)
    planner = PlannerTrainOptions(data=("a.h5",), out="r")
    with pytest.raises(ValueError, match="base was None, not 'x'"):
        resumed_options(planner, {"base": "x"})
    assert resumed_options(planner, {"lr": 1e-4}) == replace(planner, lr=1e-4)


def test_new_rgb_runs_get_the_cpu_recipe_and_older_runs_keep_their_encoder():
    from models.policy_config import TrainOptions

    new = TrainOptions(data=("d",), out="r", obs="rgb").policy_config()
    assert (new.camera_frames, new.vision.image_size, new.vision.crop) == (1, 72, 0.9)
    assert (new.vision.hidden_sizes, new.vision.depths) == ((16, 32, 64, 128), (1, 1, 1, 1))
    older = TrainOptions.from_dict({"data": ["d"], "out": "r", "obs": "rgb"}).policy_config()  # saved before
    assert (older.camera_frames, older.vision.image_size, older.vision.crop) == (2, None, 1.0)
    assert (older.vision.hidden_sizes, older.vision.depths) == ((32, 64, 128, 256), (2, 2, 2, 2))
    again = TrainOptions(data=("d",), out="r", obs="rgb")
    assert TrainOptions.from_dict(again.to_dict()) == again
