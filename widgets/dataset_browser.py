"""The dataset browser: episodes of a folder in a table, a text/task filter, trash and restore.

It renders an `app.dataset.Dataset` and emits intents: `episode_activated(path)` when the user
opens a row; trashing and restoring go through `Dataset.trash` / `Dataset.restore`, which move the
file (never delete it), after `episode_trashed(path)` lets the panel let go of an open episode.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QListWidget, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from app.dataset import Dataset, DatasetError, EpisodeEntry

COLUMNS = ("episode", "task", "s", "segs", "ok", "edited")
ALL_TASKS = "all tasks"


class DatasetBrowserWidget(QWidget):
    episode_activated = Signal(Path)
    episode_trashed = Signal(Path)  # emitted before the file moves
    error_reported = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.dataset: Dataset | None = None
        self._shown: list[EpisodeEntry] = []
        self._folder_label = QLabel("no folder")
        self._folder_label.setWordWrap(True)
        self._filter = QLineEdit(placeholderText="filter by name, task, instruction")
        self._filter.textChanged.connect(self.refresh)
        self._task = QComboBox()
        self._task.currentIndexChanged.connect(self.refresh)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.cellActivated.connect(self._activate)
        self.table.cellDoubleClicked.connect(self._activate)
        self._unreadable = QLabel()
        self._unreadable.setWordWrap(True)
        self._unreadable.setStyleSheet("color: #d08040")
        self._trash_button = QPushButton("Move to trash")
        self._trash_button.clicked.connect(self.trash_selected)
        self.trash_list = QListWidget()
        self.trash_list.setMaximumHeight(80)
        self._restore_button = QPushButton("Restore")
        self._restore_button.clicked.connect(self.restore_selected)

        top = QHBoxLayout()
        top.addWidget(self._filter, 1)
        top.addWidget(self._task)
        trash_row = QHBoxLayout()
        trash_row.addWidget(QLabel("Trash"))
        trash_row.addStretch(1)
        trash_row.addWidget(self._restore_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._folder_label)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self._unreadable)
        layout.addWidget(self._trash_button)
        layout.addLayout(trash_row)
        layout.addWidget(self.trash_list)

    def set_dataset(self, dataset: Dataset | None) -> None:
        self.dataset = dataset
        self._folder_label.setText(str(dataset.folder) if dataset else "no folder")
        self.rescan()

    def rescan(self) -> None:
        if self.dataset is not None:
            self.dataset.scan()
        self._task.blockSignals(True)
        current = self._task.currentText()
        self._task.clear()
        self._task.addItems([ALL_TASKS] + (self.dataset.tasks() if self.dataset else []))
        self._task.setCurrentText(current if current else ALL_TASKS)
        self._task.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        ds = self.dataset
        task = self._task.currentText()
        self._shown = ds.filtered(self._filter.text(), None if task in ("", ALL_TASKS) else task) if ds else []
        self.table.setRowCount(len(self._shown))
        for row, e in enumerate(self._shown):
            ok = "?" if e.success is None else ("yes" if e.success else "no")
            values = (e.name, e.task, f"{e.duration_s:.1f}", str(e.segments), ok, "yes" if e.edited else "")
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                if col == 0:
                    item.setToolTip(e.instruction)
                if col > 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(row, col, item)
        bad = ds.unreadable if ds else []
        self._unreadable.setVisible(bool(bad))
        self._unreadable.setText(f"{len(bad)} unreadable file(s) skipped:\n"
                                 + "\n".join(f"{p.name}: {why.split(': ', 1)[-1]}" for p, why in bad[:3])
                                 if bad else "")
        self.trash_list.clear()
        self.trash_list.addItems([p.name for p in ds.trashed()] if ds else [])

    def selected_path(self) -> Path | None:
        rows = self.table.selectionModel().selectedRows()
        return self._shown[rows[0].row()].path if rows else None

    def select_path(self, path: Path) -> None:
        for row, e in enumerate(self._shown):
            if e.path == Path(path):
                self.table.selectRow(row)

    def trash_selected(self) -> None:
        path = self.selected_path()
        if path is None or self.dataset is None:
            return
        self.episode_trashed.emit(path)
        try:
            self.dataset.trash(path)
        except (DatasetError, OSError) as e:
            self.error_reported.emit(str(e))
        self.refresh()

    def restore_selected(self) -> None:
        item = self.trash_list.currentItem()
        if item is None or self.dataset is None:
            return
        try:
            self.dataset.restore(self.dataset.trash_dir / item.text())
        except (DatasetError, OSError) as e:
            self.error_reported.emit(str(e))
        self.rescan()

    def _activate(self, row: int, _col: int = 0) -> None:
        if 0 <= row < len(self._shown):
            self.episode_activated.emit(self._shown[row].path)
