"""The Run workspace's display widgets, offscreen: each is handed hand-built snapshot values
(app/run_program.py) and the test reads back what it drew: table rows and their colours, the
proposed call and the planner's alternatives, memory rows and history, camera markers and the
predicted path in view coordinates, the policy's P(finished) trace and counters."""
from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

from app.run_program import Alternative, CallRow, CameraMarks, MemoryView, PolicyView, RunSnapshot
from recorders.pose import Pose
from widgets.run_cameras import PLACEHOLDER, RunCameras
from widgets.run_memory_view import MemoryKeyColours, MemoryTable
from widgets.run_policy_view import SCRIPTED_TEXT, PolicyPanel
from widgets.run_program_view import RUNNING_BACKGROUND, STATUS_COLOURS, ProgramView

REASON = "grasp lost: the gripper closed fully (0.000 m) while carrying red_cube to blue_cube"
OK = CallRow("pick(red_cube)", "ok", "script", 0.0, 4.25)
FAILED = CallRow("place_on(red_cube, blue_cube)", "failed", "planner", 4.3, 9.8, REASON)
RUNNING = CallRow("pick(blue_cube)", "running", "planner", 10.5)


def program_snapshot(clock: float = 12.0, **kw) -> RunSnapshot:
    return RunSnapshot(state="running", program=(OK, FAILED, RUNNING), clock=clock, **kw)


@pytest.fixture
def program_view(qtbot):
    view = ProgramView()
    qtbot.addWidget(view)
    return view


def test_program_rows_show_status_colours_reason_and_the_running_calls_elapsed_time(program_view):
    program_view.show_program(program_snapshot(clock=12.0))

    assert program_view.row_count() == 3
    assert program_view.row_texts(0) == ("1", "pick(red_cube)", "ok", "script", "4.2", "")
    assert program_view.row_texts(1)[:5] == ("2", "place_on(red_cube, blue_cube)", "failed", "planner", "5.5")
    assert program_view.row_texts(2) == ("3", "pick(blue_cube)", "running", "planner", "1.5", "")
    assert program_view.status_colour(0) == STATUS_COLOURS["ok"]
    assert program_view.status_colour(1) == STATUS_COLOURS["failed"]
    reason_cell = program_view.table.item(1, 5)
    assert reason_cell.text() == REASON and reason_cell.toolTip() == REASON
    assert program_view.running_row() == 2
    assert program_view.row_background(2) == RUNNING_BACKGROUND
    assert program_view.table.item(2, 1).font().bold()
    assert not program_view.table.item(0, 1).font().bold()


def test_program_redraws_only_rows_that_changed_and_ticks_the_running_row(program_view):
    program_view.show_program(program_snapshot(clock=12.0))
    first, running = program_view.table.item(0, 1), program_view.table.item(2, 1)

    program_view.show_program(program_snapshot(clock=13.0))  # same calls, a later tick
    assert program_view.row_texts(2)[4] == "2.5"
    assert program_view.table.item(0, 1) is first and program_view.table.item(2, 1) is running

    ended = CallRow(RUNNING.code, "aborted", "planner", 10.5, 13.5, "aborted by the operator")
    program_view.show_program(RunSnapshot(program=(OK, FAILED, ended, CallRow("home()", "running", "script", 13.6)),
                                  clock=14.0))
    assert program_view.table.item(0, 1) is first
    assert program_view.row_texts(2)[2:5] == ("aborted", "planner", "3.0")
    assert program_view.status_colour(2) == STATUS_COLOURS["aborted"]
    assert program_view.row_background(2) != RUNNING_BACKGROUND
    assert program_view.running_row() == 3 and program_view.row_texts(3)[4] == "0.4"

    program_view.show_program(RunSnapshot(program=(CallRow("home()", "ok", "script", 0.0, 1.0),)))  # a new run
    assert program_view.row_count() == 1 and program_view.row_texts(0)[1:3] == ("home()", "ok")
    assert program_view.running_row() == -1


def test_the_same_snapshot_returns_at_once(program_view, monkeypatch):
    snap = program_snapshot()
    program_view.show_program(snap)
    monkeypatch.setattr(program_view, "_show_program", lambda program: pytest.fail("redrew an unchanged snapshot"))
    monkeypatch.setattr(program_view.table, "item", lambda *a: pytest.fail("touched the table"))
    for _ in range(30):
        program_view.show_program(snap)


def test_the_table_follows_the_running_call(program_view, qtbot):
    program_view.resize(420, 220)
    program_view.show()
    qtbot.waitExposed(program_view)
    done = tuple(CallRow(f"pick(cube_{i})", "ok", "script", i, i + 0.5) for i in range(40))
    program_view.show_program(RunSnapshot(program=(*done, CallRow("home()", "running", "script", 40.0)), clock=41.0))
    table = program_view.table
    assert table.verticalScrollBar().value() > 0
    assert table.viewport().rect().contains(table.visualItemRect(table.item(40, 1)))
    assert not table.viewport().rect().intersects(table.visualItemRect(table.item(0, 1)))


