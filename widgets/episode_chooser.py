"""The episodes a training run will use: a data folder's episodes in a table with a tick per row,
a task filter, "edited labels only", and the count of ticked episodes and frames.

Renders an `app.dataset.Dataset`; the filter itself is `app.train_runs.choose_episodes`. Every row
shown starts ticked; unticking drops one episode. `selected()` is what the Train button trains on.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QFileDialog, QHBoxLayout, QHeaderView,
                               QLabel, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from app.dataset import Dataset, DatasetError, EpisodeEntry
from app.train_runs import choose_episodes

COLUMNS = ("episode", "task", "frames", "edited", "ok")
ALL_TASKS = "all tasks"


class EpisodeChooserWidget(QWidget):
    selection_changed = Signal()
    error_reported = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.dataset: Dataset | None = None
        self._shown: list[EpisodeEntry] = []
        self._unticked: set[Path] = set()

        self.folder_label = QLabel("no data folder")
        self.folder_label.setWordWrap(True)
        self.folder_label.setStyleSheet("color: #757575")
        open_button = QPushButton("Open folder…")
        open_button.setToolTip("Choose the folder of episode files (*.h5) to train on")
        open_button.clicked.connect(self._ask_folder)
        rescan_button = QPushButton("Rescan")
        rescan_button.setToolTip("Read the folder again (new takes, edited labels)")
        rescan_button.clicked.connect(self.rescan)
        self.task = QComboBox()
        self.task.setToolTip("Train on the episodes of one task only (--tasks)")
        self.task.currentIndexChanged.connect(self.refresh)
        self.edited_only = QCheckBox("edited labels only")
        self.edited_only.setToolTip("Only episodes whose labels a person edited in Annotate (--edited-only)")
        self.edited_only.toggled.connect(self.refresh)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.itemChanged.connect(self._on_item_changed)
        self.count_label = QLabel()
        all_button, none_button = QPushButton("All"), QPushButton("None")
        for button, tick in ((all_button, True), (none_button, False)):
            button.setToolTip("Tick every shown episode" if tick else "Untick every shown episode")
            button.clicked.connect(lambda _=False, t=tick: self.tick_all(t))

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_label, 1)
        folder_row.addWidget(rescan_button)
        folder_row.addWidget(open_button)
        filter_row = QHBoxLayout()
        filter_row.addWidget(self.task, 1)
        filter_row.addWidget(self.edited_only)
        count_row = QHBoxLayout()
        count_row.addWidget(self.count_label, 1)
        count_row.addWidget(all_button)
        count_row.addWidget(none_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(folder_row)
        layout.addLayout(filter_row)
        layout.addWidget(self.table, 1)
        layout.addLayout(count_row)
        self.refresh()

    # ---- public API --------------------------------------------------------------------------
    def set_folder(self, path) -> bool:
        try:
            self.dataset = Dataset(path)
        except DatasetError as e:
            self.dataset = None
            self.folder_label.setText("no data folder")
            self.refresh()
            self.error_reported.emit(str(e))
            return False
        self.folder_label.setText(str(self.dataset.folder))
        self.folder_label.setToolTip(str(self.dataset.folder))
        self._unticked.clear()
        self.rescan()
        return True

    def rescan(self) -> None:
        if self.dataset is not None:
            self.dataset.scan()
        current = self.task.currentText()
        self.task.blockSignals(True)
        self.task.clear()
        self.task.addItems([ALL_TASKS] + (self.dataset.tasks() if self.dataset else []))
        self.task.setCurrentText(current or ALL_TASKS)
        self.task.blockSignals(False)
        self.refresh()

    def set_task(self, task: str | None) -> None:
        self.task.setCurrentText(task or ALL_TASKS)

    def task_filter(self) -> str | None:
        text = self.task.currentText()
        return None if text in ("", ALL_TASKS) else text

    def selected(self) -> list[EpisodeEntry]:
        return [e for e in self._shown if e.path not in self._unticked]

    def tick_all(self, tick: bool) -> None:
        shown = {e.path for e in self._shown}
        self._unticked = self._unticked - shown if tick else self._unticked | shown
        self.refresh()

    def set_ticked(self, path, tick: bool) -> None:
        (self._unticked.discard if tick else self._unticked.add)(Path(path))
        self.refresh()

    # ---- rendering ---------------------------------------------------------------------------
    def refresh(self) -> None:
        entries = self.dataset.entries if self.dataset else []
        self._shown = choose_episodes(entries, self.task_filter(), self.edited_only.isChecked())
        self.table.blockSignals(True)
        self.table.setRowCount(len(self._shown))
        for row, e in enumerate(self._shown):
            ok = "?" if e.success is None else ("yes" if e.success else "no")
            for col, value in enumerate((e.name, e.task, str(e.frames), "yes" if e.edited else "", ok)):
                item = QTableWidgetItem(value)
                if col == 0:
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    item.setCheckState(Qt.CheckState.Unchecked if e.path in self._unticked else Qt.CheckState.Checked)
                    item.setToolTip(f"{e.instruction}\n{e.path}")
                else:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(row, col, item)
        self.table.blockSignals(False)
        self._update_count()
        self.selection_changed.emit()

    def _update_count(self) -> None:
        chosen = self.selected()
        if self.dataset is None:
            self.count_label.setText("open a data folder")
        elif not self.dataset.entries:
            self.count_label.setText(f"no episodes in {self.dataset.folder.name}")
        else:
            hidden = len(self.dataset.entries) - len(self._shown)
            self.count_label.setText(f"{len(chosen)} episode{'' if len(chosen) == 1 else 's'}, "
                                     f"{sum(e.frames for e in chosen)} frames selected"
                                     + (f" ({hidden} filtered out)" if hidden else ""))

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == 0 and 0 <= item.row() < len(self._shown):
            path = self._shown[item.row()].path
            (self._unticked.add if item.checkState() == Qt.CheckState.Unchecked else self._unticked.discard)(path)
            self._update_count()
            self.selection_changed.emit()

    def _ask_folder(self) -> None:
        start = str(self.dataset.folder) if self.dataset else ""
        folder = QFileDialog.getExistingDirectory(self, "Episode folder", start)
        if folder:
            self.set_folder(folder)
