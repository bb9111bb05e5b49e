"""The policy's normalisation stats: per-dimension min/max saved beside a checkpoint as JSON.

Owns `NormStats` (computed from training windows by models/policy_dataset.py, stored in
norm_stats.json, applied by models/diffusion_policy.py) and its checks: stats that are not finite
(a NaN that reached them poisons every prediction) are refused when computed and when loaded.
No torch at import: a tensor is recognised when one is passed.

    training windows -> NormStats.from_arrays -> save (norm_stats.json) -> load -> normalize / unnormalize
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NORM_STATS_FILE = "norm_stats.json"
NORM_STATS_VERSION = 1
RANGE_EPS = 1e-4  # stats without a floor (older checkpoints): a dim varying less than this is only centred
MIN_HALF_RANGE = 0.05  # metres, quaternion and gripper units: the smallest half-range a dimension is scaled by


def _is_tensor(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


@dataclass(frozen=True)
class NormStats:
    """Per-dimension min/max of each normalised key ("action", "obs_state"), mapping to [-1, 1].
    Half-ranges are floored at `min_half_range` (MIN_HALF_RANGE for new stats): a dimension that
    barely varies in the demonstrations (the tilt of a top-down gripper, a few millimetres of sensor
    noise) would otherwise turn a small deviation live into a huge input. Stats saved before the
    floor (min_half_range 0) keep their rule: a dimension varying less than RANGE_EPS is only
    centred (half-range 1). ValueError naming the key when a value is not finite."""

    mins: dict[str, tuple[float, ...]]
    maxs: dict[str, tuple[float, ...]]
    min_half_range: float = 0.0

    def __post_init__(self):
        for name, table in (("min", self.mins), ("max", self.maxs)):
            for key, values in table.items():
                bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
                if bad:
                    raise ValueError(f"normalisation stats: {name} of {key!r} is not finite in dimension(s) "
                                     f"{', '.join(map(str, bad[:5]))} (the training data held NaN or inf)")
        if not math.isfinite(self.min_half_range) or self.min_half_range < 0:
            raise ValueError(f"normalisation stats: min_half_range must be >= 0, got {self.min_half_range!r}")

    @staticmethod
    def from_arrays(arrays: dict[str, np.ndarray], min_half_range: float = MIN_HALF_RANGE) -> "NormStats":
        """Stats of `arrays`: key -> (N, D) rows."""
        if any(len(a) == 0 for a in arrays.values()):
            raise ValueError("cannot compute normalisation stats from no samples")
        return NormStats({k: tuple(map(float, a.min(0))) for k, a in arrays.items()},
                         {k: tuple(map(float, a.max(0))) for k, a in arrays.items()}, float(min_half_range))

    def width(self, key: str) -> int:
        """How many dimensions the stats of `key` cover."""
        return len(self.mins[key])

    def _centre_half(self, key: str, like):
        if key not in self.mins:
            raise KeyError(f"no normalisation stats for {key!r}; have {', '.join(self.mins)}")
        lo, hi = np.asarray(self.mins[key], np.float64), np.asarray(self.maxs[key], np.float64)
        half = (hi - lo) / 2
        if self.min_half_range > 0:
            half = np.maximum(half, self.min_half_range)
        else:
            half[half < RANGE_EPS / 2] = 1.0
        centre = (hi + lo) / 2
        if _is_tensor(like):
            import torch

            return (torch.as_tensor(centre, dtype=like.dtype, device=like.device),
                    torch.as_tensor(half, dtype=like.dtype, device=like.device))
        dtype = np.asarray(like).dtype if np.issubdtype(np.asarray(like).dtype, np.floating) else np.float32
        return centre.astype(dtype), half.astype(dtype)

    def normalize(self, key: str, x):
        """x (..., D), numpy or torch -> [-1, 1] over the stats' range."""
        centre, half = self._centre_half(key, x)
        return (x - centre) / half

    def unnormalize(self, key: str, x):
        centre, half = self._centre_half(key, x)
        return x * half + centre

    def to_json(self) -> dict:
        return {"format_version": NORM_STATS_VERSION, "min": {k: list(v) for k, v in self.mins.items()},
                "max": {k: list(v) for k, v in self.maxs.items()}, "min_half_range": self.min_half_range}

    @staticmethod
    def from_json(d: dict) -> "NormStats":
        if not isinstance(d, dict) or d.get("format_version") != NORM_STATS_VERSION:
            raise ValueError(f"not normalisation stats of format version {NORM_STATS_VERSION}")
        try:
            mins = {str(k): tuple(map(float, v)) for k, v in d["min"].items()}
            maxs = {str(k): tuple(map(float, v)) for k, v in d["max"].items()}
            min_half_range = float(d.get("min_half_range", 0.0))
        except (KeyError, AttributeError, TypeError, ValueError) as e:
            raise ValueError(f"normalisation stats are malformed ({type(e).__name__}: {e})") from None
        if mins.keys() != maxs.keys() or any(len(mins[k]) != len(maxs[k]) for k in mins):
            raise ValueError("normalisation stats: min and max disagree in keys or sizes")
        return NormStats(mins, maxs, min_half_range)

    def save(self, path) -> Path:
        """Write JSON atomically; `path` may be a checkpoint folder (then NORM_STATS_FILE inside it)."""
        path = Path(path)
        path = path / NORM_STATS_FILE if path.is_dir() else path
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1), encoding="utf-8")
        os.replace(tmp, path)
        return path

    @staticmethod
    def load(path) -> "NormStats":
        """Stats from a file or checkpoint folder; ValueError (one line) when unreadable or not finite."""
        path = Path(path)
        path = path / NORM_STATS_FILE if path.is_dir() else path
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{path} is not readable normalisation stats ({type(e).__name__})") from None
        return NormStats.from_json(d)
