"""Interventions of a supervised run: where the operator stepped in, and which call it corrected.

An `Intervention` is one stretch (or, for an edit or a skip, one instant) of a take in which the
operator overrode the planner or the policy:
```
takeover   the operator drove the arm (teleop or the skill palette) while the policy was stopped
edit       the operator changed the call the planner proposed before it ran
skip       the operator dropped a proposed call
abort      the operator stopped the running call
```
`call` is the canonical code of the call the intervention corrected, so a take-over's teleop
stretch can be labelled with it and train the policy later. The take logs interventions as they
end (recorders/take.py); the episode file keeps them as JSON rows (/interventions) and readers get
them back as frozen records. `takeover_frames` tells which control frames the operator drove, on the
convention of recorders/segmentation.py (a frame belongs to a stretch when its time lies in
[t_start, t_end)), so training can pick out the segments a take-over corrected.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np

KINDS = ("takeover", "edit", "skip", "abort")


class InterventionError(ValueError):
    """A stored intervention is malformed; the message says which field."""


@dataclass(frozen=True)
class Intervention:
    kind: str  # one of KINDS
    call: str  # canonical code of the call it corrected ("" when no call was running or proposed)
    t_start: float  # seconds on the take's clock
    t_end: float  # == t_start for an edit or a skip
    reason: str = ""  # what the operator said, if anything
    replacement: str = ""  # edit: the code that ran instead

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InterventionError(f"intervention kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for name in ("t_start", "t_end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InterventionError(f"intervention {name} must be a finite number, got {value!r}")
        if self.t_end < self.t_start:
            raise InterventionError(f"intervention ends ({self.t_end}) before it starts ({self.t_start})")
        if self.kind == "edit" and not self.replacement:
            raise InterventionError("an edit intervention names the code that ran instead (replacement)")

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "Intervention":
        """The intervention of a `to_dict()` dict; InterventionError naming the bad field otherwise."""
        if not isinstance(d, dict):
            raise InterventionError(f"an intervention must be an object, got {type(d).__name__}")
        missing = [k for k in ("kind", "call", "t_start", "t_end") if k not in d]
        if missing:
            raise InterventionError(f"intervention {str(d)[:80]} lacks {', '.join(missing)}")
        return Intervention(str(d["kind"]), str(d["call"]), d["t_start"], d["t_end"], str(d.get("reason", "")),
                            str(d.get("replacement", "")))


def takeover_frames(interventions: Iterable[Intervention], frame_times) -> np.ndarray:
    """(N,) bool: True where frame i's time lies in [t_start, t_end) of a takeover intervention."""
    times = np.asarray(frame_times, dtype=float)  # (N,)
    taken = np.zeros(times.shape, dtype=bool)
    for i in interventions:
        if i.kind == "takeover":
            taken |= (times >= i.t_start) & (times < i.t_end)
    return taken
