"""The segment table: a QTableView over an AnnotationModel's segments with an editable code column.

`SegmentTableModel` is a thin Qt item-model adapter: it reads the annotation model on every
`data()` call (no copy of the labels) and resets on `labels_changed`. Editing a code cell goes
through `AnnotationModel.set_code`, which validates it against the robot API and the scene; an
invalid code is not stored and `code_rejected` carries the reason for the panel to show.
"""
from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from app.annotation import AnnotationModel, InvalidCodeError

COLUMNS = ("start", "end", "seconds", "code", "source")
CODE_COLUMN = COLUMNS.index("code")


class SegmentTableModel(QAbstractTableModel):
    code_rejected = Signal(int, str, str)  # row, the code typed, why it was rejected

    def __init__(self, parent=None):
        super().__init__(parent)
        self.annotation: AnnotationModel | None = None
        self.control_hz = 10.0

    def set_annotation(self, annotation: AnnotationModel | None, control_hz: float = 10.0) -> None:
        self.beginResetModel()
        if self.annotation is not None:
            self.annotation.labels_changed.disconnect(self._reset)
        self.annotation, self.control_hz = annotation, control_hz
        if annotation is not None:
            annotation.labels_changed.connect(self._reset)
        self.endResetModel()

    def _reset(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() or self.annotation is None else len(self.annotation.segments)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section] if orientation == Qt.Orientation.Horizontal else str(section)
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.annotation is None:
            return None
        s = self.annotation.segments[index.row()]
        trimmed = self.annotation.is_trimmed(index.row())
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            values = (s.start, s.end, f"{(s.end - s.start) / self.control_hz:.1f}",
                      s.code, "trimmed" if trimmed and role == Qt.ItemDataRole.DisplayRole else s.source)
            return values[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole and (trimmed or s.code == "idle"):
            return QColor("#888888")
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == CODE_COLUMN:
            return "double-click to edit: a robot-API motion call, e.g. pick(\"red cube\"), or idle"
        return None

    def flags(self, index):
        base = super().flags(index)
        if index.isValid() and index.column() == CODE_COLUMN and not self.annotation.is_trimmed(index.row()):
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or index.column() != CODE_COLUMN or self.annotation is None:
            return False
        try:
            self.annotation.set_code(index.row(), str(value))
        except InvalidCodeError as e:
            self.code_rejected.emit(index.row(), str(value), str(e))
            return False
        return True


class SegmentTableView(QTableView):
    segment_selected = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.table_model = SegmentTableModel(self)
        self.setModel(self.table_model)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
                             | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.verticalHeader().setDefaultSectionSize(22)
        header = self.horizontalHeader()
        for col in range(len(COLUMNS)):
            mode = QHeaderView.ResizeMode.Stretch if col == CODE_COLUMN else QHeaderView.ResizeMode.ResizeToContents
            header.setSectionResizeMode(col, mode)
        self.table_model.modelReset.connect(self._restore_selection)
        self._selected = -1

    def set_annotation(self, annotation: AnnotationModel | None, control_hz: float = 10.0) -> None:
        self._selected = -1
        self.table_model.set_annotation(annotation, control_hz)

    def select_row(self, row: int) -> None:
        if 0 <= row < self.table_model.rowCount() and row != self.current_row():
            self.selectRow(row)

    def current_row(self) -> int:
        rows = self.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def selectionChanged(self, selected, deselected) -> None:
        super().selectionChanged(selected, deselected)
        row = self.current_row()
        if row >= 0:
            self._selected = row
            self.segment_selected.emit(row)

    def _restore_selection(self) -> None:
        if 0 <= self._selected < self.table_model.rowCount():
            self.selectRow(self._selected)
