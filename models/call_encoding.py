"""Fixed-size vectors that condition the low-level policy on one robot-API call and on memory.

Owns the one layout of the call vector (`CallEncoding`), the memory feature (`encode_memory`) and
how memory is rebuilt from an episode's call log (`remembered_poses`, `memory_at`). Data flows
call (a `Call`) + poses of the named objects and zones at the current frame + the pose a nested
recall(...)/free_space(...) resolved to -> `CallEncoding.encode` -> (CallEncoding.dim,) float32.

Call vector layout (offsets for the default registry and colour vocabulary; `CallEncoding.slices`
is the source of truth):
```
[ 0:8 )  function   one-hot over recorders.robot_api_spec.vocabulary() (registry order)
[ 8:9 )  obj        1 if the call names an object
[ 9:16)             the object's pose now (xyz, quat wxyz)
[16:23)             one-hot over COLOUR_VOCAB ("other", then the scene colours)
[23:24)  target     1 if the target's pose is known (0: no target, or a recall without memory)
[24:28)             kind one-hot over TARGET_KINDS (object | zone | recall | free_space)
[28:35)             pose: an object's pose now, a zone's centre on the table (z = 0, identity
                    rotation), the remembered pose of recall(key), or the resolved free_space pose
[35:42)             colour one-hot of the target object/zone (free_space: of `near`; recall: "other")
[42:46)  direction  one-hot over DIRECTIONS (push)
[46:47)  distance   metres (push)
```
Memory feature: MEMORY_SLOTS slots of (pose 7, mask 1), remembered keys in the order they were
first stored, zero-padded; MEMORY_DIM floats.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from recorders.call_log import CallRecord
from recorders.robot_api_spec import API, DIRECTIONS, Call, vocabulary
from recorders.cell.scene import COLOURS

POSE_DIM = 7  # xyz + quaternion wxyz
COLOUR_VOCAB = ("other", *COLOURS)  # index 0: a name without a known colour word
TARGET_KINDS = ("object", "zone", "recall", "free_space")
MEMORY_SLOTS = 4
MEMORY_DIM = MEMORY_SLOTS * (POSE_DIM + 1)
_EPS_S = 1e-6  # calls and frames share one clock; this absorbs float round-off in logged times


def colour_index(name: str) -> int:
    """Index into COLOUR_VOCAB of a name's first word ("red cube 2" -> red), 0 when unknown."""
    word = name.split()[0] if name.split() else ""
    return COLOUR_VOCAB.index(word) if word in COLOUR_VOCAB[1:] else 0


def function_index(name: str) -> int:
    """Index of a function in registry order (the call vector's first one-hot)."""
    return vocabulary().index(name)


