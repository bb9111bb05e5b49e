"""A supervised Run (app/run_session.py) on the real-arm code path: the oracle program of `restore` run by
the scripted skills through franky against a franky-sim server process. The operator approves the
first calls in step mode, switches to auto, and pauses and resumes once between calls.

In its own module so that test_franky_sim's module-scoped server has released ports 1337/1338. Waits
are on the session's condition, never on the wall clock; only the server's measured loop rate
decides a skip (tests/franky_sim_support.py).
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from franky_sim_support import MIN_REALTIME_FACTOR_DEMO, TRANSIENT_PLANNER_ERROR, skip_if_below_real_time
from recorders.safety import EVENT_WATCHDOG
from recorders.sim.franky_sim_server import FrankySimUnavailable

pytestmark = pytest.mark.slow

WAIT_S = 300.0  # generous: a loaded machine only makes a wait longer, never the test wrong
ENDED = ("finished", "failed")
RETAKES = 1  # a run ended by franky's transient planner error is run again, as the operator would


class MeasuredCells:
    """The workcell factory of the session: opens franky-sim workcells, keeps the one open (for the
    test to look into the simulation while a call awaits approval) and its server's loop statistics as
    it closes; a server that cannot start here is kept to skip on."""

    def __init__(self):
        self.cell = None
        self.loop_stats: list[dict] = []
        self.unavailable: list[FrankySimUnavailable] = []

    def __call__(self, robot, spec, control_hz, robot_ip):
        from recorders.cell.registry import open_workcell

        try:
            cell = open_workcell(robot, spec, control_hz)
        except FrankySimUnavailable as e:
            self.unavailable.append(e)
            raise
        close = cell.close

        def close_measured() -> None:
            if cell.server.alive:
                self.loop_stats.append(cell.server.stats())
            close()
        cell.close = close_measured
        self.cell = cell
        return cell


def until(session, predicate):
    """The snapshot once `predicate` holds or the run has ended (a transient error may end it early)."""
    assert session.wait_for(lambda s: s.state in ENDED or predicate(s), WAIT_S), session.snapshot()
    return session.snapshot()


def supervise(session, cells: MeasuredCells, inst) -> tuple[object, dict]:
    """One supervised run of `inst`'s program; the ended snapshot and what was seen mid-run."""
    from recorders.arms.franky_arm import FrankyArm
    from recorders.cell.franky_sim_workcell import FrankySimWorkcell

    remember, pick, place = (c.code for c in inst.program[:3])
    a = inst.roles["A"]
    seen: dict = {}
    session.start(inst.task.id, inst.seed, mode="step")

    snap = until(session, lambda s: s.state == "waiting_approval")
    if snap.state in ENDED:
        return snap, seen
    assert (snap.proposed, snap.program) == (remember, ())  # nothing runs before the operator approves
    session.approve()
    snap = until(session, lambda s: s.state == "waiting_approval" and s.proposed == pick)
    if snap.state in ENDED:
        return snap, seen
    assert [(r.code, r.status) for r in snap.program] == [(remember, "ok")]
    cell = cells.cell
    seen["tcp before pick"] = cell.arm.state().ee_pose.xyz  # franky's measured pose
    seen["cube before pick"] = cell.object_pose(a).xyz
    session.approve()

    # The pick ran on franky-sim's physics: the arm holds the cube up while the place awaits approval.
    snap = until(session, lambda s: s.state == "waiting_approval" and s.proposed == place)
    if snap.state in ENDED:
        return snap, seen
    assert isinstance(cell, FrankySimWorkcell) and isinstance(cell._franky_arm, FrankyArm)
    assert cell.arm.info.kind == "franky-sim" and not cell.arm.stepped
    seen["cube while held"] = cell.object_pose(a).xyz
    seen["tcp while held"] = cell.arm.state().ee_pose.xyz
    seen["rows before auto"] = snap.program
    # The operator takes longer than the watchdog's timeout to approve: the arm rests, it has not stalled.
    trips = cell.arm.events[EVENT_WATCHDOG]
    threading.Event().wait(2 * cell.arm.limits.watchdog_timeout)
    seen["watchdog trips while approving"] = cell.arm.events[EVENT_WATCHDOG] - trips

    session.set_mode("auto")  # approves the waiting place and every call after it
    session.pause()  # served between calls: after the place
    snap = until(session, lambda s: s.state == "paused")
    if snap.state in ENDED:
        return snap, seen
    seen["paused"] = snap
    session.resume()
    return until(session, lambda s: False), seen


