"""`record --robot franky-sim`: a scripted demo through franky against a franky-sim server process.

In its own module so that test_franky_sim's module-scoped server has released ports 1337/1338.
"""
from __future__ import annotations

import pytest

from franky_sim_support import demo_retaking_transients

RETAKES = 1  # a take ended by franky's transient planner error is recorded again, as the operator would


@pytest.mark.slow
def test_record_a_stack_demo_through_franky_and_franky_sim(tmp_path):
    """The real-arm code path (franky) records a successful oracle demo of `stack`."""
    from recorders.cell.registry import open_workcell
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.episode_file import episode_summary, open_episode
    from recorders.task_suite import make_instance

    loop_stats: list[dict] = []

    def open_measured(kind, spec, control_hz):
        """The workcell record_demo opens, keeping its server's loop statistics as it closes."""
        cell = open_workcell(kind, spec, control_hz)
        close = cell.close

        def close_measured() -> None:
            if cell.server.alive:
                loop_stats.append(cell.server.stats())
            close()
        cell.close = close_measured
        return cell

    inst = make_instance("stack", 0)
    result = demo_retaking_transients(
        lambda take: record_demo(inst, tmp_path / f"stack_{take}.h5", RecordOptions(robot="franky-sim", obs="rgb"),
                                 cell_factory=open_measured), loop_stats, RETAKES)
    assert result.success, result.failure
    with open_episode(result.path) as ep:
        s = episode_summary(ep)
    assert s["robot"] == "franky-sim" and s["success"] is True
    assert [c["code"] for c in s["calls"]] == [c.code for c in inst.program]
    assert s["segments"][0]["start"] == 0 and s["segments"][-1]["end"] == s["frames"]
    assert s["streams"]["front_rgb"]["count"] == s["frames"] > 50
