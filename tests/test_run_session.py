"""The Run workspace's engine (app/run_session.py): a planner's calls run by the scripted skills in the
simulated workcell, with step mode, pause, abort, re-instruct and the episode saved with its
interventions. Tests wait on the session's condition, never on the wall clock."""
from __future__ import annotations

import pytest

from app.run_program import ORACLE, Alternative
from app.run_session import RunSession
from recorders.episode_file import open_episode
from recorders.robot_api_spec import Call
from recorders.cell.registry import open_workcell
from recorders.task_suite import make_instance
from tests.run_support import WAIT_S, ScriptedPlanner, TickGate, loader, reinstruction_planner, train_tiny_planner
ENDED = ("finished", "failed")


def ended(session: RunSession):
    assert session.wait_for(lambda s: s.state in ENDED, WAIT_S), session.snapshot()
    return session.snapshot()


def waiting(session: RunSession, code: str | None = None):
    """The snapshot once a call (`code`, if given) awaits the operator."""
    assert session.wait_for(lambda s: s.state == "waiting_approval" and (code is None or s.proposed == code),
                            WAIT_S), session.snapshot()
    return session.snapshot()


# ---- auto mode -------------------------------------------------------------------------------------------
def test_the_oracle_swaps_two_cubes_and_the_run_is_saved(sessions):
    inst = make_instance("swap", 0)
    session = sessions()
    session.start("swap", 0)
    snap = ended(session)
    assert snap.state == "finished" and snap.error is None, snap.error
    assert [r.code for r in snap.program] == [c.code for c in inst.program]
    assert all(r.status == "ok" and r.source == "script" and r.t_end >= r.t_start for r in snap.program)
    a, b = inst.roles["A"], inst.roles["B"]
    assert set(snap.memory.poses) == {f"{a} start", f"{b} start"}
    assert snap.memory.history == tuple(c.code for c in inst.program)
    saved = session.wait_for_event("saved", WAIT_S)
    assert saved.path == snap.episode and snap.episode.exists()
    with open_episode(snap.episode) as ep:
        assert ep.meta.provenance.driver == "script" and ep.meta.provenance.models == ()
        assert ep.meta.task == "swap" and ep.success is True and ep.interventions == ()
        assert {p["key"] for p in ep.memory["poses"]} == {f"{a} start", f"{b} start"}


# ---- step mode -------------------------------------------------------------------------------------------
def test_step_mode_approves_edits_and_skips_and_stores_the_interventions(sessions):
    inst = make_instance("stack", 0)
    a, b = inst.roles["A"], inst.roles["B"]
    zone = inst.scene.zone_names[0]
    session = sessions()
    session.start("stack", 0, mode="step")
    waiting(session, f'pick("{a}")')
    session.approve()
    waiting(session, f'place("{a}", "{b}")')
    session.edit(f'place("{a}", "unicorn")')
    refused = session.wait_for_event("refused", WAIT_S)
    assert "unknown object or zone 'unicorn'" in refused.text
    assert session.snapshot().state == "waiting_approval" and session.snapshot().proposed == f'place("{a}", "{b}")'
    session.edit(f'place("{a}", "{zone}")')
    waiting(session, "done()")
    session.skip()  # the oracle program has nothing after done(): the run ends with the reason
    snap = ended(session)
    assert snap.state == "failed" and "could not write a valid next call: the program has no calls left" in snap.error
    assert [(r.code, r.status) for r in snap.program] == [(f'pick("{a}")', "ok"), (f'place("{a}", "{zone}")', "ok")]
    with open_episode(snap.episode) as ep:
        edit, skip = ep.interventions
        assert ep.success is False
    assert (edit.kind, edit.call, edit.replacement) == ("edit", f'place("{a}", "{b}")', f'place("{a}", "{zone}")')
    assert (skip.kind, skip.call) == ("skip", "done()")


def test_answers_without_a_waiting_call_are_refused_with_a_reason(sessions):
    session = sessions()
    session.approve()
    assert "no call is waiting for approval" in session.wait_for_event("error", WAIT_S).text
    session.drain_events()
    session.start("stack", 0, instruction="juggle the cubes")  # the oracle cannot follow another text
    assert "only a learned planner" in session.wait_for_event("error", WAIT_S).text
    assert session.snapshot().state == "idle"


