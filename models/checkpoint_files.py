"""Checks on a model folder's files before anything is built from them: nothing is unpickled, no
remote code runs, and no tensor is allocated for weights that cannot be right.

Owns reading a safetensors header without torch (`read_header`: the names, dtypes and shapes of
the tensors, and a check that every tensor's bytes lie inside the file, so a truncated file or a
pickle renamed to .safetensors is refused by its first bytes), comparing it with the shapes a
config implies (`check_shapes`, `check_shape_counts`), refusing transformers folders that carry
custom code (`refuse_custom_code`: an `auto_map` in any of their JSON configs) or only pickled
weights (`require_safetensors`), and refusing weights that are not finite (`check_finite`).
Every failure is a ValueError with one line naming the file and the problem.

    folder -> refuse_custom_code, require_safetensors -> read_header -> check_shapes (config on
    torch's meta device: no memory) -> load -> check_finite
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
_CONFIGS = ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json",
            "adapter_config.json")


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]


def read_header(path) -> dict[str, TensorInfo]:
    """name -> TensorInfo of a safetensors file; ValueError when it is not one or is cut short."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            n = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
                raise ValueError(f"{path} is not a safetensors file (its first bytes do not give a header that fits "
                                 f"in its {size} bytes; a pickled or truncated file?)")
            raw = f.read(n)
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"{path} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file (its header is not a JSON object)")
    data_bytes, out = size - 8 - n, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
            width = DTYPE_BYTES[dtype]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor {name!r} has a malformed header entry") from None
        if min(shape, default=0) < 0 or not 0 <= start <= end or end - start != width * math.prod(shape):
            raise ValueError(f"{path}: tensor {name!r} has inconsistent offsets for shape {list(shape)}")
        if end > data_bytes:
            raise ValueError(f"{path} is truncated: tensor {name!r} ends at byte {end} of {data_bytes}")
        out[name] = TensorInfo(dtype, shape)
    return out


def _few(names: Iterable[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check_shapes(path, header: Mapping[str, TensorInfo], expected: Mapping[str, tuple[int, ...]]) -> None:
    """ValueError unless the file holds exactly the `expected` tensors (name -> shape)."""
    missing, unexpected = set(expected) - set(header), set(header) - set(expected)
    if missing:
        raise ValueError(f"{path} lacks tensor(s) {_few(missing)} that its config implies")
    if unexpected:
        raise ValueError(f"{path} holds tensor(s) {_few(unexpected)} that its config does not have")
    wrong = [n for n in expected if tuple(expected[n]) != header[n].shape]
    if wrong:
        n = sorted(wrong)[0]
        raise ValueError(f"{path} does not match its config: {n} is {list(header[n].shape)} in the file, "
                         f"{list(expected[n])} by the config ({len(wrong)} tensor(s) differ)")


def check_shape_counts(path, header: Mapping[str, TensorInfo], expected: Iterable[tuple[int, ...]]) -> None:
    """ValueError unless the file's tensor shapes are, as a multiset, `expected` (for models whose
    saved names differ from their parameter names)."""
    have, want = Counter(i.shape for i in header.values()), Counter(tuple(s) for s in expected)
    if have != want:
        extra, lacking = have - want, want - have
        odd = next(iter(extra or lacking))
        detail = f"e.g. the file has {list(odd)}" if extra else f"e.g. it lacks {list(odd)}"
        raise ValueError(f"{path} does not match its config: {sum(have.values())} tensors in the file, "
                         f"{sum(want.values())} by the config; {detail}")


def refuse_custom_code(folder) -> None:
    """ValueError when a transformers folder asks for its own model code (auto_map): it is never run."""
    folder = Path(folder)
    for name in _CONFIGS:
        path = folder / name
        if not path.is_file():
            continue
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            raise ValueError(f"{path} is not readable JSON") from None
        if isinstance(config, dict) and "auto_map" in config:
            raise ValueError(f"{folder} ships its own model code ({name} has auto_map); custom code is never run: "
                             "use a checkpoint of a model transformers knows")


def require_safetensors(folder) -> list[Path]:
    """The folder's *.safetensors files (each header checked); ValueError when there are none
    (pickled weights such as .bin/.pt are never loaded)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for pattern in PICKLED for p in folder.glob(pattern))
        raise ValueError(f"{folder} has no .safetensors weights" + (f" (only pickled {', '.join(pickled[:3])}, which "
                                                                     "are never loaded)" if pickled else ""))
    for path in files:
        read_header(path)
    return files


def check_finite(path, tensors: Mapping) -> None:
    """ValueError naming a tensor (torch) that holds NaN or inf."""
    import torch

    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{path}: weight {name} holds NaN or inf (the training diverged); refusing it")
