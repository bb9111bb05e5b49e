"""app/model_loading.py and the checks behind it (models/checkpoint_files.py, models/planner_files.py):
every broken policy or planner folder gives one line and exit 2 from the commands that load models,
before anything large is allocated; a --base folder never runs its own code and never unpickles."""
from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli import main
from models.diffusion_policy import DiffusionPolicy
from models.norm_stats import NormStats
from models.planner import Planner
from models.planner_config import TINY, PlannerConfig
from models.policy_config import TINY as POLICY_TINY
from models.policy_config import PolicyConfig
from models.policy_layout import ACTION_DIM, STATE_DIM


def _norm() -> NormStats:
    return NormStats.from_arrays({"action": np.stack([-np.ones(ACTION_DIM), np.ones(ACTION_DIM)]),
                                  "obs_state": np.stack([-np.ones(STATE_DIM), np.ones(STATE_DIM)])})


@pytest.fixture(scope="module")
def policy_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return DiffusionPolicy(PolicyConfig(**POLICY_TINY), _norm()).save(tmp_path_factory.mktemp("policy") / "ckpt")


@pytest.fixture(scope="module")
def planner_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    corpus = ['pick("red cube")', 'place("red cube", "blue zone")', "done()"] * 4
    return Planner.scratch(PlannerConfig(**TINY), corpus).save(tmp_path_factory.mktemp("planner") / "ckpt")


def _edit_json(name: str, change):
    def edit(folder: Path) -> None:
        path = folder / name
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return edit


def _policy(**changes):
    return _edit_json("config.json", lambda c: {**c, "policy": {**c["policy"], **changes}})


def _without(key):
    return _edit_json("config.json", lambda c: {**c, "policy": {k: v for k, v in c["policy"].items() if k != key}})


def _truncate(name: str):
    def edit(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:len(data) * 2 // 3])
    return edit


def _pickled(name: str):
    def edit(folder: Path) -> None:
        torch.save({"weight": torch.zeros(3)}, folder / name)
    return edit


def _write(name: str, text: str):
    return lambda folder: (folder / name).write_text(text)


def _remove(name: str):
    return lambda folder: (folder / name).unlink()


def _nan_weights(name: str):
    def edit(folder: Path) -> None:
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(folder / name))
        first = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
        tensors[first] = torch.full_like(tensors[first], float("nan"))
        save_file(tensors, str(folder / name))
    return edit


def _norm_stats(change):
    return _edit_json("norm_stats.json", change)


POLICY_BREAKAGES = {
    "no config": _remove("config.json"),
    "config not JSON": _write("config.json", "{not json"),
    "config of another kind": _edit_json("config.json", lambda c: {**c, "format": "something-else"}),
    "config without the policy": _edit_json("config.json", lambda c: {"format": c["format"]}),
    "unknown config key": _policy(colour="blue"),
    "missing config key (defaults do not fit the weights)": _without("down_dims"),
    "absurd width": _policy(down_dims=[10 ** 9]),
    "absurd embedding": _policy(embed_dim=10 ** 9),
    "mismatched widths": _policy(down_dims=[32, 32]),
    "mismatched vision": _policy(obs="rgb"),
    "bad choice": _policy(frame="camera"),
    "width of the wrong type": _policy(embed_dim="big"),
    "truncated weights": _truncate("model.safetensors"),
    "pickle renamed to safetensors": _pickled("model.safetensors"),
    "no weights": _remove("model.safetensors"),
    "empty weights": _write("model.safetensors", ""),
    "NaN weights": _nan_weights("model.safetensors"),
    "no norm stats": _remove("norm_stats.json"),
    "NaN norm stats": _norm_stats(lambda d: {**d, "min": {**d["min"], "action": [float("nan")] * ACTION_DIM}}),
    "norm stats of the wrong width": _norm_stats(lambda d: {**d, "max": {**d["max"], "action": [1.0] * 3},
                                                           "min": {**d["min"], "action": [0.0] * 3}}),
    "norm stats not JSON": _write("norm_stats.json", "[1, 2"),
}