def test_a_workcell_that_cannot_run_calls_or_cannot_be_reached_ends_with_the_reason(sessions):
    session = sessions(robot="franky", robot_ip="192.0.2.1")  # a documentation address: nothing is reached
    session.start("stack", 0)
    assert "a real arm has no task of the suite" in session.wait_for_event("error", WAIT_S).text
    session.drain_events()
    session.start("stack", 0, instruction="stack them", planner="fake-run")  # nothing taught in its folder
    assert "teach them in Record" in session.wait_for_event("error", WAIT_S).text
    assert session.snapshot().state == "idle"

    def unreachable(robot, spec, control_hz, robot_ip):
        raise ConnectionError("no arm answers")

    session = sessions(workcell_factory=unreachable)
    session.start("stack", 0)
    snap = ended(session)
    assert snap.state == "failed" and snap.error == "no arm answers"


# ---- pause, abort ----------------------------------------------------------------------------------------
def test_pause_takes_effect_between_calls_and_resume_goes_on(sessions):
    session = sessions()
    session.start("stack", 0)
    session.pause()  # served before the first call
    assert session.wait_for(lambda s: s.state == "paused", WAIT_S)
    assert session.snapshot().program == ()
    session.resume()
    assert session.wait_for(lambda s: len(s.program) >= 1, WAIT_S)
    session.pause()
    assert session.wait_for(lambda s: s.state == "paused", WAIT_S)
    paused = session.snapshot()
    assert paused.program and all(r.status == "ok" for r in paused.program)  # the running call finished first
    session.resume()
    snap = ended(session)
    assert snap.state == "finished" and [r.status for r in snap.program] == ["ok", "ok", "ok"]


def test_abort_call_ends_the_pick_aborted_and_resume_runs_it_again(sessions):
    inst = make_instance("stack", 0)
    pick = f'pick("{inst.roles["A"]}")'
    gate = TickGate()  # the first call is the pick: held at its 5th tick, mid-motion
    session = sessions(workcell_factory=gate)
    session.start("stack", 0)
    gate.interrupt(session.abort_call)
    assert session.wait_for(lambda s: s.state == "paused", WAIT_S)
    aborted = session.snapshot().program[-1]
    assert (aborted.code, aborted.status) == (pick, "aborted") and "aborted" in aborted.reason
    session.resume()
    snap = ended(session)
    assert snap.state == "finished"
    assert [(r.code, r.status) for r in snap.program][:2] == [(pick, "aborted"), (pick, "ok")]
    with open_episode(snap.episode) as ep:
        (abort,) = ep.interventions
        calls = ep.calls
    assert (abort.kind, abort.call) == ("abort", pick) and abort.t_end > abort.t_start
    assert [c.status for c in calls][:2] == ["aborted", "ok"]


def test_the_estop_aborts_the_call_and_the_run_resumes_after_a_reset(sessions):
    pick = f'pick("{make_instance("stack", 0).roles["A"]}")'
    gate = TickGate()
    session = sessions(workcell_factory=gate)
    session.start("stack", 0)
    gate.interrupt(lambda: session.estop("test stop"))
    assert session.wait_for(lambda s: s.state == "paused" and s.estop_reason == "test stop", WAIT_S)
    assert (session.snapshot().program[-1].code, session.snapshot().program[-1].status) == (pick, "aborted")
    session.reset_estop()
    assert session.wait_for(lambda s: s.estop_reason is None, WAIT_S)
    session.resume()
    snap = ended(session)
    assert snap.state == "finished" and [r.status for r in snap.program] == ["aborted", "ok", "ok", "ok"]


def test_stop_ends_the_run_saved_as_failed(sessions):
    session = sessions()
    session.start("swap", 0, mode="step")
    waiting(session)
    session.stop()
    snap = ended(session)
    assert snap.state == "failed" and "stopped by the operator" in snap.error and snap.episode is None  # no motion


