"""The planners and policies the Run workspace offers: the oracle program and the scripted skills, and
every trained run (or checkpoint) of a runs folder, each described by what it was trained on. Reads
only the run folders' JSON files (options.json, the metrics log, the saved model's marker file), so
listing loads no torch.

    runs folder -> list_models() -> ModelChoice (role planner | policy, path, what it was trained on)
    a folder the user browsed to -> model_choice(path) -> ModelChoice, or ModelChoiceError naming why
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from app.run_program import ORACLE, SCRIPTED
from app.train_runs import RunInfo, list_runs, run_info
from models.planner_files import PLANNER_FILE
from models.run_folder import OPTIONS_FILE, newest_saved

WEIGHTS_FILE = "model.safetensors"  # models/diffusion_policy.py's (which imports torch); app/train_runs.py keeps both in step
BUILT_IN = {"planner": (ORACLE, "Oracle program", "the task's own program (suite instructions only)"),
            "policy": (SCRIPTED, "Scripted skills", "the robot API's scripted pick / place / push / home")}


class ModelChoiceError(ValueError):
    """A folder that holds no planner or policy the Run workspace can load; one-line message."""


@dataclass(frozen=True)
class ModelChoice:
    role: str  # planner | policy
    key: str  # what RunSession.start takes: ORACLE / SCRIPTED or the run / checkpoint path
    name: str  # short, for a list
    trained_on: str  # one line: the data, steps and kind of model

    @property
    def built_in(self) -> bool:
        return self.key in (ORACLE, SCRIPTED)


def built_in(role: str) -> ModelChoice:
    key, name, what = BUILT_IN[role]
    return ModelChoice(role, key, name, what)


def list_models(runs_dir) -> dict[str, list[ModelChoice]]:
    """Per role, the built-in choice first, then the runs of `runs_dir` holding a saved model, newest first."""
    found = {role: [built_in(role)] for role in BUILT_IN}
    for run in list_runs(runs_dir):
        role = _role_of_run(run.path)
        if role is not None:
            found[role].append(ModelChoice(role, str(run.path), run.name, _trained_on(run, role)))
    return found


def model_choice(path, role: str) -> ModelChoice:
    """A run folder or checkpoint folder of `role`; ModelChoiceError when it holds none."""
    path = Path(path)
    if not path.is_dir():
        raise ModelChoiceError(f"{path} is not a folder")
    checkpoint = _role_of_checkpoint(path)
    found = checkpoint or _role_of_run(path)
    if found != role:
        hint = f" (it holds a {found})" if found else ""
        raise ModelChoiceError(f"{path} holds no saved {role}{hint}")
    if checkpoint:  # a checkpoint folder: its run is run/checkpoints/step_N or run/final
        run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return ModelChoice(role, str(path), f"{run.name}/{path.name}", _trained_on(run_info(run), role))
    return ModelChoice(role, str(path), path.name, _trained_on(run_info(path), role))


def _role_of_checkpoint(folder: Path) -> str | None:
    """A saved planner holds its planner file (beside weights); a saved policy its weights alone."""
    if (folder / PLANNER_FILE).is_file():
        return "planner"
    return "policy" if (folder / WEIGHTS_FILE).is_file() else None


def _role_of_run(run: Path) -> str | None:
    saved = newest_saved(run, PLANNER_FILE) or newest_saved(run, WEIGHTS_FILE)
    return None if saved is None else _role_of_checkpoint(saved)


def _trained_on(run: RunInfo, role: str) -> str:
    """e.g. "24 episodes of stack, swap · 2000/2000 steps · rgb, call-conditioned"."""
    options = _read_json(run.path / OPTIONS_FILE)
    parts = []
    episodes = run.episodes
    tasks = options.get("tasks")
    if episodes is not None:
        data = f"{episodes} episode" + ("" if episodes == 1 else "s")
    else:
        data = "episodes of " + ", ".join(str(Path(d).name) for d in options.get("data", [])[:2])
    if tasks:
        data += " of " + ", ".join(tasks)
    elif episodes is not None:
        data += " of every task"
    parts.append(data)
    parts.append(f"{run.step}/{run.total} steps" if run.total else f"{run.step} steps")
    if role == "policy":
        kind = [options.get("obs", "?"), f"{options.get('cond', 'call')}-conditioned"]
        if options.get("interventions") == "only":
            kind.append("interventions only")
        parts.append(", ".join(kind))
    elif options.get("base"):
        parts.append(f"fine-tuned from {Path(str(options['base'])).name}")
    return " · ".join(parts)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
