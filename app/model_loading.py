"""Loading a trained policy or planner for a command: the one place every command (run, eval,
bench) goes through, turning any problem with a run folder into one line and exit 2.

    --policy RUN|CHECKPOINT -> load_policy  -> DiffusionPolicy.load (models/diffusion_policy.py)
    --planner RUN|CHECKPOINT -> load_planner -> Planner.load (models/planner.py, models/planner_files.py)

The models check their files before they allocate anything (models/checkpoint_files.py: config
bounds, safetensors headers against the config's shapes, finite norm stats and weights, no custom
code, no pickles); this module finds a run's newest model and reports the refusal. torch and
transformers are imported only when a model is loaded.
"""
from __future__ import annotations

from pathlib import Path

from app.errors import UserError
from recorders.episode_meta import ModelRef


def load_policy(path, device: str = "cpu", for_planner: bool = False):
    """A policy checkpoint, or a run folder's newest policy; UserError (one line) when it is not one
    or its files are broken, or, `for_planner`, when it is a flat policy (it takes no calls, so a
    planner cannot drive it)."""
    from models.diffusion_policy import WEIGHTS_FILE, DiffusionPolicy
    from models.run_folder import newest_saved

    folder = Path(path)
    if not folder.exists():
        raise UserError(f"no such policy: {folder}")
    folder = newest_saved(folder, WEIGHTS_FILE) or folder  # a run folder: its newest policy
    try:
        policy = DiffusionPolicy.load(folder, device=device)
    except ValueError as e:
        raise UserError(str(e)) from None
    if for_planner and policy.config.cond == "flat":
        raise UserError(f"{path} is a flat policy: it takes no calls, so a planner has nothing to give it")
    return policy


def load_planner(path, device: str = "cpu"):
    """A planner run or checkpoint folder; UserError (one line) when it is not one or its files are broken."""
    from models.planner import Planner

    if not Path(path).exists():
        raise UserError(f"no such planner: {path}")
    try:
        return Planner.load(path, device=device)
    except ValueError as e:
        raise UserError(str(e)) from None


def model_ref(role: str, path) -> ModelRef:
    """Which model a command used, for the provenance of the episodes it records: the run (or
    checkpoint) as given, and the checkpoint folder that was loaded from it."""
    from models.diffusion_policy import WEIGHTS_FILE
    from models.planner_files import PLANNER_FILE
    from models.run_folder import newest_saved

    marker = WEIGHTS_FILE if role == "policy" else PLANNER_FILE
    return ModelRef(role, str(path), str(newest_saved(path, marker) or Path(path)))
