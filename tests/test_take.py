"""One take: ticks pair the command the safety layer sent with the observation before it; finish,
discard and provenance."""
from __future__ import annotations

import numpy as np
import pytest

from recorders.arms.base import ArmCommand
from recorders.cell.registry import open_workcell
from recorders.episode_file import EpisodeError, episode_summary, open_episode
from recorders.episode_recovery import find_partials, recover_partial
from recorders.episode_meta import ModelRef, Provenance
from recorders.intervention import Intervention, InterventionError
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


def test_interventions_are_stored_as_they_end_and_survive_a_killed_take(cell, tmp_path):
    takeover = Intervention("takeover", 'pick("red cube")', 1.0, 2.5, "the gripper missed the cube")
    edit = Intervention("edit", 'place("red cube", "blue zone")', 3.0, 3.0,
                        replacement='place("red cube", "green cube")')
    with take_of(cell, tmp_path) as take:
        _ticks(cell, take, 2)
        take.log_intervention(takeover)
        take.log_intervention(edit)
        path = take.finish().path
    with open_episode(path) as ep:
        assert ep.interventions == (takeover, edit)
        assert episode_summary(ep)["interventions"][0] == takeover.to_dict()
    with pytest.raises(RuntimeError):  # killed mid-take: what was logged is recovered with the frames
        with Take(tmp_path / "killed.h5", cell, Provenance("policy", "sim"), obs="state", control_hz=10.0,
                  inst=INST) as take:
            _ticks(cell, take, 2)
            take.log_intervention(takeover)
            take.writer.close_unfinished()  # what a crash leaves: everything flushed, never finished
            raise RuntimeError("killed")
    with open_episode(recover_partial(tmp_path / "killed.h5.partial")) as ep:
        assert ep.interventions == (takeover,)


def test_a_malformed_intervention_is_refused_when_made_and_when_read(cell, tmp_path):
    with pytest.raises(InterventionError, match="kind"):
        Intervention("nudge", "home()", 0.0, 1.0)
    with pytest.raises(InterventionError, match="ends"):
        Intervention("takeover", "home()", 2.0, 1.0)
    with pytest.raises(InterventionError, match="replacement"):
        Intervention("edit", "home()", 1.0, 1.0)
    with take_of(cell, tmp_path) as take:
        _ticks(cell, take, 1)
        take.writer.log_intervention({"kind": "takeover", "call": "home()", "t_start": "soon", "t_end": 1.0})
        path = take.finish().path
    with open_episode(path) as ep:
        with pytest.raises(EpisodeError, match="interventions are malformed.*t_start"):
            ep.interventions


def _ticks(cell, take: Take, n: int) -> None:
    for _ in range(n):
        ob = observe(cell, cameras=False)
        take.tick(cell.arm.command(_hold(ob)), ob)
        cell.arm.wait_tick()


def _hold(ob) -> ArmCommand:
    return ArmCommand(ob.state.ee_pose, ob.state.gripper_closed)


@pytest.mark.parametrize("quality", [None, "high"])
def test_rendered_cameras_are_kept_as_rendered_unless_a_video_quality_is_chosen(cell, tmp_path, quality):
    with Take(tmp_path / "ep.h5", cell, Provenance("script", "sim"), obs="rgb", control_hz=10.0, inst=INST,
              video_quality=quality) as take:
        rendered = []
        for _ in range(4):
            ob = observe(cell, cameras=True)
            rendered.append(ob.images["front"][0])
            take.tick(cell.arm.command(_hold(ob)), ob)
            cell.arm.wait_tick()
        result = take.finish()
    with open_episode(result.path) as ep:
        stored = ep.stream_data("front_rgb")[:]
        if quality is None:  # default: exactly what the policy sees live
            assert ep.format_version == 1 and ep.stream_encoding("front_rgb") is None
            assert np.array_equal(stored, np.stack(rendered))
        else:
            assert ep.format_version == 2 and ep.stream_encoding("front_rgb")["crf"] == 18
            assert ep.stream_encoding("front_rgb")["pix_fmt"] == "yuv444p"  # small frames keep full colour
            assert np.abs(stored.astype(int) - np.stack(rendered)).mean() < 1.5
