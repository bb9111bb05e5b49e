"""The Run workspace (widgets/run_panel.py) in the main window, offscreen: the operator's buttons drive a
real run session on the simulated workcell and the views show what it does. Waits are on the
widgets' state (qtbot.waitUntil), never on the wall clock."""
from __future__ import annotations

import os

import pytest
from PySide6.QtCore import Qt

from app.run_models import ModelChoice
from app.run_session import RunSession
from recorders.episode_file import open_episode
from recorders.task_suite import make_instance
from tests.run_support import WAIT_S, TickGate, loader, reinstruction_planner, train_tiny_planner
from widgets.run_setup import RunSetup

WAIT_MS = int(WAIT_S * 1000)


@pytest.fixture
def make_window(qtbot, tmp_path):
    """The main window with a Run session (cameras on, unpaced unless asked); closed after the test."""
    from app.record_session import RecordSession
    from widgets.workspaces import build_window

    made = []

    def make(**run_options):
        record = RecordSession(out_dir=tmp_path)
        run_session = RunSession(tmp_path, **{"obs": "rgb", "realtime": False, **run_options})
        window = build_window(record, tmp_path, run_session)
        qtbot.addWidget(window)
        window.resize(1440, 920)
        window.show()
        window.tabs.setCurrentWidget(window.run_panel)
        made.append(window)
        return window
    yield make
    for window in made:
        window.close()


def state_is(panel, *states):
    return lambda: panel.snapshot.state in states


def click(qtbot, button):
    """What a click does (a widget just shown may not be laid out yet for a synthetic mouse press)."""
    assert button.isEnabled() and button.isVisible(), button.text()
    button.click()


def use_planner(panel, planner_key: str) -> None:
    """Offer a planner stand-in in the list (as Browse... would a run folder) and choose it."""
    RunSetup._add(panel.setup.model_lists["planner"], ModelChoice("planner", planner_key, "stand-in", "a test script"))
    panel.setup.choose("planner", planner_key)


def test_a_full_swap_shows_the_program_the_memory_and_its_markers_and_opens_in_annotate(make_window, qtbot):
    inst = make_instance("swap", 0)
    a, b = inst.roles["A"], inst.roles["B"]
    window = make_window()
    panel = window.run_panel
    assert window.tabs.tabText(3) == "Run"
    panel.setup.task.setCurrentText("swap")
    assert panel.setup.instruction.text() == inst.instruction
    assert panel.setup.names("planner")[0] == "Oracle program" and panel.setup.names("policy")[0] == "Scripted skills"
    click(qtbot, panel.run_button)
    qtbot.waitUntil(state_is(panel, "finished", "failed"), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.open_button.isEnabled(), timeout=WAIT_MS)
    assert panel.snapshot.state == "finished", panel.snapshot.error
    program = panel.program
    assert program.row_count() == len(inst.program)
    assert all(program.row_texts(i)[2] == "ok" for i in range(program.row_count()))
    keys = {f"{a} start", f"{b} start"}
    assert {row[0] for row in panel.memory.pose_rows()} == keys
    front = {key for key, _, _ in panel.cameras.marker_positions("front")}
    assert front == keys and panel.cameras.cameras == ["front", "wrist"]
    assert panel.state_label.text() == "finished: saved"
    assert any(t.startswith("saved ") for t in panel.log_texts())
    click(qtbot, panel.open_button)
    assert window.tabs.currentWidget() is window.annotate_panel
    assert window.annotate_panel.episode.path == panel.snapshot.episode


def test_step_mode_approve_edit_and_skip_from_the_buttons(make_window, qtbot):
    inst = make_instance("stack", 0)
    a, b = inst.roles["A"], inst.roles["B"]
    zone = inst.scene.zone_names[0]
    window = make_window()
    panel = window.run_panel
    panel.setup.task.setCurrentText("stack")
    panel.setup.mode.setCurrentText("step")
    click(qtbot, panel.run_button)
    qtbot.waitUntil(lambda: panel.snapshot.proposed == f'pick("{a}")', timeout=WAIT_MS)
    assert panel.program.proposed_text().endswith(f'pick("{a}")') and panel.approve_button.isEnabled()
    click(qtbot, panel.approve_button)
    qtbot.waitUntil(lambda: panel.snapshot.proposed == f'place("{a}", "{b}")', timeout=WAIT_MS)
    assert panel.edit_text.text() == f'place("{a}", "{b}")'  # the proposal, ready to edit
    panel.edit_text.setText(f'place("{a}", "unicorn")')
    click(qtbot, panel.edit_button)
    qtbot.waitUntil(lambda: "unknown object or zone 'unicorn'" in panel.refusal.text(), timeout=WAIT_MS)
    assert panel.snapshot.state == "waiting_approval"
    panel.edit_text.setText(f'place("{a}", "{zone}")')
    click(qtbot, panel.edit_button)
    qtbot.waitUntil(lambda: panel.snapshot.proposed == "done()", timeout=WAIT_MS)
    click(qtbot, panel.skip_button)
    qtbot.waitUntil(state_is(panel, "failed"), timeout=WAIT_MS)
    assert "the program has no calls left" in panel.state_label.text()
    assert [panel.program.row_texts(i)[1:3] for i in range(2)] == [(f'pick("{a}")', "ok"),
                                                                    (f'place("{a}", "{zone}")', "ok")]
    with open_episode(panel.snapshot.episode) as ep:
        assert [i.kind for i in ep.interventions] == ["edit", "skip"]


