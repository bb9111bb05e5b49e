"""The runs of a runs folder and the checkpoints of the selected one, as two tables.

Renders what app/train_runs.py reads (`list_runs`, `list_checkpoints`) and emits intents: a run
chosen (`run_selected`), a checkpoint chosen for evaluation (`checkpoint_selected`), another runs
folder (`runs_dir_changed`). The Train panel decides what to read and when.
"""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFileDialog, QGroupBox, QHBoxLayout, QPushButton, QSplitter, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from app.train_runs import CheckpointInfo, RunInfo, RunProgress, list_runs, run_info
from widgets.tables import read_only_table


class RunBrowserWidget(QWidget):
    run_selected = Signal(object)  # Path | None
    checkpoint_selected = Signal(object)  # Path | None (none selected: the run's newest policy)
    runs_dir_changed = Signal(object)  # Path
    refresh_requested = Signal()

    def __init__(self, runs_dir: Path, parent=None):
        super().__init__(parent)
        self.runs_dir = Path(runs_dir)
        self.runs: list[RunInfo] = []
        self.checkpoints: list[CheckpointInfo] = []
        self._checkpoints_key: tuple | None = None  # what the checkpoint table shows

        self.runs_box = QGroupBox()
        self.runs_table = read_only_table(("run", "state", "loss"))
        self.runs_table.itemSelectionChanged.connect(
            lambda: self.run_selected.emit(r.path if (r := self.selected_run()) else None))
        refresh = QPushButton("Refresh")
        refresh.setToolTip("List the runs folder again")
        refresh.clicked.connect(self.refresh_requested)
        change = QPushButton("Runs folder…")
        change.setToolTip("Choose the folder whose runs are listed and where new runs go")
        change.clicked.connect(self._ask_runs_dir)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(refresh)
        buttons.addWidget(change)
        runs_layout = QVBoxLayout(self.runs_box)
        runs_layout.addWidget(self.runs_table, 1)
        runs_layout.addLayout(buttons)

        self.checkpoints_box = QGroupBox("Checkpoints")
        self.checkpoints_table = read_only_table(("checkpoint", "step", "saved"))
        self.checkpoints_table.setToolTip("Select one to evaluate it; with none selected the run's newest is used")
        self.checkpoints_table.itemSelectionChanged.connect(
            lambda: self.checkpoint_selected.emit(self.selected_checkpoint()))
        QVBoxLayout(self.checkpoints_box).addWidget(self.checkpoints_table)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.runs_box)
        split.addWidget(self.checkpoints_box)
        split.setSizes([220, 200])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    # ---- runs --------------------------------------------------------------------------------
    def list(self, active=(), select: Path | None = None) -> Path | None:
        """Re-list the runs folder and select `select` (default: the newest run); returns the selection.
        A just-launched active run is listed before it has written anything."""
        runs = list_runs(self.runs_dir, active)
        for run in active:
            if run not in [r.path for r in runs]:
                runs.insert(0, run_info(run, active))
        self.runs = runs
        self.runs_box.setTitle(f"Runs in {_short(self.runs_dir)}")  # a group title cannot wrap: kept short
        self.runs_box.setToolTip(str(self.runs_dir))
        self.runs_table.blockSignals(True)
        self.runs_table.setRowCount(len(runs))
        chosen = next((row for row, r in enumerate(runs) if r.path == select), 0 if runs and select is None else -1)
        for row, r in enumerate(runs):
            for col, value in enumerate((r.name, r.describe(), "" if r.loss is None else f"{r.loss:.4f}")):
                item = QTableWidgetItem(value)
                item.setToolTip(str(r.path))
                self.runs_table.setItem(row, col, item)
        self.runs_table.clearSelection()
        if chosen >= 0:
            self.runs_table.selectRow(chosen)
        self.runs_table.blockSignals(False)
        return runs[chosen].path if chosen >= 0 else None

    def selected_run(self) -> RunInfo | None:
        rows = self.runs_table.selectionModel().selectedRows()
        return self.runs[rows[0].row()] if rows and rows[0].row() < len(self.runs) else None

    def show_running(self, run: Path, progress: RunProgress) -> None:
        """The training run's row follows its log (the rest of the table is re-listed on demand)."""
        for row, r in enumerate(self.runs):
            if r.path == run:
                total = f" of {progress.total}" if progress.total else ""
                self.runs_table.item(row, 1).setText(f"running: step {progress.step}{total}")
                if progress.latest and "loss" in progress.latest:
                    self.runs_table.item(row, 2).setText(f"{progress.latest['loss']:.4f}")

    def state_text(self, name: str) -> str | None:
        return next((self.runs_table.item(r, 1).text() for r in range(self.runs_table.rowCount())
                     if self.runs_table.item(r, 0).text() == name), None)

    # ---- checkpoints -------------------------------------------------------------------------
    def show_checkpoints(self, run: Path | None, found: list[CheckpointInfo]) -> bool:
        """Redraw the checkpoint table if what it shows changed; True if it did."""
        key = (run, tuple((c.name, c.mtime) for c in found))
        if key == self._checkpoints_key:
            return False
        self._checkpoints_key = key
        selected = self.selected_checkpoint()
        self.checkpoints = found
        self.checkpoints_box.setTitle(f"Checkpoints of {run.name}" if run else "Checkpoints")
        self.checkpoints_table.blockSignals(True)
        self.checkpoints_table.setRowCount(len(found))
        for row, c in enumerate(found):
            saved = time.strftime("%m-%d %H:%M:%S", time.localtime(c.mtime))
            for col, value in enumerate((c.name, "" if c.step is None else str(c.step), saved)):
                item = QTableWidgetItem(value)
                item.setToolTip(str(c.path))
                self.checkpoints_table.setItem(row, col, item)
            if c.path == selected:
                self.checkpoints_table.selectRow(row)
        self.checkpoints_table.blockSignals(False)
        return True

    def selected_checkpoint(self) -> Path | None:
        rows = self.checkpoints_table.selectionModel().selectedRows()
        return self.checkpoints[rows[0].row()].path if rows and rows[0].row() < len(self.checkpoints) else None

    def checkpoint_names(self) -> list[str]:
        return [c.name for c in self.checkpoints]

    def _ask_runs_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Runs folder", str(self.runs_dir))
        if folder:
            self.runs_dir = Path(folder)
            self.runs_dir_changed.emit(self.runs_dir)


def _short(path: Path, parts: int = 2) -> str:
    """The last `parts` folders of a path ("…/data/runs"), the whole path when it is that short."""
    tail = Path(path).parts[-parts:]
    return str(path) if len(Path(path).parts) <= parts + 1 else "…/" + "/".join(tail)