def test_a_supervised_restore_run_through_franky_and_franky_sim(tmp_path):
    """Step mode, approvals, auto, a pause and a resume; the episode is saved with its provenance,
    its calls and the key pose the program remembers."""
    from app.run_session import RunSession
    from recorders.episode_file import open_episode
    from recorders.task_suite import make_instance

    inst = make_instance("restore", 0)
    codes = [c.code for c in inst.program]  # remember, pick, place, pick, place(recall), done
    a, key = inst.roles["A"], f"{inst.roles['A']} start"
    cells = MeasuredCells()
    for take in range(1 + RETAKES):
        session = RunSession(tmp_path / "episodes", robot="franky-sim", obs="state", workcell_factory=cells)
        try:  # a fresh session per take: each starts idle, so its waits cannot see the last take's end
            snap, seen = supervise(session, cells, inst)
            saved = session.wait_for_event("saved", WAIT_S) if snap.episode is not None else None
        finally:
            session.close()  # its worker ends; the workcell (server process, franky) closed with the run
        if TRANSIENT_PLANNER_ERROR not in (snap.error or ""):
            break

    if cells.unavailable:
        pytest.skip(f"franky-sim cannot start here: {cells.unavailable[-1]}")
    if snap.state != "finished" and cells.loop_stats:
        skip_if_below_real_time(cells.loop_stats[-1], MIN_REALTIME_FACTOR_DEMO, f"the run failed ({snap.error})")
    assert snap.state == "finished" and snap.error is None, snap.error

    # step mode: the pick ran through franky on franky-sim's physics before the place was approved
    assert [(r.code, r.status) for r in seen["rows before auto"]] == [(codes[0], "ok"), (codes[1], "ok")]
    assert np.linalg.norm(seen["tcp while held"] - seen["tcp before pick"]) > 0.05  # franky moved the arm
    start = seen["cube before pick"]
    assert np.linalg.norm(start[:2] - inst.scene.cube(a).position) < 0.01  # the task's layout, served
    assert seen["cube while held"][2] > start[2] + 0.05, f"the cube stayed at z={seen['cube while held'][2]:.3f}"
    assert np.linalg.norm(seen["cube while held"] - seen["tcp while held"]) < 0.03
    assert seen["watchdog trips while approving"] == 0
    # the pause took effect between calls, once the approved place had ended
    paused = seen["paused"]
    assert paused.mode == "auto" and paused.running_call is None
    assert [(r.code, r.status) for r in paused.program] == [(c, "ok") for c in codes[:3]]

    assert snap.robot == "franky-sim" and snap.mode == "auto"
    assert [(r.code, r.status, r.source) for r in snap.program] == [(c, "ok", "script") for c in codes]
    assert set(snap.memory.poses) == {key}
    assert np.linalg.norm(snap.memory.poses[key].xyz - start) < 0.01  # where the cube stood before the pick
    assert snap.memory.history == tuple(codes)
    assert saved is not None and saved.path == snap.episode and snap.episode.exists()
    with open_episode(snap.episode) as ep:
        meta, calls, interventions, memory, success = ep.meta, ep.calls, ep.interventions, ep.memory, ep.success
    assert meta.robot == "franky-sim" and meta.provenance.robot == "franky-sim"
    assert meta.provenance.driver == "script" and meta.provenance.models == () and meta.task == "restore"
    assert success is True
    recall = inst.program[4].args[1].code  # the nested call ends (and is logged) before its place
    logged = [*codes[:4], recall, *codes[4:]]
    assert [(c.code, c.status, c.source) for c in calls] == [(c, "ok", "script") for c in logged]
    assert interventions == ()  # approving a proposed call is no intervention: only edits, skips and aborts are
    assert [(p["key"], p["source"]) for p in memory["poses"]] == [(key, "remember")]
    assert [p["key"] for p in memory["captured"]] == [f"pick {a}", f"place {a}"] * 2  # the gripper's events


def test_a_learned_policy_drives_franky_sim_through_the_run_engine(tmp_path):
    """A (tiny, untrained) diffusion policy executes a motion call through franky: its chunks are
    predicted off the control thread, its commands pass the safety layer to franky-sim, the call ends
    with the policy's own reason and the episode records the ticks it sent."""
    import torch

    from app.bench_inference import _norm
    from app.bench_run import NeverFinished
    from app.run_session import RunSession
    from models.diffusion_policy import DiffusionPolicy, PolicyConfig
    from recorders.episode_file import open_episode
    from recorders.episode_meta import ModelRef

    torch.manual_seed(0)
    tiny = DiffusionPolicy(PolicyConfig(embed_dim=32, down_dims=(32, 64), step_embed_dim=16), _norm()).eval()
    policy = NeverFinished(tiny)  # it runs the call's whole 2 s: chunk after chunk through franky
    ref = ModelRef("policy", "runs/tiny", "runs/tiny/final")
    cells = MeasuredCells()
    session = RunSession(tmp_path / "episodes", robot="franky-sim", obs="state", workcell_factory=cells,
                         policy_loader=lambda path: (policy, ref), max_call_s=2.0)
    try:
        session.start("stack", 0, policy="runs/tiny")
        assert session.wait_for(lambda s: s.state in ENDED, WAIT_S), session.snapshot()
        snap = session.snapshot()
    finally:
        session.close()
    if cells.unavailable:
        pytest.skip(f"franky-sim cannot start here: {cells.unavailable[-1]}")
    pick = snap.program[0]
    assert pick.code.startswith("pick(") and pick.status == "failed" and pick.source == "script", pick
    # the policy's own verdict, unless franky refused a command of the untrained policy (a reflex)
    assert pick.reason == f"the policy did not finish {pick.code} within 2 s" or "franky" in pick.reason.lower(), \
        pick.reason
    view = snap.policy_view
    assert view is not None and view.chunks >= 2 and len(view.done_trace) >= 10
    with open_episode(snap.episode) as ep:
        assert ep.meta.robot == "franky-sim" and ep.meta.provenance.driver == "policy"
        assert ep.meta.provenance.models == (ref,) and ep.frames >= 10
        assert [c.status for c in ep.calls] == ["failed"]
