"""The real-arm code path with eyes: franky drives franky-sim's arm, and the robot API's objects come
from the tracker on the cameras' RGB-D placed by hand-eye calibration, never from the simulator's
truth (which only judges success). A pick_place is recorded end to end with cameras and depth.

In its own module so that other franky-sim modules' servers have released ports 1337/1338.
"""
from __future__ import annotations

import numpy as np
import pytest

from franky_sim_support import demo_retaking_transients

RETAKES = 1


@pytest.mark.slow
def test_franky_sim_records_a_pick_place_with_perceived_objects_and_cameras(tmp_path):
    from app.workcell_setup import setup_opener
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.episode_file import open_episode
    from recorders.task_suite import make_instance

    opener = setup_opener("franky-sim", "perceived")
    loop_stats: list[dict] = []
    tracking_errors: list[float] = []

    def open_measured(kind, spec, control_hz):
        cell = opener(kind, spec, control_hz)
        assert cell.perceived_objects and set(cell.mounts) == {"front", "wrist"}  # calibrated, not the truth
        close = cell.close

        def close_measured() -> None:
            truth, seen = cell.true_object_poses(), cell.object_poses()
            tracking_errors.extend(float(np.linalg.norm(truth[n].xyz - seen[n].xyz)) for n in truth)
            if cell.inner.server.alive:
                loop_stats.append(cell.inner.server.stats())
            close()
        cell.close = close_measured
        return cell

    inst = make_instance("pick_place", 3)
    result = demo_retaking_transients(
        lambda take: record_demo(inst, tmp_path / f"pick_place_{take}.h5", RecordOptions(robot="franky-sim", obs="rgb"),
                                 cell_factory=open_measured), loop_stats, RETAKES)
    assert result.success, result.failure
    assert max(tracking_errors) < 0.02  # where each cube ended, as tracked
    with open_episode(result.path) as ep:
        assert ep.provenance.objects == "perceived" and ep.robot == "franky-sim"
        names = ep.stream_spec("object_poses").meta["names"]
        assert sorted(names) == sorted(inst.scene.object_names)
        for stream in ("front_rgb", "front_depth", "wrist_rgb", "wrist_depth"):
            assert ep.stream_count(stream) == ep.frames > 50
        assert ep.stream_spec("front_rgb").meta["mount"]["frame"] == "base"
        assert [c.code for c in ep.calls] == [c.code for c in inst.program]
