"""The low-level policy's input layout, defined once for training and live execution alike.

Owns the state row (arm pose, gripper width, object poses zero-padded to MAX_OBJECTS), the camera
names, the task vocabulary of the flat baseline, the observation window and the keys of one
policy item. models/policy_dataset.py cuts items from recorded episodes and
models/policy_features.py builds them frame by frame during a rollout, both through these
functions, so what the policy sees live is what it was trained on:
```
obs_state    (To, STATE_DIM)        float32  [EE_POSE | GRIPPER | object j at object_slice(j)]
object_mask  (MAX_OBJECTS,)         float32  1 for the episode's objects
anchor       (3,)                   float32  models/anchor_frame.py (flat: 0)
call         (CallEncoding.dim,)    float32  cond="call": models/call_encoding.py
function     ()                     int64    cond="call"
memory       (MEMORY_DIM,)          float32  cond="call" and memory
task         ()                     int64    cond="flat": index in TASK_VOCAB (len: unknown task)
goal         (GOAL_DIM,)            float32  cond="flat" and goal: what the instruction names (goal_vector)
front_rgb, wrist_rgb  (To, 3, H, W) uint8    obs="rgb"
```
No torch at import (the config and the CLI read the names); `policy_item` imports it when called.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from models.call_encoding import POSE_DIM
from recorders.task_suite import TASKS

OBS_KINDS = ("state", "rgb")
COND_KINDS = ("call", "flat")
CAMERAS = ("front_rgb", "wrist_rgb")
MAX_OBJECTS = 5
EE_POSE = slice(0, POSE_DIM)  # xyz + quaternion wxyz
GRIPPER = slice(POSE_DIM, POSE_DIM + 1)
PROPRIO_DIM = GRIPPER.stop
STATE_DIM = PROPRIO_DIM + POSE_DIM * MAX_OBJECTS
ACTION_DIM = 8  # TCP pose 7 + gripper command 1
TASK_VOCAB = tuple(TASKS)
PROPRIO_STREAMS = ("ee_pose", "gripper_width")  # the episode streams the state row starts with
GOAL_SLOTS = 3  # things an instruction names (tower: three cubes; sort: two cubes and a zone)
GOAL_SLOT_DIM = 1 + 2 * POSE_DIM  # [named, its pose now, its pose at the episode's first frame]
GOAL_DIM = GOAL_SLOTS * GOAL_SLOT_DIM


def object_slice(j: int) -> slice:
    """Where object j's pose lies in a state row."""
    return slice(PROPRIO_DIM + POSE_DIM * j, PROPRIO_DIM + POSE_DIM * (j + 1))


def state_rows(ee_pose: np.ndarray, gripper_width: np.ndarray, object_poses: np.ndarray) -> np.ndarray:
    """(N, STATE_DIM) float32 from ee_pose (N, 7), gripper_width (N,) or (N, 1) and object_poses
    (N, n_objects, 7) with n_objects <= MAX_OBJECTS (ValueError otherwise)."""
    ee = np.asarray(ee_pose, np.float32).reshape(-1, POSE_DIM)
    n = len(ee)
    objects = np.asarray(object_poses, np.float32).reshape(n, -1, POSE_DIM)
    if objects.shape[1] > MAX_OBJECTS:
        raise ValueError(f"{objects.shape[1]} objects; the policy takes at most {MAX_OBJECTS}")
    padded = np.zeros((n, MAX_OBJECTS, POSE_DIM), np.float32)
    padded[:, :objects.shape[1]] = objects
    return np.concatenate([ee, np.asarray(gripper_width, np.float32).reshape(n, 1), padded.reshape(n, -1)], 1)


def object_poses_of(state_row: np.ndarray, names) -> dict[str, np.ndarray]:
    """name -> (7,) pose of the named objects in one state row (in `names` order)."""
    return {name: np.asarray(state_row[object_slice(j)]) for j, name in enumerate(names)}


def object_mask(n_objects: int) -> np.ndarray:
    return (np.arange(MAX_OBJECTS) < n_objects).astype(np.float32)


def task_index(task: str) -> int:
    return TASK_VOCAB.index(task) if task in TASK_VOCAB else len(TASK_VOCAB)


def goal_vector(named, now: Mapping[str, np.ndarray], start: Mapping[str, np.ndarray]) -> np.ndarray:
    """(GOAL_DIM,) float32: for the first GOAL_SLOTS things the instruction names, in order of
    mention (models/instruction_check.mentioned), 1 and their poses now and at the episode's first
    frame (a zone's never changes); zeros in the slots left over. What the flat baseline knows of
    its instruction: which cubes and zones, and where they started (a swap needs both places)."""
    v = np.zeros((GOAL_SLOTS, GOAL_SLOT_DIM), np.float32)
    for k, name in enumerate(list(named)[:GOAL_SLOTS]):
        v[k, 0] = 1.0
        v[k, 1:1 + POSE_DIM] = now[name]
        v[k, 1 + POSE_DIM:] = start[name]
    return v.reshape(-1)


def observation_window(t: int, first: int, obs_horizon: int) -> np.ndarray:
    """(To,) frame indices t-To+1 .. t, clamped to the segment's first frame."""
    return np.maximum(np.arange(t - obs_horizon + 1, t + 1), first)


def policy_item(obs_state: np.ndarray, mask: np.ndarray, anchor: np.ndarray, *, call: np.ndarray | None = None,
                function: int | None = None, memory: np.ndarray | None = None, task: int | None = None,
                goal: np.ndarray | None = None, images: Mapping[str, np.ndarray] | None = None) -> dict:
    """One item (no batch dimension) in the layout above; `images`: camera -> (To, H, W, 3) uint8."""
    import torch

    item = {"obs_state": torch.from_numpy(np.asarray(obs_state, np.float32)),
            "object_mask": torch.from_numpy(np.asarray(mask, np.float32)),
            "anchor": torch.from_numpy(np.array(anchor, np.float32))}
    if call is not None:
        item["call"] = torch.from_numpy(np.asarray(call, np.float32))
        item["function"] = torch.tensor(function, dtype=torch.int64)
    if memory is not None:
        item["memory"] = torch.from_numpy(np.asarray(memory, np.float32))
    if task is not None:
        item["task"] = torch.tensor(task, dtype=torch.int64)
    if goal is not None:
        item["goal"] = torch.from_numpy(np.asarray(goal, np.float32))
    for cam, frames in (images or {}).items():
        item[cam] = torch.from_numpy(np.ascontiguousarray(np.asarray(frames).transpose(0, 3, 1, 2)))
    return item
