"""The main window: composes the workspaces and the global safety bar; owns no domain data.

Workspaces are tabs (Ctrl+1, Ctrl+2, ...). The safety bar above every workspace holds the red E-STOP
button and, while the e-stop is latched, says so and offers "Reset e-stop": the window polls the
latched state through `estop_reason()` (the session owns it) and sends `estop()` / `reset_estop()`.

Keys (SAFETY_KEYS, also in the teleop key help):
- F12 stops the arm from anywhere, always: an application event filter takes it before any widget,
  even inside a cell edit or a dialog.
- Esc stops the arm too (an application-wide shortcut, so a focused table or text field cannot
  swallow it), except while a cell editor or a popup is open: there Esc cancels the edit, as
  everywhere else, and never touches the arm.
- Ctrl+Shift+R resets the e-stop from any workspace.
Closing the window asks about unsaved label edits first.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView, QApplication, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QPushButton, QTabWidget, QToolBar,
    QWidget,
)

ESTOP_KEY = Qt.Key.Key_F12  # stops always, even while editing
ESTOP_OR_CANCEL_KEY = Qt.Key.Key_Escape  # stops unless a cell edit or popup is open, which it cancels
RESET_KEYS = "Ctrl+Shift+R"
SAFETY_KEYS = (
    ("F12", "E-STOP, always (any workspace, even while editing)"),
    ("Esc", "E-STOP (any workspace); in an open cell edit or popup it only cancels that"),
    (RESET_KEYS, "reset a latched e-stop (any workspace)"),
)
ESTOP_POLL_MS = 50

ESTOP_STYLE = ("QPushButton { background: #c62828; color: white; font-weight: bold; font-size: 15px;"
               " border-radius: 6px; padding: 6px 22px; } QPushButton:pressed { background: #8e0000; }")
ESTOP_LATCHED_STYLE = ("QPushButton { background: #7f0000; color: white; font-weight: bold; font-size: 15px;"
                       " border: 3px solid #ffd600; border-radius: 6px; padding: 4px 18px; }"
                       " QPushButton:pressed { background: #4a0000; }")
RESET_ESTOP_STYLE = ("QPushButton { background: white; color: #212121; font-weight: bold; border: 2px solid #424242;"
                     " border-radius: 5px; padding: 5px 16px; } QPushButton:hover { background: #eeeeee; }"
                     " QPushButton:pressed { background: #d6d6d6; }")
LATCHED_BAR_STYLE = "QToolBar { background: #ffcdd2; border-bottom: 2px solid #c62828; }"


class MainWindow(QMainWindow):
    def __init__(self, workspaces: list[tuple[str, QWidget]], estop: Callable[[], None],
                 reset_estop: Callable[[], None], estop_reason: Callable[[], str | None],
                 has_unsaved_changes: Callable[[], bool] = lambda: False,
                 save_changes: Callable[[], bool] = lambda: True,
                 on_close: Callable[[], None] = lambda: None, title: str = "Code2Act"):
        super().__init__()
        self.setWindowTitle(title)
        self._estop = estop
        self._reset_estop = reset_estop
        self._estop_reason = estop_reason
        self._shown_reason: str | None = None
        self._has_unsaved = has_unsaved_changes
        self._save = save_changes
        self._on_close = on_close

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        for i, (name, widget) in enumerate(workspaces):
            self.tabs.addTab(widget, name)
            action = QAction(f"Show {name}", self)
            action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _=False, k=i: self.tabs.setCurrentIndex(k))
            self.addAction(action)
        self.setCentralWidget(self.tabs)
        self._safety_bar()

        self.estop_shortcut = QShortcut(QKeySequence(ESTOP_OR_CANCEL_KEY), self)
        self.estop_shortcut.setContext(Qt.ShortcutContext.ApplicationShortcut)
        self.estop_shortcut.activated.connect(self.trigger_estop)
        self.reset_shortcut = QShortcut(QKeySequence(RESET_KEYS), self)
        self.reset_shortcut.setContext(Qt.ShortcutContext.ApplicationShortcut)
        self.reset_shortcut.activated.connect(self.reset_estop)
        self._keys = _SafetyKeys(self)
        QApplication.instance().installEventFilter(self._keys)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.poll_estop)
        self._timer.start(ESTOP_POLL_MS)
        self.resize(1440, 920)

    def _safety_bar(self) -> None:
        self.safety_bar = QToolBar("Safety")
        self.safety_bar.setMovable(False)
        self.estop_button = QPushButton()
        self.estop_button.setToolTip(
            "Stop the arm at once: F12 always; Esc too, unless it is cancelling a cell edit or a popup")
        self.estop_button.clicked.connect(self.trigger_estop)
        self.estop_label = QLabel()
        self.estop_label.setStyleSheet("color: #7f0000; font-weight: bold; padding: 0 10px;")
        self.reset_estop_button = QPushButton(f"Reset e-stop  ({RESET_KEYS})")
        self.reset_estop_button.setStyleSheet(RESET_ESTOP_STYLE)
        self.reset_estop_button.setToolTip("Make sure the workspace is clear, then let the arm move again "
                                           f"({RESET_KEYS} works in every workspace)")
        self.reset_estop_button.clicked.connect(self.reset_estop)
        row = QWidget()  # one widget in the bar: its children show and hide at once (a toolbar's actions lag)
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.estop_button)
        layout.addWidget(self.estop_label)
        layout.addWidget(self.reset_estop_button)
        layout.addStretch(1)
        self.safety_bar.addWidget(row)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.safety_bar)
        self._show_estop(None)

    # ---- intents -----------------------------------------------------------------------------------
    def trigger_estop(self) -> None:
        self._estop()
        self.poll_estop()

    def reset_estop(self) -> None:
        self._reset_estop()
        self.poll_estop()

    # ---- rendering ---------------------------------------------------------------------------------
    def poll_estop(self) -> None:
        reason = self._estop_reason()
        if reason != self._shown_reason:
            was_latched = self._shown_reason is not None
            self._show_estop(reason)
            if reason is None and was_latched:
                self.statusBar().showMessage("E-stop reset: the arm accepts commands again", 10_000)

    def _show_estop(self, reason: str | None) -> None:
        self._shown_reason = reason
        latched = reason is not None
        self.estop_button.setText("■ E-STOP LATCHED" if latched else "E-STOP  (Esc / F12)")
        self.estop_button.setStyleSheet(ESTOP_LATCHED_STYLE if latched else ESTOP_STYLE)
        self.estop_label.setText(f"Arm stopped ({reason}): it refuses every command until the e-stop is reset"
                                 if latched else "")
        self.estop_label.setVisible(latched)
        self.reset_estop_button.setVisible(latched)
        self.safety_bar.setStyleSheet(LATCHED_BAR_STYLE if latched else "")
        if latched:
            self.statusBar().showMessage(f"E-STOP latched ({reason}): reset it with the button above or {RESET_KEYS}")
        else:
            self.statusBar().clearMessage()

    def is_estop_shown(self) -> bool:
        return self._shown_reason is not None

    # ---- closing -----------------------------------------------------------------------------------
    def ask_unsaved_on_close(self) -> str:
        """'save' | 'discard' | 'cancel' (replaced in tests)."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved label edits",
                          "Save the label edits of the open episode before closing?",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self)
        answer = box.exec()
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(QMessageBox.StandardButton(answer), "cancel")

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._has_unsaved():
            answer = self.ask_unsaved_on_close()
            if answer == "cancel" or (answer == "save" and not self._save()):
                event.ignore()
                return
        self._timer.stop()
        QApplication.instance().removeEventFilter(self._keys)
        self._on_close()
        event.accept()


class _SafetyKeys(QObject):
    """Application event filter: F12 reaches the e-stop before any widget or dialog can take it; Esc is
    left to an open cell editor or popup (its ShortcutOverride is accepted), so it cancels the edit."""

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self._window = window

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind not in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride) or not self._window.isVisible():
            return False
        key = event.key()
        if key == ESTOP_KEY:
            if kind == QEvent.Type.KeyPress and not event.isAutoRepeat():
                self._window.trigger_estop()
            event.accept()
            return True
        if key == ESTOP_OR_CANCEL_KEY and kind == QEvent.Type.ShortcutOverride and edit_open():
            event.accept()  # the focused editor takes Esc as a key press: the shortcut does not fire
            return True
        return False


def edit_open() -> bool:
    """True while Esc has something to cancel: a popup (menu, combo list) or an item view's cell editor
    with the focus."""
    if QApplication.activePopupWidget() is not None:
        return True
    focus = QApplication.focusWidget()
    parent = focus.parentWidget() if focus is not None else None
    while parent is not None:
        if isinstance(parent, QAbstractItemView):
            return parent.state() == QAbstractItemView.State.EditingState
        parent = parent.parentWidget()
    return False