def test_a_take_over_mid_pick_handed_back_done_is_stored_and_opens_in_annotate(make_window, qtbot):
    inst = make_instance("stack", 0)
    a = inst.roles["A"]
    gate = TickGate()  # the pick is held at its 5th tick: certainly mid-motion when the operator takes over
    window = make_window(workcell_factory=gate)
    panel = window.run_panel
    panel.setup.task.setCurrentText("stack")
    click(qtbot, panel.run_button)
    try:
        qtbot.waitUntil(gate.held.is_set, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: panel.takeover_button.isEnabled(), timeout=WAIT_MS)
        click(qtbot, panel.takeover_button)
    finally:
        gate.released.set()
    qtbot.waitUntil(state_is(panel, "taken_over"), timeout=WAIT_MS)
    assert panel.takeover_box.isVisible() and not panel.takeover_button.isEnabled()
    assert "TAKEN OVER" in panel.state_label.text()
    panel.speed.setCurrentIndex(panel.speed.count() - 1)  # the fastest teleop speed
    qtbot.waitUntil(lambda: panel.snapshot.speed_level == panel.speed.count() - 1, timeout=WAIT_MS)
    panel.palette.choose("pick", a)  # the operator finishes the pick with the skill palette
    click(qtbot, panel.palette.buttons["pick"])
    taken_at = len(panel.log_texts())
    qtbot.waitUntil(lambda: any(t.startswith(f'pick("{a}")  ') or "error" in t.lower()
                                for t in panel.log_texts()[taken_at:]), timeout=WAIT_MS)
    assert f'pick("{a}")  ok (skill palette)' in panel.log_texts(), panel.log_texts()
    panel.handback_reason.setText("the gripper was off-centre")
    click(qtbot, panel.handback_done)
    qtbot.waitUntil(state_is(panel, "finished", "failed"), timeout=WAIT_MS)
    assert panel.snapshot.state == "finished", panel.snapshot.error
    assert not panel.takeover_box.isVisible()
    with open_episode(panel.snapshot.episode) as ep:
        (takeover, *rest) = [i for i in ep.interventions if i.kind == "takeover"]
        assert (takeover.call, takeover.reason) == (f'pick("{a}")', "the gripper was off-centre") and not rest
        assert any(c.source == "hotkey" and c.code == f'pick("{a}")' for c in ep.calls)
    qtbot.waitUntil(lambda: panel.open_button.isEnabled(), timeout=WAIT_MS)
    click(qtbot, panel.open_button)
    annotate = window.annotate_panel
    assert window.tabs.currentWidget() is annotate and annotate.episode.path == panel.snapshot.episode
    assert any(s.code == f'pick("{a}")' for s in annotate.model.segments)


def test_reinstructing_in_the_middle_of_a_run(make_window, qtbot):
    inst = make_instance("stack", 0)
    a, b = inst.roles["A"], inst.roles["B"]
    planner = reinstruction_planner()
    window = make_window(planner_loader=loader(planner))
    panel = window.run_panel
    use_planner(panel, "stand-in-run")
    panel.setup.task.setCurrentText("stack")
    panel.setup.instruction.setText("remember the first cube")
    panel.setup.mode.setCurrentText("step")
    click(qtbot, panel.run_button)
    qtbot.waitUntil(lambda: panel.snapshot.proposed == f'remember("first", "{a}")', timeout=WAIT_MS)
    assert panel.program.alternative_texts()[0].endswith(f'remember("first", "{a}")')
    click(qtbot, panel.approve_button)
    qtbot.waitUntil(lambda: panel.snapshot.proposed == "home()", timeout=WAIT_MS)
    assert panel.reinstruct_button.isEnabled()
    panel.reinstruct_text.setText("now remember the second one")
    click(qtbot, panel.reinstruct_button)
    qtbot.waitUntil(lambda: panel.snapshot.instruction == "now remember the second one", timeout=WAIT_MS)
    click(qtbot, panel.skip_button)
    qtbot.waitUntil(lambda: panel.snapshot.proposed == f'remember("second", "{b}")', timeout=WAIT_MS)
    panel.setup.mode.setCurrentText("auto")  # approves the waiting call and the rest
    qtbot.waitUntil(state_is(panel, "finished", "failed"), timeout=WAIT_MS)
    assert {row[0] for row in panel.memory.pose_rows()} == {"first", "second"}
    assert ("now remember the second one", (f'remember("first", "{a}")',)) in planner.asked


