"""The robot's memory: key poses from remember(), poses captured at gripper events, the call history;
stored in the episode file and shown by inspect."""
from __future__ import annotations

import json

import numpy as np

from recorders.memory import Memory
from recorders.pose import Pose


def test_memory_round_trips_through_json():
    m = Memory()
    m.remember("red cube start", Pose((0.5, 0.1, 0.02), (1.0, 0.0, 0.0, 0.0)), 0.0)
    m.capture("pick", "red cube", Pose((0.5, 0.1, 0.15), (0.0, 1.0, 0.0, 0.0)), 2.5)
    m.history.append('pick("red cube")')
    again = Memory.from_json(json.loads(json.dumps(m.to_json())))
    assert np.allclose(again.recall("red cube start").xyz, m.recall("red cube start").xyz)
    assert [k.key for k in again.captured] == ["pick red cube"] and again.history == ['pick("red cube")']


def test_a_recorded_swap_stores_its_memory_and_inspect_shows_it(tmp_path, capsys):
    from app.cli import main
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.episode_file import open_episode
    from recorders.task_suite import make_instance

    inst = make_instance("swap", 0)
    path = record_demo(inst, tmp_path / "swap_0000.h5", RecordOptions(obs="state")).path
    with open_episode(path) as ep:
        memory = Memory.from_json(ep.memory)
        first = ep.stream_data("object_poses")[0]
    a, b = inst.roles["A"], inst.roles["B"]
    names = list(inst.scene.object_names)
    assert list(memory.poses) == [f"{a} start", f"{b} start"]
    assert np.allclose(memory.recall(f"{a} start").xyz, first[names.index(a), :3], atol=1e-3)
    assert [k.source for k in memory.captured] == ["pick", "place"] * 3
    grasped = memory.captured[0]  # captured when the gripper closed: the cube still where it lay
    assert grasped.key == f"pick {a}" and np.allclose(grasped.pose.xyz, memory.recall(f"{a} start").xyz, atol=0.01)
    assert 0 < grasped.time < memory.captured[1].time
    assert memory.history == [c.code for c in inst.program]
    assert main(["inspect", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [k["key"] for k in summary["memory"]["poses"]] == [f"{a} start", f"{b} start"]
    assert main(["inspect", str(path)]) == 0
    assert f"{a} start" in capsys.readouterr().out
