"""The main window: workspaces as tabs, Esc / E-STOP from anywhere, unsaved edits on close."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLineEdit, QWidget

from widgets.main_window import MainWindow


def make(qtbot, unsaved=False):
    calls = {"estop": 0, "closed": 0, "saved": 0}
    editor = QLineEdit()
    window = MainWindow([("Record", QWidget()), ("Annotate", editor)],
                        estop=lambda: calls.__setitem__("estop", calls["estop"] + 1),
                        has_unsaved_changes=lambda: unsaved,
                        save_changes=lambda: calls.__setitem__("saved", calls["saved"] + 1) or True,
                        on_close=lambda: calls.__setitem__("closed", calls["closed"] + 1))
    qtbot.addWidget(window)
    window.show()
    window.windowHandle().requestActivate()  # shortcuts fire in the active window
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
    return window, editor, calls


def test_escape_stops_the_arm_from_any_workspace_even_inside_a_text_field(qtbot):
    window, editor, calls = make(qtbot)
    qtbot.keyClick(window.tabs, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentIndex() == 1
    editor.setFocus()
    qtbot.keyClick(editor, Qt.Key.Key_Escape)
    assert calls["estop"] == 1
    qtbot.mouseClick(window.estop_button, Qt.MouseButton.LeftButton)
    assert calls["estop"] == 2 and "E-STOP" in window.statusBar().currentMessage()


def test_closing_with_unsaved_edits_asks_first(qtbot):
    window, _, calls = make(qtbot, unsaved=True)
    window.ask_unsaved_on_close = lambda: "cancel"
    window.close()
    assert window.isVisible() and calls["closed"] == 0
    window.ask_unsaved_on_close = lambda: "save"
    window.close()
    assert not window.isVisible() and calls == {"estop": 0, "closed": 1, "saved": 1}