def _one_line_exit_2(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("breakage", list(POLICY_BREAKAGES))
def test_a_broken_policy_folder_is_one_line_and_exit_2(breakage, policy_folder, tmp_path, capsys):
    folder = tmp_path / "ckpt"
    shutil.copytree(policy_folder, folder)
    POLICY_BREAKAGES[breakage](folder)
    err = _one_line_exit_2(["eval", "--policy", str(folder), "--tasks", "stack", "--episodes", "1"], capsys)
    assert str(folder) in err


def test_the_intact_policy_loads_and_absurd_sizes_are_refused_by_the_config(policy_folder):
    assert DiffusionPolicy.load(policy_folder).config == PolicyConfig(**POLICY_TINY)
    with pytest.raises(ValueError, match=r"down_dims must be <= 4096, got 1000000000"):
        PolicyConfig(down_dims=(10 ** 9,))


PLANNER_BREAKAGES = {
    "no planner.json": _remove("planner.json"),
    "planner.json not JSON": _write("planner.json", "{"),
    "planner.json of another kind": _edit_json("planner.json", lambda c: {**c, "format": "other"}),
    "unknown planner key": _edit_json("planner.json", lambda c: {**c, "planner": {**c["planner"], "colour": 1}}),
    "absurd planner size": _edit_json("planner.json", lambda c: {**c, "planner": {**c["planner"],
                                                                                    "vocab_size": 10 ** 9}}),
    "truncated weights": _truncate("model.safetensors"),
    "pickle renamed to safetensors": _pickled("model.safetensors"),
    "no weights": _remove("model.safetensors"),
    "NaN weights": _nan_weights("model.safetensors"),
    "absurd width in config.json": _edit_json("config.json", lambda c: {
        **c, "text_config": {**c["text_config"], "hidden_size": 10 ** 9}}),
    "absurd depth in config.json": _edit_json("config.json", lambda c: {
        **c, "text_config": {**c["text_config"], "num_hidden_layers": 10 ** 6}}),
    "mismatched width in config.json": _edit_json("config.json", lambda c: {
        **c, "vision_config": {**c["vision_config"], "hidden_size": 48}}),
    "custom code in config.json": _edit_json("config.json", lambda c: {**c, "auto_map": {"AutoModel": "m.M"}}),
    "config.json without its text model (defaults: 7B)": _edit_json("config.json", lambda c: {
        k: v for k, v in c.items() if k != "text_config"}),
    "config.json not JSON": _write("config.json", "nope"),
    "broken tokenizer": _write("tokenizer.json", "{}"),
}


@pytest.mark.parametrize("breakage", list(PLANNER_BREAKAGES))
def test_a_broken_planner_folder_is_one_line_and_exit_2(breakage, planner_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(builtins, "input", lambda *_: pytest.fail("a model folder asked a question"))
    folder = tmp_path / "ckpt"
    shutil.copytree(planner_folder, folder)
    PLANNER_BREAKAGES[breakage](folder)
    err = _one_line_exit_2(["eval", "--planner", str(folder), "--policy", "oracle", "--tasks", "stack",
                            "--episodes", "1"], capsys)
    assert str(folder) in err


def test_the_intact_planner_loads(planner_folder):
    assert Planner.load(planner_folder).config.vocab_size == TINY["vocab_size"]


# ---- --base folders ------------------------------------------------------------------------------
@pytest.mark.parametrize("breakage, message", [
    (_edit_json("config.json", lambda c: {**c, "auto_map": {"AutoModelForImageTextToText": "modeling_x.X"}}),
     "ships its own model code"),
    (_edit_json("tokenizer_config.json", lambda c: {**c, "auto_map": {"AutoTokenizer": ["tok.T", None]}}),
     "ships its own model code"),
    (lambda f: (f / "model.safetensors").rename(f / "pytorch_model.bin"), "only pickled pytorch_model.bin"),
    (_remove("config.json"), "not a local model folder"),
    (_pickled("model.safetensors"), "is not a safetensors file"),
])
def test_a_base_folder_never_runs_its_code_or_unpickles(breakage, message, planner_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(builtins, "input", lambda *_: pytest.fail("transformers asked whether to run custom code"))
    base = tmp_path / "base"
    shutil.copytree(planner_folder, base)
    (base / "modeling_x.py").write_text("raise SystemExit('custom code ran')\n")
    breakage(base)
    with pytest.raises(ValueError, match=message):
        Planner.from_base(base, PlannerConfig(**TINY))


def test_train_planner_refuses_a_custom_code_base_with_one_line(planner_folder, tmp_path, capsys):
    base = tmp_path / "base"
    shutil.copytree(planner_folder, base)
    _edit_json("config.json", lambda c: {**c, "auto_map": {"AutoModelForImageTextToText": "m.M"}})(base)
    (tmp_path / "data").mkdir()
    err = _one_line_exit_2(["train", "planner", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                            "--base", str(base)], capsys)
    assert "ships its own model code" in err and not (tmp_path / "run").exists()


def test_a_planner_run_naming_a_custom_code_base_is_refused(planner_folder, tmp_path, capsys):
    base = tmp_path / "base"
    shutil.copytree(planner_folder, base)
    _edit_json("config.json", lambda c: {**c, "auto_map": {"AutoModelForImageTextToText": "m.M"}})(base)
    run = tmp_path / "lora"
    shutil.copytree(planner_folder, run)
    _edit_json("planner.json", lambda c: {**c, "planner": {**c["planner"], "base": str(base)}})(run)
    (run / "adapter_model.safetensors").write_bytes((run / "model.safetensors").read_bytes())
    err = _one_line_exit_2(["eval", "--planner", str(run), "--policy", "oracle", "--tasks", "stack"], capsys)
    assert "ships its own model code" in err
