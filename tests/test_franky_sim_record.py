"""`record --robot franky-sim`: a scripted demo through franky against a franky-sim server process.

In its own module so that test_franky_sim's module-scoped server has released ports 1337/1338.
"""
from __future__ import annotations

import pytest

from recorders.sim.franky_sim_server import FrankySimUnavailable


@pytest.mark.slow
def test_record_a_stack_demo_through_franky_and_franky_sim(tmp_path):
    """The real-arm code path (franky) records a successful oracle demo of `stack`."""
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.episode_file import episode_summary, open_episode
    from recorders.task_suite import make_instance

    inst = make_instance("stack", 0)
    try:
        result = record_demo(inst, tmp_path / "stack.h5", RecordOptions(robot="franky-sim", obs="rgb"))
    except FrankySimUnavailable as e:
        pytest.skip(f"franky-sim cannot start here: {e}")
    assert result.success, result.failure
    with open_episode(result.path) as ep:
        s = episode_summary(ep)
    assert s["robot"] == "franky-sim" and s["success"] is True
    assert [c["code"] for c in s["calls"]] == [c.code for c in inst.program]
    assert s["segments"][0]["start"] == 0 and s["segments"][-1]["end"] == s["frames"]
    assert s["streams"]["front_rgb"]["count"] == s["frames"] > 50