def test_proposed_call_and_the_planners_alternatives_best_first(program_view):
    assert program_view.proposed_text() == "" and program_view.alternative_texts() == []
    alternatives = (Alternative("home()", 0.25), Alternative("place_on(blue_cube, green_cube)", 0.62),
                    Alternative("place_on(blue_cube, red_cube)", 0.13))
    program_view.show_program(program_snapshot(mode="step", proposed="place_on(blue_cube, green_cube)",
                                       alternatives=alternatives))
    assert program_view.proposed_text() == "Next call awaiting approval:  place_on(blue_cube, green_cube)"
    assert program_view.alternative_texts() == ["62%  place_on(blue_cube, green_cube)", "25%  home()",
                                                "13%  place_on(blue_cube, red_cube)"]
    assert "<b>place_on(blue_cube, green_cube)</b>" in program_view.alternatives.text()  # the proposal stands out

    program_view.show_program(program_snapshot(mode="step"))  # approved: nothing awaits
    assert program_view.proposed_text() == "" and program_view.alternative_texts() == []


# ---- memory ----------------------------------------------------------------------------------------
def memory_view(history=("pick(red_cube)", "remember('above_bin')")) -> MemoryView:
    return MemoryView(MappingProxyType({"above_bin": Pose((0.45, -0.2, 0.25), (0.0, 1.0, 0.0, 0.0)),
                                        "grasp": Pose((0.5, 0.1234, 0.02))}), tuple(history))


def test_memory_table_lists_key_poses_with_the_quaternion_and_the_call_history(qtbot):
    table = MemoryTable(colours=MemoryKeyColours())
    qtbot.addWidget(table)
    assert table.pose_rows() == [] and table.history_texts() == []
    table.show_memory(memory_view())
    assert table.pose_rows() == [("above_bin", "0.450", "-0.200", "0.250"), ("grasp", "0.500", "0.123", "0.020")]
    assert "(0.000, 1.000, 0.000, 0.000)" in table.pose_tooltip(0)
    assert [t.split() for t in table.history_texts()] == [["1", "pick(red_cube)"], ["2", "remember('above_bin')"]]
    assert table.empty_poses.isHidden()


def test_memory_table_redraws_only_what_changed(qtbot, monkeypatch):
    table = MemoryTable(colours=MemoryKeyColours())
    qtbot.addWidget(table)
    memory = memory_view()
    table.show_memory(memory)
    key_cell, first_call = table.poses.item(0, 0), table.history.item(0)

    table.show_memory(memory_view(("pick(red_cube)", "remember('above_bin')", "pick(blue_cube)")))  # one call more
    assert table.poses.item(0, 0) is key_cell
    assert table.history.item(0) is first_call and table.history_texts()[-1].split() == ["3", "pick(blue_cube)"]

    same = MemoryView()
    table.show_memory(same)
    monkeypatch.setattr(table, "_show_poses", lambda poses: pytest.fail("redrew an unchanged memory"))
    monkeypatch.setattr(table, "_show_history", lambda history: pytest.fail("redrew an unchanged memory"))
    table.show_memory(same)
    assert table.pose_rows() == [] and table.history_texts() == [] and not table.empty_poses.isHidden()


# ---- cameras ---------------------------------------------------------------------------------------
IMAGE = np.zeros((128, 96, 3), np.uint8)
PATH = np.array([[np.nan, np.nan], [20.0, 100.0], [35.0, 90.0], [50.0, 75.0], [np.nan, 3.0], [70.0, 50.0],
                 [85.0, 40.0]])


def test_cameras_draw_memory_markers_and_the_path_at_pixel_centres(qtbot):
    colours = MemoryKeyColours()
    cameras, table = RunCameras(colours=colours), MemoryTable(colours=colours)
    qtbot.addWidget(cameras)
    qtbot.addWidget(table)
    assert cameras.cameras == [] and cameras.placeholder_text() == PLACEHOLDER

    marks = {"front": CameraMarks((("above_bin", 30.0, 40.0), ("grasp", 90.0, 100.0)), PATH),
             "wrist": CameraMarks((("grasp", 64.0, 12.0),))}
    cameras.show_images({"wrist": IMAGE, "front": IMAGE}, marks)
    assert cameras.cameras == ["front", "wrist"] and cameras.placeholder_text() == ""
    assert cameras.marker_positions("front") == [("above_bin", 30.5, 40.5), ("grasp", 90.5, 100.5)]
    assert cameras.marker_positions("wrist") == [("grasp", 64.5, 12.5)]

    drawn = cameras.path_points("front")
    expected = PATH[np.isfinite(PATH).all(axis=1)] + 0.5
    np.testing.assert_array_equal(drawn, expected)  # NaN rows are not drawn
    overlay = cameras._overlays["front"]
    # The NaN row between (50, 75) and (70, 50) breaks the line: those two are not joined.
    np.testing.assert_array_equal(overlay.path.opts["connect"], [True, True, False, True, False])
    np.testing.assert_array_equal(np.column_stack(overlay.path_start.getData()), [[20.5, 100.5]])
    assert cameras.path_points("wrist").shape == (0, 2)

    (x0, x1), (y0, y1) = overlay.box.viewRange()  # the whole image, tight along one side (aspect locked)
    assert x0 <= 0 and y0 <= 0 and x1 >= 96 and y1 >= 128
    assert (x0, x1) == pytest.approx((0, 96)) or (y0, y1) == pytest.approx((0, 128))
    assert overlay.box.yInverted()  # pixel (0, 0) at the top left

    table.show_memory(memory_view())  # a key has one colour on the cameras and in the memory table
    swatch = table.poses.item(1, 0).icon().pixmap(12, 12).toImage().pixelColor(6, 6).name()
    assert cameras.marker_colour("front", "grasp") == cameras.marker_colour("wrist", "grasp") == swatch
    assert cameras.marker_colour("front", "above_bin") != swatch


