"""The robot's memory in the Run workspace: the key poses remember() stored and the calls made so far.

`MemoryTable.show_memory(memory)` renders a `MemoryView` (app/run_program.py) the run engine publishes in
every snapshot: a table of key poses (position in metres, the quaternion in the tooltip) and, below
it, the numbered call history, newest last. It redraws only when it is handed another MemoryView,
and then only the parts that changed, so the panel may call it at the poll rate.

`MemoryKeyColours` owns which colour a memory key is drawn in: the table's swatches and the camera
markers (widgets/run_cameras.py) ask the same instance, so a key has one colour in both. Colours are
given in the order keys are first seen and kept for the life of the instance.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QLabel, QListWidget, QListWidgetItem, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from app.run_program import MemoryView
from widgets.tables import read_only_table

# Bright enough to read over a camera image, distinct from the status colours of the program table.
KEY_PALETTE = ("#ff9100", "#00e5ff", "#e040fb", "#76ff03", "#ffea00", "#448aff", "#ff4081", "#1de9b6")
POSE_COLUMNS = ("key", "x (m)", "y (m)", "z (m)")
SWATCH_PX = 12
ROW_PX = 20


class MemoryKeyColours:
    """One colour per memory key, in first-seen order, cycling through KEY_PALETTE."""

    def __init__(self, palette: tuple[str, ...] = KEY_PALETTE):
        self._palette = palette
        self._assigned: dict[str, str] = {}

    def colour(self, key: str) -> str:
        if key not in self._assigned:
            self._assigned[key] = self._palette[len(self._assigned) % len(self._palette)]
        return self._assigned[key]


# The panel may pass its own instance to both widgets; by default they share this one.
SHARED_KEY_COLOURS = MemoryKeyColours()


def _swatch(colour: str) -> QIcon:
    pixmap = QPixmap(SWATCH_PX, SWATCH_PX)
    pixmap.fill(QColor(colour))
    return QIcon(pixmap)


def _number(value: float) -> QTableWidgetItem:
    item = QTableWidgetItem(f"{value:.3f}")
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class MemoryTable(QWidget):
    """Key poses (key, x, y, z) above the call history."""

    def __init__(self, colours: MemoryKeyColours | None = None, parent=None):
        super().__init__(parent)
        self.colours = colours if colours is not None else SHARED_KEY_COLOURS
        self._memory: MemoryView | None = None
        self._poses: dict = {}
        self._history: tuple[str, ...] = ()

        self.poses = read_only_table(POSE_COLUMNS, row_px=ROW_PX, selectable=False)
        self.poses.setToolTip("Key poses stored by remember(key): TCP position in the robot base frame")
        self.empty_poses = QLabel("no key poses remembered yet")
        self.empty_poses.setStyleSheet("color: #888888;")

        self.history = QListWidget()
        self.history.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.history.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.history.setToolTip("The calls made so far, in the order they were made")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("<b>Memory</b>: key poses"))
        layout.addWidget(self.poses, 3)
        layout.addWidget(self.empty_poses)
        layout.addWidget(QLabel("<b>Call history</b>"))
        layout.addWidget(self.history, 2)

    def show_memory(self, memory: MemoryView) -> None:
        if memory is self._memory:
            return
        self._memory = memory
        poses = dict(memory.poses)
        if poses != self._poses:
            self._show_poses(poses)
        if memory.history != self._history:
            self._show_history(memory.history)

    def _show_poses(self, poses: dict) -> None:
        self._poses = poses
        self.poses.setRowCount(len(poses))
        for row, (key, pose) in enumerate(poses.items()):
            name = QTableWidgetItem(_swatch(self.colours.colour(key)), key)
            cells = [name, *(_number(v) for v in pose.position)]
            tip = (f"{key}: position ({', '.join(f'{v:.3f}' for v in pose.position)}) m, "
                   f"quaternion (w, x, y, z) ({', '.join(f'{v:.3f}' for v in pose.quat)})")
            for col, item in enumerate(cells):
                item.setToolTip(tip)
                self.poses.setItem(row, col, item)
        self.empty_poses.setVisible(not poses)

    def _show_history(self, history: tuple[str, ...]) -> None:
        old = self._history
        if history[:len(old)] != old:  # a new run: start over
            self.history.clear()
            old = ()
        for n, code in enumerate(history[len(old):], start=len(old) + 1):
            self.history.addItem(QListWidgetItem(f"{n:3d}  {code}"))
        self._history = history
        self.history.scrollToBottom()

    # ---- for tests ---------------------------------------------------------------------------------
    def pose_rows(self) -> list[tuple[str, ...]]:
        return [tuple(self.poses.item(r, c).text() for c in range(self.poses.columnCount()))
                for r in range(self.poses.rowCount())]

    def pose_tooltip(self, row: int) -> str:
        return self.poses.item(row, 0).toolTip()

    def history_texts(self) -> list[str]:
        return [self.history.item(i).text() for i in range(self.history.count())]
