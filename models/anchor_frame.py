"""The call's anchor frame: positions seen from the place a call is about.

Owns one choice of the low-level policy's coordinates. A call is anchored at its target's position
when it has one (place: the zone centre, the object to stack on, the remembered or free pose), else
at its object's position (pick, push), else at the world origin (home, and the flat baseline); the
anchor is taken at the call's first frame and stays fixed while the call runs. Every position the
policy sees or emits (end-effector and object positions in the state, the call's object and target
positions, remembered positions, and the action's TCP position) is then given relative to the
anchor. Rotations, widths and flags are unchanged.

Why: a demonstrated pick always ends with the TCP at the object, wherever the object lies. In the
anchor frame that end point is the same for every demonstration, so the network does not have to
learn to copy a position from its condition into its output to millimetre precision; it learns
one approach shape instead of one per table position.

Works on numpy arrays and torch tensors alike, with any leading batch dimensions:
```
anchor       (..., 3)
obs_state    (..., To, STATE_DIM)   models/policy_layout.py: ee xyz first, object j's xyz at object_slice(j)
object_mask  (..., MAX_OBJECTS)
action       (..., Tp, 8)           TCP xyz at [0:3]
call         (..., CallEncoding.dim)
memory       (..., MEMORY_DIM)      slot i's xyz at [8i : 8i + 3], its mask at 8i + 7
```
"""
from __future__ import annotations

import numpy as np

from models.call_encoding import MEMORY_SLOTS, POSE_DIM, CallEncoding
from models.policy_layout import EE_POSE, PROPRIO_DIM, object_slice

FRAMES = ("world", "anchor")
_SLICES = CallEncoding().slices
_OBJ_FLAG = _SLICES["obj"].start
_OBJ_XYZ = _OBJ_FLAG + 1
_TARGET_FLAG = _SLICES["target"].start
_TARGET_XYZ = _TARGET_FLAG + 1 + 4  # after the flag and the kind one-hot (TARGET_KINDS)


def anchor_of(call_vector: np.ndarray) -> np.ndarray:
    """(3,) float32: the anchor of an encoded call (its target, else its object, else the origin)."""
    v = np.asarray(call_vector, np.float32)
    if v[_TARGET_FLAG] > 0.5:
        return v[_TARGET_XYZ:_TARGET_XYZ + 3].copy()
    if v[_OBJ_FLAG] > 0.5:
        return v[_OBJ_XYZ:_OBJ_XYZ + 3].copy()
    return np.zeros(3, np.float32)


def _copy(x):
    return x.clone() if hasattr(x, "clone") else np.array(x, copy=True)


def _shift(x, at: int, anchor, weight=None):
    """x[..., at:at+3] -= anchor (* weight): `anchor` broadcasts over x's leading dims."""
    delta = anchor if weight is None else anchor * weight[..., None]
    x[..., at:at + 3] = x[..., at:at + 3] - delta
    return x


def state_to_anchor(obs_state, object_mask, anchor):
    """obs_state (..., To, D) with the ee and (present) object positions relative to `anchor` (..., 3)."""
    out, a = _copy(obs_state), anchor[..., None, :]
    _shift(out, EE_POSE.start, a)
    n_objects = (out.shape[-1] - PROPRIO_DIM) // POSE_DIM
    for j in range(n_objects):
        _shift(out, object_slice(j).start, a, object_mask[..., None, j])
    return out


def call_to_anchor(call, anchor):
    """The call vector with its object and target positions (where present) relative to `anchor`."""
    out = _copy(call)
    _shift(out, _OBJ_XYZ, anchor, call[..., _OBJ_FLAG])
    return _shift(out, _TARGET_XYZ, anchor, call[..., _TARGET_FLAG])


def memory_to_anchor(memory, anchor):
    """The memory feature with each stored slot's position relative to `anchor`."""
    out = _copy(memory)
    width = POSE_DIM + 1
    for i in range(MEMORY_SLOTS):
        _shift(out, width * i, anchor, memory[..., width * i + POSE_DIM])
    return out


def action_to_anchor(action, anchor):
    """Actions (..., Tp, 8) with the TCP position relative to `anchor`."""
    return _shift(_copy(action), 0, anchor[..., None, :])


def action_from_anchor(action, anchor):
    """The inverse of action_to_anchor: back to robot coordinates."""
    return _shift(_copy(action), 0, -anchor[..., None, :])
