"""The segment table (a QTableView over an AnnotationModel's segments with an editable code column)
and the read-only events table beside it.

`SegmentTableModel` is a thin Qt item-model adapter: it reads the annotation model on every
`data()` call (no copy of the labels) and resets on `labels_changed`. Editing a code cell goes
through `AnnotationModel.set_code`, which validates it against the robot API and the scene; an
invalid code is not stored and `code_rejected` carries the reason for the panel to show. The status
and source columns render `AnnotationModel.call_of(row)`, the logged call a segment came from
(blank for idle, "edited" for a hand-made segment no call matches); rows of failed or aborted calls
are tinted red, the reason in the tooltip; the label column is the segment's provenance.

`EventTableModel` lists the episode's instantaneous calls (`AnnotationModel.events`: remember,
recall, free_space, done) with frame, time, status and source; they are not segments, cannot be
edited and are never saved as labels. Choosing a row asks to seek to its frame.
"""
from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from app.annotation import EDITED, AnnotationModel, InvalidCodeError, describe_call
from app.domain import IDLE

COLUMNS = ("start", "end", "seconds", "code", "status", "source", "label")
CODE_COLUMN, STATUS_COLUMN = COLUMNS.index("code"), COLUMNS.index("status")
COLUMN_TIPS = {"status": "how the logged call this segment came from ended: ok, failed or aborted",
               "source": "who made the call: script, gui, hotkey or planner (edited: a segment made by hand)",
               "label": "auto: derived from the logged calls; edited: changed by hand"}
EVENT_COLUMNS = ("frame", "seconds", "event", "status", "source")
FAILED_BACKGROUND, FAILED_TEXT, DIM_TEXT = QColor(235, 70, 70, 55), QColor("#b81414"), QColor("#888888")


def _bold() -> QFont:
    font = QFont()
    font.setBold(True)
    return font


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
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return COLUMN_TIPS.get(COLUMNS[section])
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section] if orientation == Qt.Orientation.Horizontal else str(section)
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.annotation is None:
            return None
        row, col = index.row(), index.column()
        s = self.annotation.segments[row]
        trimmed = self.annotation.is_trimmed(row)
        call = self.annotation.call_of(row)
        failed = call is not None and call.status != "ok"
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            hand_made = EDITED if s.source == EDITED and s.code != IDLE and not trimmed else ""
            values = (s.start, s.end, f"{(s.end - s.start) / self.control_hz:.1f}", s.code,
                      call.status if call else "", call.source if call else hand_made,
                      "trimmed" if trimmed and role == Qt.ItemDataRole.DisplayRole else s.source)
            return values[col]
        if role == Qt.ItemDataRole.ForegroundRole:
            if failed and col == STATUS_COLUMN:
                return FAILED_TEXT
            if trimmed or s.code == IDLE:
                return DIM_TEXT
        if role == Qt.ItemDataRole.BackgroundRole and failed:
            return FAILED_BACKGROUND
        if role == Qt.ItemDataRole.FontRole and failed and col == STATUS_COLUMN:
            return _bold()
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == CODE_COLUMN:
                return "double-click to edit: a robot-API motion call, e.g. pick(\"red cube\"), or idle"
            if call is not None:
                return describe_call(call, self.annotation.t0)
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


class EventTableModel(QAbstractTableModel):
    """The annotation model's events (remember, recall, free_space, done), read-only."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.annotation: AnnotationModel | None = None

    def set_annotation(self, annotation: AnnotationModel | None) -> None:
        self.beginResetModel()
        self.annotation = annotation
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() or self.annotation is None else len(self.annotation.events)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(EVENT_COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return EVENT_COLUMNS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.annotation is None:
            return None
        e = self.annotation.events[index.row()]
        failed = e.call.status != "ok"
        if role == Qt.ItemDataRole.DisplayRole:
            return (e.frame, f"{e.seconds:.1f}", e.call.code, e.call.status, e.call.source)[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return e.description
        if role == Qt.ItemDataRole.ForegroundRole and failed and EVENT_COLUMNS[index.column()] == "status":
            return FAILED_TEXT
        if role == Qt.ItemDataRole.BackgroundRole and failed:
            return FAILED_BACKGROUND
        if role == Qt.ItemDataRole.FontRole and failed and EVENT_COLUMNS[index.column()] == "status":
            return _bold()
        return None

    def frame_of(self, row: int) -> int:
        return self.annotation.events[row].frame


class EventTableView(QTableView):
    """The events, one per row; clicking a row (or moving to it with the arrow keys) asks to seek to
    its frame."""

    seek_requested = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.table_model = EventTableModel(self)
        self.setModel(self.table_model)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(22)
        header = self.horizontalHeader()
        for col, name in enumerate(EVENT_COLUMNS):
            mode = QHeaderView.ResizeMode.Stretch if name == "event" else QHeaderView.ResizeMode.ResizeToContents
            header.setSectionResizeMode(col, mode)
        self.clicked.connect(self._seek)  # also when the row is current already
        self.selectionModel().currentRowChanged.connect(self._seek)  # arrow keys

    def _seek(self, index) -> None:
        if index.isValid() and self.table_model.annotation is not None:
            self.seek_requested.emit(self.table_model.frame_of(index.row()))

    def set_annotation(self, annotation: AnnotationModel | None) -> None:
        self.table_model.set_annotation(annotation)


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