# ---- learned planners ------------------------------------------------------------------------------------
def test_a_planner_that_cannot_write_a_valid_call_ends_the_run_with_the_reason(sessions):
    def raising(instruction, history, keys):
        raise RuntimeError("the model gave up")

    session = sessions(planner_loader=loader(ScriptedPlanner(raising)))
    session.start("stack", 0, planner="fake-run")
    snap = ended(session)
    assert snap.state == "failed" and snap.error == "the planner could not write a valid next call: the model gave up"

    session = sessions(planner_loader=loader(ScriptedPlanner(lambda *_: 'pick("unicorn")')))
    session.start("stack", 0, instruction="juggle the cubes", planner="fake-run")
    snap = ended(session)
    assert snap.state == "failed" and "unknown object 'unicorn'" in snap.error and snap.program == ()


def test_reinstructing_a_learned_planner_goes_on_from_the_same_memory(sessions):
    inst = make_instance("stack", 0)
    a, b = inst.roles["A"], inst.roles["B"]
    planner = reinstruction_planner()
    session = sessions(planner_loader=loader(planner))
    session.start("stack", 0, instruction="remember the first cube", planner="fake-run", mode="step")
    waiting(session, f'remember("first", "{a}")')
    session.approve()
    waiting(session, "home()")
    session.reinstruct("now remember the second one")
    session.skip()  # the planner is asked again, with the new text
    snap = waiting(session, f'remember("second", "{b}")')
    assert snap.instruction == "now remember the second one"
    assert snap.alternatives == (Alternative(f'remember("second", "{b}")', 0.9), Alternative("home()", 0.1))
    session.set_mode("auto")  # approves the waiting call and the rest
    snap = ended(session)
    assert snap.state == "finished" and set(snap.memory.poses) == {"first", "second"}
    assert snap.memory.history == (f'remember("first", "{a}")', f'remember("second", "{b}")', "done()")
    assert ("now remember the second one", (f'remember("first", "{a}")',)) in planner.asked
    assert snap.episode is None  # memory calls only: no motion, nothing saved


def test_the_oracle_cannot_be_reinstructed(sessions):
    session = sessions()
    session.start("stack", 0, mode="step")
    waiting(session)
    session.reinstruct("do something else")
    assert "needs a learned planner" in session.wait_for_event("error", WAIT_S).text
    assert session.snapshot().planner == ORACLE and session.snapshot().state == "waiting_approval"
    session.stop()
    ended(session)


# ---- take over -------------------------------------------------------------------------------------------
def test_taking_over_a_pick_and_handing_back_runs_it_again(sessions):
    from recorders.teleop import TeleopIntent

    inst = make_instance("stack", 0)
    pick = f'pick("{inst.roles["A"]}")'
    gate = TickGate()
    session = sessions(workcell_factory=gate)
    session.start("stack", 0)
    gate.interrupt(session.take_over)
    assert session.wait_for(lambda s: s.state == "taken_over", WAIT_S)
    t0 = session.snapshot().clock
    session.set_teleop(TeleopIntent(linear=(0.0, 0.0, 1.0)))  # up, away from the cubes
    assert session.wait_for(lambda s: s.clock > t0 + 0.3, WAIT_S)  # a few teleop ticks
    session.set_teleop(TeleopIntent())
    session.hand_back(done=False, reason="too close to the other cube")
    snap = ended(session)
    assert snap.state == "finished", snap.error
    assert [(r.code, r.status, r.source) for r in snap.program][:3] == [
        (pick, "aborted", "script"), (pick, "aborted", "hotkey"), (pick, "ok", "script")]
    with open_episode(snap.episode) as ep:
        (takeover,) = ep.interventions
        calls, labels = ep.calls, ep.labels
    assert (takeover.kind, takeover.call, takeover.reason) == ("takeover", pick, "too close to the other cube")
    stretch = next(c for c in calls if c.source == "hotkey")
    assert (stretch.code, stretch.t_start, stretch.t_end) == (pick, takeover.t_start, takeover.t_end)
    assert sum(s.code == pick for s in labels) >= 2  # the teleop stretch is labelled with the call it corrected


