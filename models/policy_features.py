"""The live side of models/policy_dataset.py: policy inputs built frame by frame during a rollout.

Owns `FeatureBuilder`, which turns the observations of a running episode, the call being executed
and the robot API's memory into exactly the item PolicyDataset builds for the same frame of a
recorded episode (tests/test_policy_rollout.py replays a recording through both and compares), so
what the policy sees live is what it was trained on. Both go through models/policy_layout.py (the
state row, the observation window, the item's keys); nothing here imports torch at module level,
a hardware SDK or Qt.

    observation (arm state, object poses[, camera frames]) -> state_row -> add_frame
    begin_call(call, resolved target) -> features(memory poses) -> item (no batch dimension)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from models.anchor_frame import anchor_of
from models.call_encoding import CallEncoding, encode_memory, zone_pose
from models.instruction_check import mentioned
from models.policy_layout import (CAMERAS, MAX_OBJECTS, goal_vector, object_mask, object_poses_of, observation_window,
                                  policy_item, state_rows, task_index)
from recorders.robot_api_spec import Call

if TYPE_CHECKING:
    from models.policy_config import PolicyConfig
    from recorders.cell.scene import SceneSpec
    from recorders.memory import Memory
    from recorders.observation import Observation


def state_row(ob: "Observation", names: Sequence[str]) -> np.ndarray:
    """(STATE_DIM,) float32 as PolicyDataset stacks it (models/policy_layout.state_rows), the
    objects in `names` order."""
    objects = np.stack([ob.object_poses[name].to_array() for name in names]) if names else np.zeros((0, 7))
    return state_rows(ob.state.ee_pose.to_array()[None], np.array([ob.state.gripper_width]), objects[None])[0]


def remembered(memory: "Memory") -> list[np.ndarray]:
    """The remembered poses, first-stored order, as the dataset's memory_at gives them."""
    return [kp.pose.to_array().astype(np.float32) for kp in memory.poses.values()]


class FeatureBuilder:
    """Policy inputs for the latest frame of a live episode, equal to the PolicyDataset item of the
    same frame. Frames are added one per control tick (the observation before its command)."""

    def __init__(self, config: "PolicyConfig", names: Sequence[str], zones: dict[str, np.ndarray], task: str,
                 instruction: str = ""):
        if len(names) > MAX_OBJECTS:
            raise ValueError(f"{len(names)} objects; the policy takes at most {MAX_OBJECTS}")
        self.config, self.names, self.zones = config, list(names), dict(zones)
        self.task_index = task_index(task)
        self.named = mentioned(instruction, self.names, list(self.zones))  # the flat policy's goal
        self.object_mask = object_mask(len(names))
        self.encoding = CallEncoding()
        self.states: list[np.ndarray] = []  # (STATE_DIM,) per frame
        self.images: list[dict[str, np.ndarray]] = []  # stream name -> (H, W, 3) per frame
        self.call: Call | None = None
        self.resolved: np.ndarray | None = None
        self.call_start = 0
        self._anchor: np.ndarray | None = None  # the call's anchor, from its first frame (computed once)

    @staticmethod
    def for_scene(config: "PolicyConfig", scene: "SceneSpec", task: str, instruction: str = "") -> "FeatureBuilder":
        return FeatureBuilder(config, scene.object_names, {z.name: zone_pose(z.position) for z in scene.zones}, task,
                              instruction)

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
        return {**self.zones, **object_poses_of(self.states[t], self.names)}

    def features(self, memory_poses: Sequence[np.ndarray] = ()) -> dict:
        """The item (no batch dimension) of the latest frame; see models/policy_layout.py."""
        c, t = self.config, len(self.states) - 1
        if t < 0:
            raise ValueError("no frame observed yet")
        first = self.call_start if c.cond == "call" else 0  # flat: one segment over the episode
        obs_idx = observation_window(t, first, c.obs_horizon)  # (To,)
        obs_state = np.stack([self.states[i] for i in obs_idx])
        images = {cam: np.stack([self.images[i][cam] for i in obs_idx]) for cam in CAMERAS} if c.obs == "rgb" else {}
        if c.cond != "call":
            goal = goal_vector(self.named, self._poses(t), self._poses(0)) if c.uses_goal else None
            return policy_item(obs_state, self.object_mask, np.zeros(3, np.float32), task=self.task_index,
                               goal=goal, images=images)
        if self.call is None:
            raise ValueError("no call begun: cond='call' policies need one")
        targets_recall = any(isinstance(a, Call) and a.name == "recall" for a in self.call.args)
        resolved = self.resolved if c.memory or not targets_recall else None
        if self._anchor is None:
            self._anchor = anchor_of(self.encoding.encode(self.call, self._poses(self.call_start), resolved))
        return policy_item(obs_state, self.object_mask, self._anchor, images=images,
                           call=self.encoding.encode(self.call, self._poses(t), resolved),
                           function=self.encoding.functions.index(self.call.name),
                           memory=encode_memory(memory_poses) if c.memory else None)
