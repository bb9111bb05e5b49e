"""The task suite: seeded instances, disjoint splits, valid oracle programs that succeed."""
from __future__ import annotations

import pytest

from models.program_check import check_program
from recorders.call_log import CallLog
from recorders.robot_api import RobotAPI
from recorders.task_suite import TASKS, TaskError, TaskMonitor, make_instance, split_of
from recorders.cell.sim_workcell import SimWorkcell


def combo(inst):
    if inst.task.id == "sort":
        return (inst.roles["K"], inst.roles["Z"].removesuffix(" zone"))
    return tuple(inst.roles[r].split()[0] for r in inst.task.roles)


def test_all_seven_tasks_exist_with_memory_and_held_out_flags():
    assert list(TASKS) == ["pick_place", "stack", "tower", "push", "swap", "restore", "sort"]
    assert {t.id for t in TASKS.values() if t.needs_memory} == {"swap", "restore"}
    assert {t.id for t in TASKS.values() if t.held_out} == {"tower", "restore"}


@pytest.mark.parametrize("task", list(TASKS))
def test_instances_are_deterministic_and_complete(task):
    a, b = make_instance(task, 7), make_instance(task, 7)
    assert a.scene == b.scene and a.instruction == b.instruction and a.program == b.program
    assert 3 <= len(a.scene.cubes) <= 5 and 2 <= len(a.scene.zones) <= 3
    names = set(a.scene.object_names) | set(a.scene.zone_names)
    for role, value in a.roles.items():
        if role in "ABCZ":
            assert value in names
    assert a.program[-1].name == "done"
    assert check_program(a.program_code, names) == []


@pytest.mark.parametrize("task", list(TASKS))
def test_train_and_test_splits_hold_back_colour_combinations(task):
    train = {combo(make_instance(task, s, "train")) for s in range(25)}
    test = {combo(make_instance(task, s, "test")) for s in range(25)}
    assert train and test and not (train & test)
    assert all(split_of(task, c) == "test" for c in test)


def test_memory_tasks_use_remember_and_recall():
    for task in ("swap", "restore"):
        names = [c.name for c in make_instance(task, 0).program]
        assert "remember" in names
        code = make_instance(task, 0).program_code
        assert "recall(" in code


def test_bad_task_seed_and_split_are_clear_errors():
    with pytest.raises(TaskError, match="unknown task 'stak'; tasks: pick_place, stack"):
        make_instance("stak", 0)
    with pytest.raises(TaskError, match="non-negative integer"):
        make_instance("stack", -1)
    with pytest.raises(TaskError, match="unknown split"):
        make_instance("stack", 0, "val")


@pytest.mark.parametrize("task", list(TASKS))
def test_oracle_program_solves_the_task(task):
    inst = make_instance(task, 1)
    with SimWorkcell(inst.scene) as cell:
        monitor = TaskMonitor(inst, cell.object_poses())
        assert not monitor.success(cell.object_poses())
        log = CallLog(clock=cell.arm.time)
        api = RobotAPI(cell, log, on_tick=lambda cmd: monitor.update(cell.object_poses()))
        api.run_program(inst.program)
        assert monitor.success(cell.object_poses())
        # Nested recall(...)/free_space(...) targets are logged as their own events, just before.
        expected = [code for c in inst.program for code in [*(a.code for a in c.args if hasattr(a, "code")), c.code]]
        assert [r.code for r in log.records] == expected
        assert all(r.status == "ok" for r in log.records)


def test_failed_calls_are_logged_with_their_reason():
    inst = make_instance("stack", 0)
    with SimWorkcell(inst.scene) as cell:
        log = CallLog(clock=cell.arm.time)
        api = RobotAPI(cell, log)
        from recorders.call_log import SkillFailed
        from recorders.robot_api_spec import Call

        a, b = inst.roles["A"], inst.roles["B"]
        with pytest.raises(SkillFailed):
            api.execute(Call("place", (a, b)))  # nothing held
        with pytest.raises(SkillFailed):
            api.execute(Call("recall", ("nothing here",)))
    assert [r.status for r in log.records] == ["failed", "failed"]
    assert "not holding" in log.records[0].reason
    assert "nothing remembered" in log.records[1].reason