def test_taking_over_a_proposed_call_and_marking_it_done_moves_on(sessions):
    inst = make_instance("stack", 0)
    a, b = inst.roles["A"], inst.roles["B"]
    session = sessions()
    session.start("stack", 0, mode="step")
    waiting(session, f'pick("{a}")')
    session.call(Call("home", ()))  # the skill palette waits for a take-over
    assert "take over before calling home()" in session.wait_for_event("error", WAIT_S).text
    session.take_over()
    assert session.wait_for(lambda s: s.state == "taken_over" and s.clock > 0.5, WAIT_S)
    session.call(Call("pick", (a,)))  # the skill palette, from where teleop left the arm
    assert session.wait_for_event("call", WAIT_S).text == f'pick("{a}")  ok (skill palette)'
    session.hand_back(done=True, reason="picked it by hand")
    snap = waiting(session, f'place("{a}", "{b}")')  # the planner goes on after the corrected call
    assert [(r.code, r.status, r.source) for r in snap.program] == [(f'pick("{a}")', "ok", "hotkey")]
    assert snap.memory.history == (f'pick("{a}")',)  # the palette ran the corrected call: in the history once
    session.stop()
    snap = ended(session)
    with open_episode(snap.episode) as ep:
        assert [(c.code, c.source) for c in ep.calls] == [(f'pick("{a}")', "gui"), (f'pick("{a}")', "hotkey")]
        assert [(i.kind, i.call, i.reason) for i in ep.interventions] == [
            ("takeover", f'pick("{a}")', "picked it by hand"), ("abort", f'place("{a}", "{b}")',
                                                                 "the operator ended the run at this call "
                                                                 "(stopped by the operator)")]


@pytest.fixture(scope="module")
def tiny_planner(tmp_path_factory):
    run = tmp_path_factory.mktemp("planner") / "run"
    train_tiny_planner(tmp_path_factory.mktemp("planner_data"), run)
    return run


def test_a_tiny_trained_planner_follows_any_instruction_to_an_end_with_its_reason(sessions, tiny_planner):
    session = sessions(max_calls=4)
    session.start("pick_place", 2, instruction="juggle   the cubes", planner=str(tiny_planner))
    snap = ended(session)  # whatever it proposes: finished, or failed with the reason; never a crash
    assert snap.instruction == "juggle the cubes" and (snap.state == "finished" or snap.error), snap
    assert all(r.source == "planner" and r.status != "running" for r in snap.program)
    if snap.program:  # the real planner's best calls at its last proposal, best first, their shares summing to 1
        assert snap.alternatives and abs(sum(a.probability for a in snap.alternatives) - 1) < 1e-4
    if snap.episode is not None:
        with open_episode(snap.episode) as ep:
            assert ep.meta.provenance.driver == "planner" and ep.meta.instruction == "juggle the cubes"
            assert [(m.role, m.run) for m in ep.meta.provenance.models] == [("planner", str(tiny_planner))]


def test_a_planner_reading_the_images_facts_says_what_it_sees_in_the_log(sessions, tmp_path):
    run = tmp_path / "facts"
    train_tiny_planner(tmp_path / "data", run, "--scene-facts")
    session = sessions(max_calls=1)
    session.start("pick_place", 2, planner=str(run))
    seen = session.wait_for_event("info", WAIT_S)
    while not seen.text.startswith("the planner sees: "):
        seen = session.wait_for_event("info", WAIT_S)
    inst = make_instance("pick_place", 2)
    cube = inst.roles["A"]  # pick_place's zone is empty: every cube lies on the table
    assert f"{inst.roles['Z']}: none" in seen.text and "table: " in seen.text and cube in seen.text, seen.text
    ended(session)


def test_a_planner_reads_another_wording_as_its_training_instruction_and_refuses_what_it_cannot_do(
        sessions, tiny_planner):
    inst = make_instance("pick_place", 2)
    a, z = inst.scene.cube(inst.roles["A"]).colour, inst.roles["Z"].split()[0]
    session = sessions(max_calls=2)
    session.start("pick_place", 2, instruction=f"Drop the {a} block into the {z} square.", planner=str(tiny_planner))
    read = session.wait_for_event("info", WAIT_S)
    assert read.text == f"the planner reads the instruction as: put the {a} cube in the {z} zone"
    ended(session)
    missing = next(c for c in ("red", "green", "blue", "yellow", "purple", "orange")
                   if c not in {c.colour for c in inst.scene.cubes})
    text = f"stack the {missing} cube on the {a} cube"
    session.start("pick_place", 2, instruction=text, planner=str(tiny_planner))
    assert session.wait_for(lambda s: s.instruction == text and s.state in ENDED, WAIT_S), session.snapshot()
    snap = session.snapshot()
    assert snap.state == "failed" and snap.program == ()
    assert snap.error.startswith(f"cannot do this: there is no {missing} cube here; the objects are ")