def test_cameras_follow_new_marks_and_skip_an_unchanged_frame(qtbot, monkeypatch):
    cameras = RunCameras(colours=MemoryKeyColours())
    qtbot.addWidget(cameras)
    images = {"front": IMAGE}
    cameras.show_images(images, {"front": CameraMarks((("a", 1.0, 2.0), ("b", 3.0, 4.0)), PATH)})
    cameras.show_images(images, {"front": CameraMarks((("b", 5.0, 6.0),), None)})
    assert cameras.marker_positions("front") == [("b", 5.5, 6.5)]
    assert cameras.path_points("front").shape == (0, 2)

    overlay = cameras._overlays["front"]
    monkeypatch.setattr(overlay.image, "setImage", lambda *a, **k: pytest.fail("set an unchanged image"))
    marks = {}
    cameras.show_images(images, marks)  # the same image, no marks for the camera
    assert cameras.marker_positions("front") == []
    monkeypatch.setattr(overlay, "set_marks", lambda m: pytest.fail("redrew unchanged marks"))
    for _ in range(30):
        cameras.show_images(images, marks)

    cameras.show_images({}, {})
    assert cameras.cameras == [] and cameras.placeholder_text() == PLACEHOLDER


# ---- policy ----------------------------------------------------------------------------------------
def test_policy_panel_plots_p_finished_against_the_threshold_with_counters(qtbot, monkeypatch):
    panel = PolicyPanel()
    qtbot.addWidget(panel)
    assert panel.message_text() == SCRIPTED_TEXT and panel.threshold_value() is None
    assert len(panel.trace_data()[0]) == 0 and set(panel.counter_texts().values()) == {"–"}

    trace = ((10.0, 0.05), (10.1, 0.2), (10.2, 0.7), (10.3, 0.9))
    view = PolicyView(done_trace=trace, threshold=0.8, call="pick(blue_cube)", chunks=17, last_latency_ms=38.44,
                      mean_latency_ms=31.2, max_latency_ms=55.0, stalls=2, stall_ms=84.0)
    panel.show_policy(view)
    t, p = panel.trace_data()
    np.testing.assert_allclose(t, [10.0, 10.1, 10.2, 10.3])
    np.testing.assert_allclose(p, [0.05, 0.2, 0.7, 0.9])
    assert panel.threshold_value() == pytest.approx(0.8)
    assert panel.threshold.label.toPlainText() == "threshold 0.80"
    assert "pick(blue_cube)" in panel.message_text()
    assert panel.counter_texts() == {"chunks": "17", "stalls": "2", "stall time": "84 ms", "latency last": "38.4 ms",
                                     "latency mean": "31.2 ms", "latency max": "55.0 ms"}
    assert tuple(panel.plot.getViewBox().viewRange()[1]) == pytest.approx((-0.02, 1.02))

    monkeypatch.setattr(panel, "_set_trace", lambda trace: pytest.fail("redrew an unchanged view"))
    for _ in range(30):
        panel.show_policy(view)
    panel.show_policy(PolicyView(call=None, threshold=0.8, done_trace=trace))  # between calls: the same trace stays
    assert panel.message_text() == "learned policy between calls" and panel.counter_texts()["latency last"] == "–"
    monkeypatch.undo()

    panel.show_policy(None)
    assert panel.message_text() == SCRIPTED_TEXT and panel.threshold_value() is None
    assert len(panel.trace_data()[0]) == 0 and set(panel.counter_texts().values()) == {"–"}


def test_the_run_setup_of_a_real_arm_has_no_suite_scene_and_a_typed_instruction(qtbot, tmp_path):
    from widgets.run_setup import RunSetup

    setup = RunSetup(tmp_path)
    qtbot.addWidget(setup)
    setup.show()
    assert setup.task.isVisible() and setup.instruction.text()  # the suite's instruction, filled in
    setup.robot.setCurrentText("franky")
    assert not setup.task.isVisible() and not setup.seed.isVisible() and setup.robot_ip.isEnabled()
    assert setup.instruction.text() == "" and "taught" in setup.instruction.placeholderText()
    setup.robot.setCurrentText("sim")
    assert setup.task.isVisible() and not setup.robot_ip.isEnabled()
