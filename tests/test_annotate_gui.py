"""The Annotate workspace (widgets/annotate_panel.py) offscreen with pytest-qt."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
    assert model.data(index) == 'place("red cube", "blue zone")' and model.data(model.index(1, 4)) == "edited"


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
