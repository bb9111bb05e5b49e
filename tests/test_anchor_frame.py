"""models/anchor_frame.py: which point anchors a call, and exact round trips in numpy and torch."""
from __future__ import annotations

import numpy as np
import torch

from models.anchor_frame import (action_from_anchor, action_to_anchor, anchor_of, call_to_anchor, memory_to_anchor,
                                 state_to_anchor)
from models.call_encoding import CallEncoding, encode_memory, zone_pose
from models.policy_layout import MAX_OBJECTS, STATE_DIM
from recorders.robot_api_spec import Call

POSES = {"red cube": np.array([0.5, 0.1, 0.02, 1, 0, 0, 0], np.float32),
         "blue cube": np.array([0.4, -0.2, 0.02, 1, 0, 0, 0], np.float32),
         "green zone": zone_pose((0.6, 0.25))}


def test_anchor_is_the_target_else_the_object_else_the_origin():
    enc = CallEncoding()
    np.testing.assert_allclose(anchor_of(enc.encode(Call.from_code("pick('red cube')"), POSES)), [0.5, 0.1, 0.02])
    np.testing.assert_allclose(anchor_of(enc.encode(Call.from_code("place('red cube', 'green zone')"), POSES)),
                               [0.6, 0.25, 0.0])
    np.testing.assert_allclose(anchor_of(enc.encode(Call.from_code("place('red cube', 'blue cube')"), POSES)),
                               [0.4, -0.2, 0.02])
    recall = Call.from_code("place('red cube', recall('home'))")
    np.testing.assert_allclose(anchor_of(enc.encode(recall, POSES, resolved=POSES["blue cube"])), [0.4, -0.2, 0.02])
    np.testing.assert_allclose(anchor_of(enc.encode(recall, POSES, resolved=None)), [0.5, 0.1, 0.02])  # no memory
    assert not anchor_of(enc.encode(Call.from_code("home()"), POSES)).any()


def test_positions_move_to_the_anchor_frame_and_back_exactly():
    rng = np.random.default_rng(0)
    anchor = np.array([[0.5, 0.1, 0.02], [0.3, -0.1, 0.0]], np.float32)
    action = rng.normal(size=(2, 16, 8)).astype(np.float32)
    rel = action_to_anchor(action, anchor)
    np.testing.assert_allclose(rel[..., :3], action[..., :3] - anchor[:, None], atol=1e-6)
    np.testing.assert_array_equal(rel[..., 3:], action[..., 3:])
    np.testing.assert_allclose(action_from_anchor(rel, anchor), action, atol=1e-6)
    t = torch.from_numpy(action)
    torch.testing.assert_close(action_from_anchor(action_to_anchor(t, torch.from_numpy(anchor)),
                                                  torch.from_numpy(anchor)), t)

    state = rng.normal(size=(2, 2, STATE_DIM)).astype(np.float32)
    mask = np.zeros((2, MAX_OBJECTS), np.float32)
    mask[:, :2] = 1
    moved = state_to_anchor(state, mask, anchor)
    np.testing.assert_allclose(moved[..., 0:3], state[..., 0:3] - anchor[:, None], atol=1e-6)  # the TCP
    np.testing.assert_allclose(moved[..., 15:18], state[..., 15:18] - anchor[:, None], atol=1e-6)  # object 1
    np.testing.assert_array_equal(moved[..., 22:], state[..., 22:])  # absent objects keep their zeros
    np.testing.assert_array_equal(moved[..., 3:8], state[..., 3:8])  # rotation and gripper width

    call = CallEncoding().encode(Call.from_code("place('red cube', 'green zone')"), POSES)
    np.testing.assert_allclose(anchor_of(call_to_anchor(call, anchor_of(call))), 0, atol=1e-7)
    memory = encode_memory([POSES["red cube"]])
    rel_memory = memory_to_anchor(memory, anchor[0])
    np.testing.assert_allclose(rel_memory[:3], 0, atol=1e-7)
    np.testing.assert_array_equal(rel_memory[8:], memory[8:])  # empty slots stay zero