def test_the_teleop_speed_while_taken_over_follows_the_setting(sessions):
    import numpy as np

    from recorders.teleop import SPEED_LEVELS_M_S, TeleopIntent

    session = sessions()
    session.start("stack", 0, mode="step")
    waiting(session)
    session.take_over()
    assert session.wait_for(lambda s: s.state == "taken_over", WAIT_S)
    session.set_speed_level(99)  # clamped to the fastest
    assert session.wait_for(lambda s: s.speed_level == len(SPEED_LEVELS_M_S) - 1, WAIT_S)
    windows = {}
    for level in (0, len(SPEED_LEVELS_M_S) - 1):  # 2 cm/s, then 20 cm/s, upwards for a second each
        session.set_speed_level(level)
        assert session.wait_for(lambda s: s.speed_level == level, WAIT_S)
        t0 = session.snapshot().clock
        session.set_teleop(TeleopIntent(linear=(0.0, 0.0, 1.0)))
        assert session.wait_for(lambda s: s.clock > t0 + 1.0, WAIT_S)
        session.set_teleop(TeleopIntent())
        windows[level] = (t0, session.snapshot().clock)  # the arm moved somewhere in here (unpaced clock)
    session.stop()
    snap = ended(session)
    with open_episode(snap.episode) as ep:
        z = np.asarray(ep.stream_data("ee_pose")[: ep.frames, 2])
        t = np.asarray(ep.stream_time("ee_pose")[: ep.frames]) - ep.stream_time("ee_pose")[0]
    # the cruising speed in each window: the unpaced clock may run on before or after the intent
    # arrives on a busy machine, so the window's idle frames must not dilute it
    vz = np.diff(z) / np.diff(t)
    speed = {level: float(np.percentile(np.abs(vz[(t[1:] >= a) & (t[1:] <= b)]), 90))
             for level, (a, b) in windows.items()}
    slow, fast = speed[0], speed[len(SPEED_LEVELS_M_S) - 1]
    assert 0.005 < slow < 0.03 and fast > 5 * slow, speed


def test_a_real_arm_runs_a_learned_planner_in_the_scene_it_was_taught(sessions, tmp_path):
    """On a real arm (here the simulated arm with fake RealSense devices, kind franky) the planner's
    allowed calls and the run's objects come from the taught scene saved with the workcell."""
    from app.workcell_setup import workcell_folder
    from recorders.perception.perceived_workcell import auto_teach, perceived_scene_spec
    from recorders.perception.taught_scene import save_taught_scene
    from tests.fake_devices import FakeCameraDevice
    from tests.test_real_takes import FakeRealCell

    devices = {"front": FakeCameraDevice("111"), "wrist": FakeCameraDevice("222", seed=1)}
    with open_workcell("sim", perceived_scene_spec(make_instance("stack", 0).scene)) as cell:
        taught = auto_teach(cell)  # what an operator would have clicked
    save_taught_scene(workcell_folder(tmp_path / "episodes", "franky"), taught)
    a = taught.objects[0].name
    planner = ScriptedPlanner(lambda instruction, history, keys: "done()" if history else f'pick("{a}")')
    session = sessions(robot="franky", robot_ip="10.0.0.2", planner_loader=loader(planner),
                       workcell_factory=lambda robot, spec, hz, ip: FakeRealCell(devices))
    session.start("stack", 0, instruction=f"pick up the {a}", planner="fake-run")
    snap = ended(session)
    assert snap.state == "finished", snap.error
    assert set(snap.objects) == {o.name for o in taught.objects}
    assert [c.code for c in snap.program][:1] == [f'pick("{a}")']
    with open_episode(snap.episode) as ep:
        assert ep.task == "instruction" and ep.instruction == f"pick up the {a}" and ep.seed == -1
        assert ep.success is None and ep.robot == "franky"
