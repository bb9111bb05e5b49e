"""Loading the planner's transformers folders safely: a `--base` checkpoint, and a saved planner
(scratch weights, or LoRA adapters on the base its planner.json names).

Owns every `from_pretrained` call of the planner. None runs a folder's own code
(`trust_remote_code=False`, and a folder whose configs carry `auto_map` is refused up front), none
reads pickled weights (`use_safetensors=True`; a folder with only .bin/.pt is refused), and a
saved planner's weights are checked against its config.json on torch's meta device before they
are allocated (a width of 10^9 is refused, not attempted). A folder's chat template is data: Jinja
that transformers renders in its sandbox (models/planner_chat.py reads the turn format off it). Every
failure is a ValueError with one line naming the folder; models/planner.py wraps the results in a
`Planner`.

    base folder  -> refuse_custom_code, require_safetensors, size check -> processor + model
    saved folder -> planner.json (PlannerConfig) -> [base + adapters | scratch weights] -> finite check
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from models.checkpoint_files import (check_finite, check_shape_counts, read_header, refuse_custom_code,
                                     require_safetensors)
from models.planner_config import PlannerConfig

PLANNER_FILE = "planner.json"
FORMAT = "code2act-planner"
SCRATCH_WEIGHTS = "model.safetensors"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
SAFE = dict(trust_remote_code=False, local_files_only=True)
SIZE_SLACK = 2  # a base whose config implies more than this many times the saved elements is refused


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _meta_model(config, build, path: Path, tensors: int):
    """`build(config)` on torch's meta device (no memory), after a cheap bound: a config asking for
    more layers than the file has tensors cannot match it."""
    import torch

    subs = [config, *(getattr(config, k, None) for k in ("text_config", "vision_config"))]
    layers = sum(int(getattr(c, "num_hidden_layers", 0) or 0) for c in subs if c is not None)
    if layers > tensors:
        raise ValueError(f"{path} does not match its config: {layers} layers asked for, {tensors} tensors saved")
    with torch.device("meta"):
        return build(config)


def check_base(base) -> list[Path]:
    """The weight files of a --base folder, after the checks that need no model library: a local
    transformers folder, no custom code, safetensors weights whose headers are whole."""
    base = Path(base)
    if not (base / "config.json").is_file():
        raise ValueError(f"--base {base} is not a local model folder (no config.json)")
    refuse_custom_code(base)
    return require_safetensors(base)


def load_pretrained(base) -> tuple[object, object]:
    """(processor, model) of a local pretrained image-text-to-text checkpoint."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    base = Path(base)
    files = check_base(base)
    headers = [read_header(p) for p in files]
    saved = sum(math.prod(i.shape) for h in headers for i in h.values())
    try:
        config = AutoConfig.from_pretrained(base, **SAFE)
        meta = _meta_model(config, AutoModelForImageTextToText.from_config, base, sum(map(len, headers)))
        wanted = sum(p.numel() for p in meta.parameters())
        if wanted > SIZE_SLACK * saved + 1_000_000:
            raise ValueError(f"{base} does not match its config: {wanted} parameters asked for, {saved} saved")
        processor = AutoProcessor.from_pretrained(base, **SAFE)
        model = AutoModelForImageTextToText.from_pretrained(base, use_safetensors=True, **SAFE)
    except Exception as e:  # a broken folder can fail anywhere inside transformers: one line, never a traceback
        raise ValueError(f"cannot load the image-text-to-text checkpoint in {base}: {first_line(e)}") from None
    if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
        raise ValueError(f"{base} has no image-text processor (processor_config.json + tokenizer)")
    return processor, model


def read_planner_config(folder: Path) -> PlannerConfig:
    try:
        meta = json.loads((folder / PLANNER_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise ValueError(f"{folder} is not a planner checkpoint (no readable {PLANNER_FILE})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{folder} is not a planner checkpoint (format {found!r})")
    try:
        return PlannerConfig.from_dict(meta.get("planner"))
    except ValueError as e:
        raise ValueError(f"{folder / PLANNER_FILE}: {e}") from None


def load_saved(folder: Path) -> tuple[PlannerConfig, object, object]:
    """(config, model, processor) of a saved planner folder."""
    from transformers import AutoProcessor, LlavaConfig, LlavaForConditionalGeneration

    config = read_planner_config(folder)
    refuse_custom_code(folder)
    try:
        if config.base:
            from peft import PeftModel

            if not Path(config.base).is_dir():
                raise ValueError(f"{folder} fine-tunes {config.base}, which is not there any more")
            read_header(folder / ADAPTER_WEIGHTS)
            model = PeftModel.from_pretrained(load_pretrained(config.base)[1], folder, use_safetensors=True)
        else:
            weights = folder / SCRATCH_WEIGHTS
            header = read_header(weights)
            llava = LlavaConfig.from_pretrained(folder, **SAFE)
            meta = _meta_model(llava, LlavaForConditionalGeneration, weights, len(header))
            check_shape_counts(weights, header, [tuple(p.shape) for p in meta.parameters()])
            model = LlavaForConditionalGeneration.from_pretrained(folder, use_safetensors=True, **SAFE)
        processor = AutoProcessor.from_pretrained(folder, **SAFE)
    except Exception as e:  # a broken folder can fail anywhere inside transformers: one line, never a traceback
        line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        named = isinstance(e, ValueError) and (str(folder) in line or bool(config.base and config.base in line))
        raise ValueError(line if named else f"cannot load the planner in {folder}: {first_line(e)}") from None
    check_finite(folder, dict(model.state_dict()))
    return config, model, processor