@dataclass(frozen=True)
class CallEncoding:
    """The call vector's layout; see the module docstring for the offsets."""

    functions: tuple[str, ...] = field(default_factory=lambda: tuple(vocabulary()))
    colours: tuple[str, ...] = COLOUR_VOCAB

    @property
    def slices(self) -> dict[str, slice]:
        widths = {"function": len(self.functions), "obj": 1 + POSE_DIM + len(self.colours),
                  "target": 1 + len(TARGET_KINDS) + POSE_DIM + len(self.colours),
                  "direction": len(DIRECTIONS), "distance": 1}
        out, at = {}, 0
        for name, w in widths.items():
            out[name] = slice(at, at + w)
            at += w
        return out

    @property
    def dim(self) -> int:
        return self.slices["distance"].stop

    def encode(self, call: Call, poses: Mapping[str, np.ndarray], resolved: np.ndarray | None = None) -> np.ndarray:
        """(dim,) float32 for `call`. `poses`: name -> (7,) pose of every object and zone the call may
        name; `resolved`: the pose of a nested recall/free_space target, None when unknown (zeros).
        ValueError when the call names something `poses` lacks or is not a registry function."""
        if call.name not in self.functions:
            raise ValueError(f"{call.code}: unknown function {call.name!r}")
        s, v = self.slices, np.zeros(self.dim, np.float32)
        v[s["function"].start + self.functions.index(call.name)] = 1.0
        for p, arg in zip(API[call.name].params, call.args):
            if p.type == "object":
                self._put_named(v, s["obj"].start, arg, poses, call)
            elif p.type == "target":
                self._put_target(v, s["target"].start, arg, poses, resolved, call)
            elif p.type == "direction":
                v[s["direction"].start + DIRECTIONS.index(arg)] = 1.0
            elif p.type == "distance":
                v[s["distance"].start] = float(arg)
        return v

    def _pose(self, name: str, poses: Mapping[str, np.ndarray], call: Call) -> np.ndarray:
        if name not in poses:
            raise ValueError(f"{call.code}: no pose for {name!r} in this episode")
        return np.asarray(poses[name], np.float32)

    def _put_named(self, v, at: int, name: str, poses, call: Call) -> None:
        """present, pose, colour one-hot from offset `at`."""
        v[at] = 1.0
        v[at + 1:at + 1 + POSE_DIM] = self._pose(name, poses, call)
        v[at + 1 + POSE_DIM + colour_index(name)] = 1.0

    def _put_target(self, v, at: int, target, poses, resolved, call: Call) -> None:
        if isinstance(target, Call):
            kind, colour_of = target.name, (target.args[0] if target.name == "free_space" else "")
        else:
            kind, colour_of = ("zone" if target.endswith(" zone") else "object"), target
        if kind not in TARGET_KINDS:
            raise ValueError(f"{call.code}: a target cannot be {kind}(...)")
        v[at + 1 + TARGET_KINDS.index(kind)] = 1.0
        pose_at = at + 1 + len(TARGET_KINDS)
        if isinstance(target, str):
            v[at] = 1.0
            v[pose_at:pose_at + POSE_DIM] = self._pose(target, poses, call)
        elif resolved is not None:
            v[at] = 1.0
            v[pose_at:pose_at + POSE_DIM] = np.asarray(resolved, np.float32)
        v[pose_at + POSE_DIM + colour_index(colour_of)] = 1.0


def zone_pose(xy: Sequence[float]) -> np.ndarray:
    """A zone's centre on the table top (z = 0), identity rotation: (7,) float32."""
    return np.array([xy[0], xy[1], 0.0, 1.0, 0.0, 0.0, 0.0], np.float32)


def remembered_poses(calls: Sequence[CallRecord], times: np.ndarray, object_poses: np.ndarray,
                     names: Sequence[str]) -> list[tuple[float, str, np.ndarray]]:
    """(time, key, pose) of every successful remember(key, obj) in the log, oldest first. The pose is
    the object's pose at the first control frame at or after the call (the observation the skill
    read). `times`: (N,) frame times; `object_poses`: (N, n_objects, 7)."""
    events = []
    for c in calls:
        if c.name != "remember" or c.status != "ok" or len(c.args) != 2:
            continue
        key, obj = c.args
        if obj not in names:
            continue
        frame = min(int(np.searchsorted(times, c.t_start - _EPS_S, side="left")), len(times) - 1)
        events.append((c.t_start, str(key), np.asarray(object_poses[frame, list(names).index(obj)], np.float32)))
    return sorted(events, key=lambda e: e[0])


def memory_at(events: Sequence[tuple[float, str, np.ndarray]], time: float) -> dict[str, np.ndarray]:
    """key -> pose remembered by `time` (the latest store wins; keys in first-stored order)."""
    out: dict[str, np.ndarray] = {}
    for t, key, pose in events:
        if t <= time + _EPS_S:
            out[key] = pose
    return out


def encode_memory(poses: Sequence[np.ndarray], slots: int = MEMORY_SLOTS) -> np.ndarray:
    """(slots * 8,) float32: per slot the pose and a mask of 1; the first `slots` poses, zero-padded."""
    v = np.zeros((slots, POSE_DIM + 1), np.float32)
    for i, pose in enumerate(list(poses)[:slots]):
        v[i, :POSE_DIM] = pose
        v[i, POSE_DIM] = 1.0
    return v.reshape(-1)
