"""The main window: workspaces as tabs, the e-stop (Esc / F12 / button) from anywhere, its latched state
and reset on the global bar of every workspace, Esc cancelling a cell edit, unsaved edits on close."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLineEdit, QTableWidget, QTableWidgetItem, QWidget

from widgets.main_window import MainWindow
from widgets.teleop_keys import teleop_help_text

CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


class FakeArm:
    """The session's side, as the window sees it: estop() latches, reset_estop() clears."""

    def __init__(self):
        self.reason: str | None = None
        self.estops = 0
        self.resets = 0

    def estop(self) -> None:
        self.estops += 1
        self.reason = "e-stop pressed"

    def reset_estop(self) -> None:
        self.resets += 1
        self.reason = None


def make(qtbot, unsaved=False):
    calls = {"closed": 0, "saved": 0}
    arm = FakeArm()
    editor = QLineEdit()
    table = QTableWidget(2, 2)
    table.setItem(0, 1, QTableWidgetItem('pick("red cube")'))
    window = MainWindow([("Record", QWidget()), ("Annotate", editor), ("Train", table)],
                        estop=arm.estop, reset_estop=arm.reset_estop, estop_reason=lambda: arm.reason,
                        has_unsaved_changes=lambda: unsaved,
                        save_changes=lambda: calls.__setitem__("saved", calls["saved"] + 1) or True,
                        on_close=lambda: calls.__setitem__("closed", calls["closed"] + 1))
    qtbot.addWidget(window)
    window.show()
    window.windowHandle().requestActivate()  # shortcuts fire in the active window
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
    return window, editor, table, arm, calls


def says_stopped(window) -> bool:
    texts = [window.statusBar().currentMessage(), window.estop_button.text(), window.estop_label.text()]
    return any(word in t.lower() for t in texts for word in ("latched", "stopped"))


def test_escape_stops_the_arm_from_any_workspace_even_inside_a_text_field(qtbot):
    window, editor, _, arm, _ = make(qtbot)
    assert not window.reset_estop_button.isVisible() and not says_stopped(window)
    qtbot.keyClick(window.tabs, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentIndex() == 1
    editor.setFocus()
    qtbot.keyClick(editor, Qt.Key.Key_Escape)
    assert arm.estops == 1
    qtbot.mouseClick(window.estop_button, Qt.MouseButton.LeftButton)
    assert arm.estops == 2 and "E-STOP latched" in window.statusBar().currentMessage()


def test_latched_estop_shows_on_every_workspace_and_resets_from_the_global_bar(qtbot):
    window, _, _, arm, _ = make(qtbot)
    qtbot.mouseClick(window.estop_button, Qt.MouseButton.LeftButton)
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        assert window.estop_button.isVisible() and "LATCHED" in window.estop_button.text()
        assert window.reset_estop_button.isVisible() and "Ctrl+Shift+R" in window.reset_estop_button.text()
        assert "e-stop pressed" in window.estop_label.text() and window.estop_label.isVisible()
    qtbot.mouseClick(window.reset_estop_button, Qt.MouseButton.LeftButton)
    assert arm.resets == 1 and arm.reason is None
    assert not window.reset_estop_button.isVisible() and not window.estop_label.isVisible()
    assert not says_stopped(window), window.statusBar().currentMessage()
    assert "reset" in window.statusBar().currentMessage()


def test_reset_shortcut_works_in_every_workspace_and_the_state_is_the_sessions(qtbot):
    window, _, table, arm, _ = make(qtbot)
    arm.reason = "watchdog: commands stalled"  # latched by the session itself, not by the window
    qtbot.waitUntil(lambda: window.reset_estop_button.isVisible(), timeout=3000)
    assert "watchdog" in window.estop_label.text()
    window.tabs.setCurrentIndex(2)
    table.setFocus()
    qtbot.keyClick(table, Qt.Key.Key_R, CTRL_SHIFT)
    assert arm.resets == 1 and not window.reset_estop_button.isVisible() and not says_stopped(window)


def test_escape_cancels_a_cell_edit_without_the_estop_and_f12_always_stops(qtbot):
    window, _, table, arm, _ = make(qtbot)
    window.tabs.setCurrentIndex(2)
    table.setFocus()
    table.setCurrentCell(0, 1)
    table.editItem(table.item(0, 1))
    editor = QApplication.focusWidget()
    assert isinstance(editor, QLineEdit) and editor is not table
    editor.selectAll()
    qtbot.keyClicks(editor, 'place("blue cube")')
    qtbot.keyClick(editor, Qt.Key.Key_Escape)
    assert arm.estops == 0 and not window.is_estop_shown()
    assert table.state() != table.State.EditingState  # the edit is closed ...
    assert table.item(0, 1).text() == 'pick("red cube")'  # ... and cancelled

    table.editItem(table.item(0, 1))  # F12 stops even in the middle of an edit
    editor = QApplication.focusWidget()
    qtbot.keyClick(editor, Qt.Key.Key_F12)
    assert arm.estops == 1 and window.reset_estop_button.isVisible()
    qtbot.keyClick(editor, Qt.Key.Key_Escape)  # and Esc still only cancels that edit
    assert arm.estops == 1 and table.state() != table.State.EditingState

    window.reset_estop()
    table.setFocus()  # no edit open: Esc is the e-stop again
    qtbot.keyClick(table, Qt.Key.Key_Escape)
    assert arm.estops == 2 and window.is_estop_shown()


def test_key_help_and_tooltip_say_which_key_does_what(qtbot):
    window, *_ = make(qtbot)
    help_text = teleop_help_text()
    assert "F12" in help_text and "Esc" in help_text and "Ctrl+Shift+R" in help_text
    assert "cancels" in help_text
    tip = window.estop_button.toolTip()
    assert "F12" in tip and "Esc" in tip and "cell edit" in tip
    assert "Esc / F12" in window.estop_button.text()


def test_closing_with_unsaved_edits_asks_first(qtbot):
    window, _, _, arm, calls = make(qtbot, unsaved=True)
    window.ask_unsaved_on_close = lambda: "cancel"
    window.close()
    assert window.isVisible() and calls["closed"] == 0
    window.ask_unsaved_on_close = lambda: "save"
    window.close()
    assert not window.isVisible() and calls == {"closed": 1, "saved": 1} and arm.estops == 0
