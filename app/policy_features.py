"""The live side of models/policy_dataset.py: policy inputs built frame by frame during a rollout.

Owns `FeatureBuilder`, which turns the observations of a running episode, the call being executed
and the robot API's memory into exactly the item PolicyDataset builds for the same frame of a
recorded episode (tests/test_policy_rollout.py replays a recording through both and compares), so
what the policy sees live is what it was trained on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from models.anchor_frame import anchor_of
from models.call_encoding import CallEncoding, encode_memory, zone_pose
from recorders.memory import Memory
from recorders.observation import Observation
from recorders.robot_api_spec import Call
from recorders.cell.scene import SceneSpec

if TYPE_CHECKING:
    from models.diffusion_policy import PolicyConfig


def state_row(ob: Observation, names: Sequence[str]) -> np.ndarray:
    """(STATE_DIM,) float32 as PolicyDataset stacks it: ee_pose 7, gripper width 1, object poses
    (float32, in `names` order) zero-padded to MAX_OBJECTS."""
    from models.policy_dataset import MAX_OBJECTS

    objects = np.zeros((MAX_OBJECTS, 7), np.float32)
    for j, name in enumerate(names):
        objects[j] = ob.object_poses[name].to_array().astype(np.float32)
    return np.concatenate([ob.state.ee_pose.to_array().astype(np.float32),
                           np.array([ob.state.gripper_width], np.float32), objects.reshape(-1)])


def remembered(memory: Memory) -> list[np.ndarray]:
    """The remembered poses, first-stored order, as the dataset's memory_at gives them."""
    return [kp.pose.to_array().astype(np.float32) for kp in memory.poses.values()]


class FeatureBuilder:
    """Policy inputs for the latest frame of a live episode, equal to the PolicyDataset item of the
    same frame. Frames are added one per control tick (the observation before its command)."""

    def __init__(self, config: "PolicyConfig", names: Sequence[str], zones: dict[str, np.ndarray], task: str):
        from models.policy_dataset import MAX_OBJECTS, TASK_VOCAB

        if len(names) > MAX_OBJECTS:
            raise ValueError(f"{len(names)} objects; the policy takes at most {MAX_OBJECTS}")
        self.config, self.names, self.zones = config, list(names), dict(zones)
        self.task_index = TASK_VOCAB.index(task) if task in TASK_VOCAB else len(TASK_VOCAB)
        self.object_mask = (np.arange(MAX_OBJECTS) < len(names)).astype(np.float32)
        self.encoding = CallEncoding()
        self.states: list[np.ndarray] = []  # (STATE_DIM,) per frame
        self.images: list[dict[str, np.ndarray]] = []  # stream name -> (H, W, 3) per frame
        self.call: Call | None = None
        self.resolved: np.ndarray | None = None
        self.call_start = 0
        self._anchor: np.ndarray | None = None  # the call's anchor, from its first frame (computed once)

    @staticmethod
    def for_scene(config: "PolicyConfig", scene: SceneSpec, task: str) -> "FeatureBuilder":
        return FeatureBuilder(config, scene.object_names, {z.name: zone_pose(z.position) for z in scene.zones}, task)

    def add_frame(self, state: np.ndarray, images: dict[str, np.ndarray] | None = None) -> int:
        self.states.append(np.asarray(state, np.float32))
        self.images.append(images or {})
        return len(self.states) - 1

    def drop_frame(self) -> None:
        """Forget the latest frame (observed, but no command followed it)."""
        self.states.pop()
        self.images.pop()

    def begin_call(self, call: Call | None, resolved: np.ndarray | None) -> None:
        """The next frame added is `call`'s first; `resolved`: the pose its nested recall/free_space
        target resolved to (None: no such target)."""
        self.call, self.resolved, self.call_start = call, resolved, len(self.states)
        self._anchor = None

    def _poses(self, t: int) -> dict[str, np.ndarray]:
        objects = self.states[t][8:].reshape(-1, 7)
        return {**self.zones, **{n: objects[j] for j, n in enumerate(self.names)}}

    def features(self, memory_poses: Sequence[np.ndarray] = ()) -> dict:
        """The item (no batch dimension) of the latest frame; see PolicyDataset for the layout."""
        import torch

        c, t = self.config, len(self.states) - 1
        if t < 0:
            raise ValueError("no frame observed yet")
        first = self.call_start if c.cond == "call" else 0  # flat: one segment over the episode
        obs_idx = np.maximum(np.arange(t - c.obs_horizon + 1, t + 1), first)  # (To,)
        item = {"obs_state": torch.from_numpy(np.stack([self.states[i] for i in obs_idx])),
                "object_mask": torch.from_numpy(self.object_mask), "anchor": torch.zeros(3)}
        if c.cond == "call":
            if self.call is None:
                raise ValueError("no call begun: cond='call' policies need one")
            targets_recall = any(isinstance(a, Call) and a.name == "recall" for a in self.call.args)
            resolved = self.resolved if c.memory or not targets_recall else None
            item["call"] = torch.from_numpy(self.encoding.encode(self.call, self._poses(t), resolved))
            if self._anchor is None:
                self._anchor = anchor_of(self.encoding.encode(self.call, self._poses(self.call_start), resolved))
            item["anchor"] = torch.from_numpy(self._anchor.copy())
            item["function"] = torch.tensor(self.encoding.functions.index(self.call.name), dtype=torch.int64)
            if c.memory:
                item["memory"] = torch.from_numpy(encode_memory(memory_poses))
        else:
            item["task"] = torch.tensor(self.task_index, dtype=torch.int64)
        if c.obs == "rgb":
            for cam in ("front_rgb", "wrist_rgb"):
                frames = np.stack([self.images[i][cam] for i in obs_idx])  # (To, H, W, 3)
                item[cam] = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
        return item
