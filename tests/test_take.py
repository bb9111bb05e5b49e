"""One take: ticks pair the command the safety layer sent with the observation before it; finish,
discard and provenance."""
from __future__ import annotations

import numpy as np
import pytest

from recorders.arms.base import ArmCommand
from recorders.cell.registry import open_workcell
from recorders.episode_file import find_partials, open_episode
from recorders.episode_meta import ModelRef, Provenance
from recorders.observation import observe
from recorders.robot_api_spec import Call
from recorders.safety import SafetyLimits
from recorders.skills import Motion
from recorders.take import Take
from recorders.task_suite import make_instance

INST = make_instance("stack", 0)
BOX_MAX_Y = 0.1  # m: a workspace box whose left wall the motion below runs into


@pytest.fixture
def cell():
    limits = SafetyLimits(workspace_max=(0.8, BOX_MAX_Y, 0.7))
    with open_workcell("sim", INST.scene, 10.0, safety=limits) as c:
        yield c


def take_of(cell, tmp_path, **kw) -> Take:
    return Take(tmp_path / "ep.h5", cell, Provenance("script", "sim"), obs="state", control_hz=10.0, inst=INST, **kw)


def test_a_skill_command_outside_the_workspace_is_stored_clamped(cell, tmp_path):
    with take_of(cell, tmp_path) as take:
        observed = []
        motion = Motion(cell, on_tick=lambda sent: take.tick(sent, observed[-1]),
                        before_tick=lambda: observed.append(observe(cell, cameras=False)))
        start = motion.target.xyz
        motion.move((start[0], 0.3, start[2]), speed=0.3)  # asks for y = 0.3, beyond the box
        requested_y = motion.target.xyz[1]
        result = take.finish()
    assert requested_y == pytest.approx(0.3)
    with open_episode(result.path) as ep:
        action, ee = ep.stream_data("action")[:], ep.stream_data("ee_pose")[:]
        assert np.array_equal(ep.stream_time("action"), ep.stream_time("ee_pose"))
    assert action[:, 1].max() <= BOX_MAX_Y + 1e-6  # what the arm was sent, not what the skill asked for
    assert action[-1, 1] == pytest.approx(BOX_MAX_Y, abs=1e-6)
    assert ee[0] == pytest.approx(observed[0].state.ee_pose.to_array(), abs=1e-6)  # the state before the command


def test_finish_labels_the_calls_and_stores_the_provenance(cell, tmp_path):
    provenance = Provenance("policy", "sim", (ModelRef("policy", "runs/p", "runs/p/ckpt"),))
    with Take(tmp_path / "ep.h5", cell, provenance, obs="state", control_hz=10.0, inst=INST) as take:
        take.log.open_call(Call("home"))
        for _ in range(3):
            ob = observe(cell, cameras=False)
            take.tick(cell.arm.command(_hold(ob)), ob)
            cell.arm.wait_tick()
        result = take.finish()  # closes the open hotkey stretch
    assert result.frames == 3 and result.success is False and [c.status for c in result.calls] == ["ok"]
    with open_episode(result.path) as ep:
        assert ep.provenance == provenance and ep.meta.scene == INST.scene and dict(ep.meta.roles) == INST.roles
        assert ep.meta.program == INST.program_code
        assert [(s.start, s.end, s.code) for s in ep.labels] == [(0, 3, "home()")]


def test_a_take_without_ticks_or_discarded_leaves_nothing(cell, tmp_path):
    with take_of(cell, tmp_path) as take:
        assert take.finish().path is None
    with take_of(cell, tmp_path) as take:
        take.log.open_call(Call("home"))
        ob = observe(cell, cameras=False)
        take.tick(cell.arm.command(_hold(ob)), ob)
        take.discard()
    assert list(tmp_path.iterdir()) == []


def test_leaving_without_finish_keeps_a_recoverable_partial(cell, tmp_path):
    with pytest.raises(RuntimeError):
        with take_of(cell, tmp_path) as take:
            ob = observe(cell, cameras=False)
            take.tick(cell.arm.command(_hold(ob)), ob)
            raise RuntimeError("unplugged")
    assert [p.name for p in find_partials(tmp_path)] == ["ep.h5.partial"]


def test_a_failed_program_is_not_a_success_whatever_the_objects_show(cell, tmp_path):
    with take_of(cell, tmp_path) as take:
        ob = observe(cell, cameras=False)
        take.tick(cell.arm.command(_hold(ob)), ob)
        assert take.finish(failed=True).success is False


def _hold(ob) -> ArmCommand:
    return ArmCommand(ob.state.ee_pose, ob.state.gripper_closed)
