"""Pieces every training run folder shares (policy and planner trainers): atomic JSON files, the
JSON-lines metrics log, the newest complete checkpoint, and optimiser state as safetensors + JSON
(never pickled). torch is imported only where it is used, so the Train workspace can list runs
with these names without loading it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    import torch

METRICS_FILE = "metrics.jsonl"
OPTIONS_FILE = "options.json"
CHECKPOINTS = "checkpoints"
FINAL = "final"
STATE_JSON = "trainer_state.json"


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    os.replace(tmp, path)


class MetricsLog:
    """Appends one JSON object per line; a no-op on processes other than the main one."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = path, enabled

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def latest_checkpoint(out) -> Path | None:
    """The newest complete checkpoint of a run folder (a half-written one has no trainer_state.json)."""
    folder = Path(out) / CHECKPOINTS
    done = sorted(p for p in folder.glob("step_*") if p.is_dir() and (p / STATE_JSON).is_file()) \
        if folder.is_dir() else []
    return done[-1] if done else None


def optimizer_tensors(optimizer) -> tuple[dict[str, "torch.Tensor"], dict]:
    """(tensors named optimizer.INDEX.NAME, the JSON part) of an optimiser's state."""
    import torch

    opt = optimizer.state_dict()
    tensors = {}
    for index, state in opt["state"].items():
        tensors |= {f"optimizer.{index}.{name}": v for name, v in state.items() if isinstance(v, torch.Tensor)}
    return tensors, {"param_groups": opt["param_groups"], "state_keys": sorted(map(int, opt["state"]))}


def load_optimizer(optimizer, tensors: dict[str, "torch.Tensor"], meta: dict) -> None:
    """Restore what `optimizer_tensors` gave."""
    state = {}
    for index in meta["state_keys"]:
        prefix = f"optimizer.{index}."
        state[index] = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def newest_saved(run, marker: str) -> Path | None:
    """final/ or the newest complete checkpoint of a run folder, whichever was written last (a
    finished run that was resumed and stopped has an older final/); `marker` is the file every saved
    model holds. None when there is neither."""
    run = Path(run)
    found = [p for p in (run / FINAL, latest_checkpoint(run)) if p is not None and (p / marker).is_file()]
    return max(found, key=lambda p: (p / marker).stat().st_mtime) if found else None


def holds_run(out: Path) -> bool:
    return any((Path(out) / name).exists() for name in (OPTIONS_FILE, METRICS_FILE, CHECKPOINTS, FINAL))


def starting_checkpoint(options, from_dict: Callable[[dict], object], model_options: Sequence[str]) -> Path | None:
    """Where a run of `options` (with .out and .resume) starts: the checkpoint to resume from, or
    None for a new run; ValueError when a new run would overwrite one, or the run cannot be resumed
    (no options file, a changed option that shapes the model, no checkpoint yet)."""
    out = Path(options.out)
    if not options.resume:
        if holds_run(out):
            raise ValueError(f"{out} already holds a training run; resume it or choose another folder")
        return None
    try:
        before = from_dict(json.loads((out / OPTIONS_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"cannot resume {out}: no readable {OPTIONS_FILE} ({e})") from None
    changed = [k for k in model_options if getattr(before, k) != getattr(options, k)]
    if changed:
        raise ValueError(f"cannot resume {out}: options that change the model differ: "
                         + ", ".join(f"{k} {getattr(before, k)!r} -> {getattr(options, k)!r}" for k in changed))
    checkpoint = latest_checkpoint(out)
    if checkpoint is None:
        raise ValueError(f"cannot resume {out}: it has no checkpoint yet")
    return checkpoint


def make_accelerator(device: str, mixed_precision: str = "no", unused_parameters: bool = False):
    """An HF Accelerate `Accelerator` for `device` (auto | cpu | cuda | mps); one process, or one per
    GPU under `accelerate launch`. `unused_parameters`: the model has weights no loss reaches (DDP
    must not wait for their gradients). ValueError when the device is not there."""
    import torch
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState, PartialState

    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but torch sees no CUDA GPU")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps was asked for, but torch sees no Apple GPU")
    # Accelerate keeps one process-wide state; a single process may train again with other settings.
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 and PartialState._shared_state:
        AcceleratorState._reset_state(reset_partial_state=True)
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if unused_parameters else []
    return Accelerator(cpu=device == "cpu", mixed_precision=mixed_precision, kwargs_handlers=handlers)
