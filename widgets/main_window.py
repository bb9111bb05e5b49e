"""The main window: composes the workspaces and the e-stop; owns no domain data.

Workspaces are tabs (Ctrl+1, Ctrl+2). The red E-STOP button and the Esc key stop the arm at once
from any workspace (an application-wide shortcut, so a focused table or text field cannot swallow
it). Closing the window asks about unsaved label edits first.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QMainWindow, QMessageBox, QPushButton, QTabWidget, QToolBar, QWidget

ESTOP_STYLE = ("QPushButton { background: #c62828; color: white; font-weight: bold; font-size: 15px;"
               " border-radius: 6px; padding: 6px 22px; } QPushButton:pressed { background: #8e0000; }")


class MainWindow(QMainWindow):
    def __init__(self, workspaces: list[tuple[str, QWidget]], estop: Callable[[], None],
                 has_unsaved_changes: Callable[[], bool] = lambda: False,
                 save_changes: Callable[[], bool] = lambda: True,
                 on_close: Callable[[], None] = lambda: None, title: str = "Code2Act"):
        super().__init__()
        self.setWindowTitle(title)
        self._estop = estop
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

        bar = QToolBar("Safety")
        bar.setMovable(False)
        self.estop_button = QPushButton("E-STOP  (Esc)")
        self.estop_button.setStyleSheet(ESTOP_STYLE)
        self.estop_button.setToolTip("Stop the arm at once (Esc works in every workspace)")
        self.estop_button.clicked.connect(self.trigger_estop)
        bar.addWidget(self.estop_button)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.estop_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self.estop_shortcut.setContext(Qt.ShortcutContext.ApplicationShortcut)
        self.estop_shortcut.activated.connect(self.trigger_estop)
        self.resize(1440, 920)

    def trigger_estop(self) -> None:
        self._estop()
        self.statusBar().showMessage("E-STOP engaged: the arm is stopped; reset it in the Record workspace")

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
        self._on_close()
        event.accept()
