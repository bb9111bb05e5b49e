"""The Annotate workspace (widgets/annotate_panel.py) offscreen with pytest-qt."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from recorders.episode_file import open_episode

pytest.importorskip("pytestqt")


@pytest.fixture
def folder(recorded, tmp_path) -> Path:
    for p in recorded:
        shutil.copy(p, tmp_path / p.name)
    return tmp_path


@pytest.fixture
def panel(qtbot, folder):
    from widgets.annotate_panel import AnnotatePanel

    widget = AnnotatePanel(folder)
    qtbot.addWidget(widget)
    widget.resize(1400, 900)
    widget.show()
    assert widget.open_episode(folder / "stack_0000.h5")
    return widget


def test_opens_episode_in_every_view(panel):
    assert panel.browser.table.rowCount() == 2
    assert len(panel.track.regions) == 2 == panel.table.table_model.rowCount()
    assert panel.player.frame == 0 and not panel.has_unsaved_changes()
    panel.actions.step_forward.trigger()
    assert panel.player.frame == 1 and panel.track.cursor.value() == 1


def test_boundary_drag_is_one_undo_step_and_snaps(panel, qtbot):
    region = panel.track.regions[0]
    event = panel.model.gripper_events[1]
    for x in (52, 48, event - 2):  # a drag moves the edge line; nothing is pushed until it finishes
        region.lines[1].setValue(x)
    assert panel.undo_stack.count() == 0
    assert panel.track.regions[1].getRegion()[0] == pytest.approx(event - 2)  # the neighbour follows live
    with qtbot.waitSignal(panel.model.labels_changed):
        region.lines[1].sigPositionChangeFinished.emit(region.lines[1])  # the mouse is released
    assert panel.undo_stack.count() == 1
    assert panel.model.segments[0].end == event  # snapped to the gripper opening
    assert panel.has_unsaved_changes() and panel.title.text().startswith("stack_0000.h5 *")
    panel.actions.undo.trigger()
    assert panel.model.segments[0].end == 50 and not panel.has_unsaved_changes()


def test_invalid_code_in_table_is_rejected_with_reason(panel, qtbot):
    model = panel.table.table_model
    index = model.index(1, 3)
    with qtbot.waitSignal(model.code_rejected) as blocker:
        assert not model.setData(index, 'pick("yellow cube")')
    assert "unknown object 'yellow cube'" in blocker.args[2]
    assert "yellow cube" in panel.status.text()
    assert panel.undo_stack.count() == 0 and panel.model.segments[1].code == 'place("red cube", "green cube")'
    assert model.setData(index, 'place("red cube", "blue zone")')
    assert model.data(index) == 'place("red cube", "blue zone")' and model.data(model.index(1, 6)) == "edited"


def test_save_and_reopen_shows_edits(panel, folder, qtbot):
    panel.table.table_model.setData(panel.table.table_model.index(0, 3), 'pick("green cube")')
    panel.actions.split.trigger()  # at the cursor (frame 0): refused, the labels stay
    assert "already a segment boundary" in panel.status.text()
    panel.player.set_frame(30)
    panel.actions.split.trigger()
    assert panel.undo_stack.count() == 2
    panel.actions.save.trigger()
    assert not panel.has_unsaved_changes()
    assert panel.browser.table.item(0, 5).text() == "yes"  # edited flag in the browser
    assert panel.open_episode(folder / "stack_0001.h5")
    assert panel.open_episode(folder / "stack_0000.h5")
    codes = [(s.code, s.source) for s in panel.model.segments]
    assert codes[:2] == [('pick("green cube")', "edited"), ('pick("green cube")', "edited")]
    with open_episode(folder / "stack_0000.h5") as ep:
        assert ep.labels_edited and ep.labels[1].start == 30


def test_switching_episode_with_unsaved_edits_asks(panel, folder):
    panel.actions.trim_start.trigger()
    panel.player.set_frame(3)
    panel.actions.trim_start.trigger()
    assert panel.model.trim[0] == 3
    answers = iter(["cancel", "discard"])
    panel.ask_unsaved = lambda: next(answers)
    assert not panel.open_episode(folder / "stack_0001.h5")
    assert panel.episode.path.name == "stack_0000.h5" and panel.has_unsaved_changes()
    assert panel.open_episode(folder / "stack_0001.h5")
    assert panel.undo_stack.count() == 0
    with open_episode(folder / "stack_0000.h5") as ep:
        assert not ep.labels_edited


def test_rerun_segmentation_and_insert_through_prompts(panel):
    panel.ask_insert = lambda start, end: (10, 20, "home()")
    panel.actions.insert.trigger()
    assert any(s.code == "home()" for s in panel.model.segments)
    panel.ask_keep_edits = lambda: False
    panel.actions.resegment.trigger()
    assert [s.source for s in panel.model.segments] == ["auto", "auto"]
    assert panel.undo_stack.count() == 2


def test_trash_and_restore_through_browser(panel, folder):
    panel.browser.select_path(folder / "stack_0000.h5")
    panel.browser.trash_selected()
    assert panel.episode is None  # the open episode was let go before it moved
    assert (folder / ".trash" / "stack_0000.h5").exists()
    assert panel.browser.table.rowCount() == 1 and panel.browser.trash_list.count() == 1
    panel.browser.trash_list.setCurrentRow(0)
    panel.browser.restore_selected()
    assert (folder / "stack_0000.h5").exists() and panel.browser.table.rowCount() == 2
    assert panel.browser.trash_list.count() == 0


def test_screenshot(panel):
    panel.player.set_frame(3)
    panel.actions.trim_start.trigger()
    panel.player.set_frame(60)
    panel.actions.split.trigger()
    panel.player.set_frame(40)
    panel.table.select_row(2)
    assert panel.grab().save("/tmp/annotate.png")


# ---- logged calls: events on the track and in the events table, status and source per segment ----
@pytest.fixture(scope="module")
def swaps(tmp_path_factory) -> Path:
    """A scripted swap (remember x2, free_space, recall x2, done) and the same swap aborted by the
    operator during its third pick."""
    import itertools

    from recorders.demo_recorder import record_demo
    from recorders.task_suite import make_instance

    folder = tmp_path_factory.mktemp("swaps")
    assert record_demo(make_instance("swap", 0), folder / "swap_0000.h5").success
    ticks = itertools.count()
    result = record_demo(make_instance("swap", 0), folder / "swap_aborted.h5", should_abort=lambda: next(ticks) >= 170)
    assert result.calls[-1] == ('pick("yellow cube")', "aborted")
    return folder


@pytest.fixture
def swap_panel(qtbot, swaps, tmp_path):
    from widgets.annotate_panel import AnnotatePanel

    for p in swaps.glob("*.h5"):
        shutil.copy(p, tmp_path / p.name)
    widget = AnnotatePanel(tmp_path)
    qtbot.addWidget(widget)
    widget.resize(1400, 900)
    widget.show()
    assert widget.open_episode(tmp_path / "swap_0000.h5")
    return widget


def _cells(model, column: int) -> list:
    return [model.data(model.index(row, column)) for row in range(model.rowCount())]


def test_swap_events_are_marked_on_the_track_at_their_frames(swap_panel):
    from widgets.segment_track import EVENT_Y

    model, track = swap_panel.model, swap_panel.track
    spots = [(p.pos().x(), p.pos().y(), p.data()) for p in track.event_spots.points()]
    memory = [(x, data.split("\n")[0]) for x, y, data in spots if data.startswith(("remember", "recall"))]
    assert [code for _, code in memory] == ['remember("yellow cube start", "yellow cube")',
                                            'remember("red cube start", "red cube")',
                                            'recall("yellow cube start")', 'recall("red cube start")']
    # remember before anything moves; each recall where the place that uses it starts
    places = {s.code: s.start for s in model.segments}
    assert memory[0][0] == memory[1][0] == 0
    assert memory[2][0] == places['place("red cube", recall("yellow cube start"))']
    assert memory[3][0] == places['place("yellow cube", recall("red cube start"))']
    assert all(y == pytest.approx(EVENT_Y) for _, y, _ in spots) and len(spots) == 6  # + free_space, done
    assert "frame 0, 0.00 s · ok · by script" in spots[0][2]  # the tooltip: code, time, status, source
    labels = track.event_label_texts()
    assert labels[:2] == ["remember ×2", ""]  # two events on one frame share a label
    assert labels[3] == 'recall("yellow cube start")'
    assert len(track.regions) == 6  # events are not segments


def test_table_shows_status_and_source_and_the_events(swap_panel, qtbot):
    from widgets.segment_table import COLUMNS

    table = swap_panel.table.table_model
    status, source, label = (COLUMNS.index(c) for c in ("status", "source", "label"))
    assert table.rowCount() == 6
    assert _cells(table, status) == ["ok"] * 6 and _cells(table, source) == ["script"] * 6
    assert _cells(table, label) == ["auto"] * 6
    assert "by script" in table.data(table.index(1, status), Qt.ItemDataRole.ToolTipRole)
    events = swap_panel.event_table
    codes = _cells(events.table_model, 2)
    assert codes == [e.call.code for e in swap_panel.model.events] and len(codes) == 6
    assert codes[3] == 'recall("yellow cube start")' and _cells(events.table_model, 0)[3] == 119
    assert not events.table_model.flags(events.table_model.index(3, 2)) & Qt.ItemFlag.ItemIsEditable
    with qtbot.waitSignal(events.seek_requested):  # clicking an event seeks the player to it
        qtbot.mouseClick(events.viewport(), Qt.MouseButton.LeftButton, pos=events.visualRect(
            events.table_model.index(3, 2)).center())
    assert swap_panel.player.frame == 119 and swap_panel.track.cursor.value() == 119


def test_aborted_call_is_shown_with_reason_and_a_colour_cue(swap_panel):
    from widgets.segment_table import COLUMNS, FAILED_BACKGROUND

    assert swap_panel.open_episode(swap_panel.dataset.folder / "swap_aborted.h5")
    table = swap_panel.table.table_model
    status = COLUMNS.index("status")
    assert _cells(table, status) == ["ok", "ok", "ok", "ok", "aborted"]
    last = table.index(4, status)
    assert "aborted: aborted by the operator · by script" in table.data(last, Qt.ItemDataRole.ToolTipRole)
    assert table.data(table.index(4, 0), Qt.ItemDataRole.BackgroundRole) == FAILED_BACKGROUND
    assert table.data(table.index(3, 0), Qt.ItemDataRole.BackgroundRole) is None
    assert [e.call.name for e in swap_panel.model.events] == ["remember", "remember", "free_space", "recall"]
    assert swap_panel.track.segment_label_texts()[4].startswith("✗")  # and on the track
    assert not any("✗" in text for text in swap_panel.track.segment_label_texts()[:4])


def test_edited_segment_has_no_call_and_saving_writes_segments_only(swap_panel, qtbot):
    from widgets.segment_table import COLUMNS

    table = swap_panel.table.table_model
    status, source = COLUMNS.index("status"), COLUMNS.index("source")
    assert table.setData(table.index(2, 3), "home()")
    assert (table.data(table.index(2, status)), table.data(table.index(2, source))) == ("", "edited")
    assert table.data(table.index(3, status)) == "ok"  # its neighbour still has its call
    swap_panel.actions.save.trigger()
    with open_episode(swap_panel.episode.path) as ep:
        assert [s.code for s in ep.labels] == [s.code for s in swap_panel.model.segments]
        assert not any(s.code.startswith(("remember", "recall", "free_space", "done")) for s in ep.labels)
        assert len(ep.calls) == 12  # the call log is untouched
    assert len(swap_panel.model.events) == 6 == len(swap_panel.track.event_spots.points())


def _drag(track, frames: tuple[int, ...], y: float) -> None:
    """A real left-button drag over the track's viewport, through view coordinates (frame, y)."""
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    def send(kind, frame, button, buttons):
        pos = QPointF(track.mapFromScene(track.getPlotItem().vb.mapViewToScene(QPointF(frame, y))))
        event = QMouseEvent(kind, pos, QPointF(track.viewport().mapToGlobal(pos)), button, buttons,
                            Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(track.viewport(), event)

    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    send(QEvent.Type.MouseMove, frames[0], none, none)  # hover first: the edge claims the drag
    send(QEvent.Type.MouseButtonPress, frames[0], left, left)
    for frame in frames[1:]:
        send(QEvent.Type.MouseMove, frame, none, left)
    send(QEvent.Type.MouseButtonRelease, frames[-1], left, none)


@pytest.fixture
def every_mouse_move():
    """pyqtgraph drops mouse moves closer than 10 ms apart; a synthetic drag sends them at once."""
    import pyqtgraph as pg

    before = pg.getConfigOption("mouseRateLimit")
    pg.setConfigOption("mouseRateLimit", -1)
    yield
    pg.setConfigOption("mouseRateLimit", before)


def test_dragging_an_edge_through_an_event_marker_still_moves_and_snaps(swap_panel, qtbot, every_mouse_move):
    from widgets.segment_track import EVENT_Y

    model, track = swap_panel.model, swap_panel.track
    assert model.segments[0].end == 46 and model.events[2].frame == 46  # free_space sits on this edge
    assert 65 in model.gripper_events
    with qtbot.waitSignal(model.labels_changed):
        _drag(track, (46, 50, 56, 63), EVENT_Y)  # grabbed on the diamond, dropped 2 frames from a gripper event
    assert model.segments[0].end == 65 == model.segments[1].start and swap_panel.undo_stack.count() == 1
    assert [p.pos().x() for p in track.event_spots.points()][2] == 46  # the event stays where it happened


def test_screenshot_with_events(swap_panel):
    swap_panel.player.set_frame(60)
    assert swap_panel.grab().save("/tmp/annotate_events.png")
    assert swap_panel.open_episode(swap_panel.dataset.folder / "swap_aborted.h5")
    swap_panel.player.set_frame(160)
    swap_panel.table.select_row(4)
    assert swap_panel.grab().save("/tmp/annotate_aborted.png")