@pytest.fixture(scope="module")
def tiny_planner(tmp_path_factory):
    run = tmp_path_factory.mktemp("gui_planner") / "run"
    train_tiny_planner(tmp_path_factory.mktemp("gui_planner_data"), run)
    return run


def test_a_tiny_trained_planner_given_an_instruction_it_cannot_do_ends_with_a_reason(make_window, qtbot, tiny_planner,
                                                                                   tmp_path):
    window = make_window(max_calls=3)
    panel = window.run_panel
    assert panel.setup.browse("planner", str(tiny_planner))
    assert panel.setup.choice("planner").key == str(tiny_planner)
    assert panel.setup.trained_on["planner"].text().startswith("trained on 2 episodes")
    panel.setup.task.setCurrentText("pick_place")
    panel.setup.instruction.setText("open the drawer and pour the tea")
    click(qtbot, panel.run_button)
    qtbot.waitUntil(state_is(panel, "finished", "failed"), timeout=WAIT_MS)
    snap = panel.snapshot
    assert snap.instruction == "open the drawer and pour the tea"
    # refused before its first call (models/instruction_check.py): the reason on screen, nothing ran
    assert snap.state == "failed" and snap.error.startswith("cannot do this: it is unlike every instruction")
    assert snap.error in panel.state_label.text() and snap.program == ()
    if os.environ.get("CODE2ACT_SHOTS"):
        window.grab().save(os.path.join(os.environ["CODE2ACT_SHOTS"], "run_refused.png"))
    assert not panel.setup.browse("policy", str(tiny_planner))  # a planner is no policy: refused with the reason
    assert any("holds no saved policy (it holds a planner)" in t for t in panel.log_texts())


def test_a_planner_reading_the_images_facts_shows_what_it_sees_in_the_log(make_window, qtbot, tmp_path):
    run = tmp_path / "facts_planner"
    train_tiny_planner(tmp_path / "facts_data", run, "--scene-facts")
    window = make_window(max_calls=2)
    panel = window.run_panel
    assert panel.setup.browse("planner", str(run))
    panel.setup.task.setCurrentText("pick_place")
    click(qtbot, panel.run_button)
    qtbot.waitUntil(state_is(panel, "finished", "failed"), timeout=WAIT_MS)
    seen = [t for t in panel.log_texts() if "the planner sees: " in t]
    assert seen and "table: " in seen[0], panel.log_texts()
    if os.environ.get("CODE2ACT_SHOTS"):
        window.grab().save(os.path.join(os.environ["CODE2ACT_SHOTS"], "run_planner_sees.png"))


def test_keys_start_and_approve_and_the_estop_reaches_the_run(make_window, qtbot):
    window = make_window()
    panel = window.run_panel
    panel.setup.task.setCurrentText("stack")
    panel.setup.mode.setCurrentText("step")
    window.activateWindow()  # shortcuts reach the active window only
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)
    panel.setup.instruction.setFocus()
    qtbot.keyClick(panel.setup.instruction, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(state_is(panel, "waiting_approval"), timeout=WAIT_MS)
    first = panel.snapshot.proposed
    qtbot.keyClick(panel.program, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # approve
    qtbot.waitUntil(lambda: panel.snapshot.proposed not in (None, first), timeout=WAIT_MS)
    window.trigger_estop()  # the window's e-stop stops the run's arm
    qtbot.waitUntil(lambda: window.is_estop_shown(), timeout=WAIT_MS)
    window.reset_estop()
    qtbot.waitUntil(lambda: not window.is_estop_shown(), timeout=WAIT_MS)
    click(qtbot, panel.stop_button)
    qtbot.waitUntil(state_is(panel, "finished", "failed"), timeout=WAIT_MS)


def test_bench_run_measures_the_gui_and_the_control_loop_during_a_learned_run(qapp):
    """`bench run` end to end, briefly: its figures exist and come from a run where the policy moved."""
    from widgets.bench_run_gui import bench_run_gui

    result = bench_run_gui(seconds=1.0)
    assert result["policy_seconds"] >= 1.0 and result["runs"]
    run = result["runs"][-1]
    assert run["chunks"] >= 1 and run["chunk_ms_mean"] > 0
    assert result["gui_blocked_max_ms"] >= result["gui_blocked_max_ms_after_start"] >= 0
    assert result["late_ticks"] >= 0 and result["chunk_stalls"] >= 0
