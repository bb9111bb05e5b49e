"""The planners and policies the Run workspace offers (app/run_models.py), from run folders' files alone."""
from __future__ import annotations

import json

import pytest

from app.run_models import ModelChoiceError, list_models, model_choice
from app.run_program import ORACLE, SCRIPTED


def fake_run(folder, files, options, episodes=3, steps=(40, 40)):
    """A run folder as the trainers leave it: options, the metrics log, a saved model's files."""
    (folder / "final").mkdir(parents=True)
    for name in files:
        (folder / "final" / name).write_bytes(b"")
    (folder / "options.json").write_text(json.dumps(options))
    lines = [{"event": "started", "step": 0, "steps": steps[1], "episodes": episodes},
             {"event": "finished", "step": steps[0]}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_runs_are_listed_by_role_after_the_built_in_choices_with_what_they_were_trained_on(tmp_path):
    fake_run(tmp_path / "p1", ["model.safetensors"], {"tasks": ["stack", "swap"], "obs": "rgb", "cond": "call",
                                                      "interventions": "only"}, episodes=1)
    fake_run(tmp_path / "v1", ["planner.json", "model.safetensors"], {"tasks": None}, episodes=12, steps=(20, 200))
    (tmp_path / "notes").mkdir()  # not a run
    found = list_models(tmp_path)
    assert [c.key for c in found["planner"]] == [ORACLE, str(tmp_path / "v1")]
    assert [c.key for c in found["policy"]] == [SCRIPTED, str(tmp_path / "p1")]
    assert found["policy"][1].trained_on == "1 episode of stack, swap · 40/40 steps · rgb, call-conditioned, " \
                                            "interventions only"
    assert found["planner"][1].trained_on == "12 episodes of every task · 20/200 steps"
    assert found["planner"][0].built_in and not found["planner"][1].built_in


def test_a_browsed_folder_is_a_run_or_checkpoint_of_its_role_or_refused_with_the_reason(tmp_path):
    run = fake_run(tmp_path / "v1", ["planner.json", "model.safetensors"], {})
    assert model_choice(run, "planner").key == str(run)
    checkpoint = model_choice(run / "final", "planner")
    assert (checkpoint.key, checkpoint.name) == (str(run / "final"), "v1/final")
    with pytest.raises(ModelChoiceError, match="holds no saved policy \\(it holds a planner\\)"):
        model_choice(run, "policy")
    with pytest.raises(ModelChoiceError, match="holds no saved planner$"):
        model_choice(tmp_path, "planner")
    with pytest.raises(ModelChoiceError, match="is not a folder"):
        model_choice(tmp_path / "missing", "policy")
