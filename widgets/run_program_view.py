"""The program of a run as it runs: its calls, the call awaiting approval, the planner's alternatives.

`ProgramView.show_program(snap)` renders a `RunSnapshot` (app/run_program.py): one table row per top-level
call (`snap.program`) with its status coloured (ok green, failed red, aborted orange, the running one
bold on yellow with its elapsed time on the take's clock), then, in step mode, the proposed call
awaiting approve / edit / skip and a learned planner's best next calls with their probabilities.

The panel polls at ~30 Hz: the same snapshot returns at once, and a new one only rewrites the rows
whose `CallRow` changed and the running row's elapsed time, so a long program costs nothing per poll.
The table follows the running call unless nothing new happened.
"""
from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QLabel, QTableWidgetItem, QVBoxLayout, QWidget

from app.run_program import Alternative, CallRow, RunSnapshot
from widgets.tables import read_only_table

COLUMNS = ("#", "code", "status", "source", "s", "reason")
CODE, STATUS, SECONDS, REASON = (COLUMNS.index(c) for c in ("code", "status", "s", "reason"))
STATUS_COLOURS = {"ok": "#2e7d32", "failed": "#c62828", "aborted": "#e65100", "running": "#5d4300"}
RUNNING_BACKGROUND = QColor("#ffe98a")
FAILED_BACKGROUND = QColor(235, 70, 70, 40)
ABORTED_BACKGROUND = QColor(245, 140, 30, 40)
PROPOSED_STYLE = ("QLabel { background: #fff3cd; color: #3e2c00; border: 1px solid #e0a800; border-radius: 4px;"
                  " padding: 3px 5px; font-weight: bold; }")
ROW_PX = 20


def _bold(item: QTableWidgetItem) -> None:
    font = QFont(item.font())
    font.setBold(True)
    item.setFont(font)


def _right(text: str) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class ProgramView(QWidget):
    """The calls of the run so far, the proposed next call and the planner's alternatives."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._snap: RunSnapshot | None = None
        self._program: tuple[CallRow, ...] = ()
        self._running = -1  # the row of the running call, -1 when none
        self._proposed: str | None = None
        self._alternatives: tuple[Alternative, ...] = ()
        self._shown_for: str | None = None  # the proposal the alternatives were drawn against (bold among them)

        self.table = read_only_table(COLUMNS, stretch=REASON, row_px=ROW_PX, selectable=False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.horizontalHeader().setMinimumSectionSize(28)
        for col, tip in ((STATUS, "running, or how the call ended: ok, failed or aborted"),
                         (COLUMNS.index("source"), "who wrote the call: script (the task's program) or planner"),
                         (SECONDS, "seconds the call ran (so far, while running), on the take's clock"),
                         (REASON, "why the call failed or was aborted (hover a row for all of it)")):
            self.table.horizontalHeaderItem(col).setToolTip(tip)

        self.proposed = QLabel()
        self.proposed.setStyleSheet(PROPOSED_STYLE)
        self.proposed.setTextFormat(Qt.TextFormat.PlainText)
        self.proposed.setWordWrap(True)
        self.proposed.setMinimumWidth(1)  # a long call wraps instead of widening the panel
        self.proposed.setToolTip("Step mode: approve, edit or skip this call")
        self.proposed.hide()
        self.alternatives = QLabel()
        self.alternatives.setTextFormat(Qt.TextFormat.RichText)
        self.alternatives.setToolTip("The learned planner's most likely next calls at its last proposal, with their "
                                     "share of the probability")
        self.alternatives.hide()
        self._alternative_texts: list[str] = []

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.proposed)
        layout.addWidget(self.alternatives)

    def show_program(self, snap: RunSnapshot) -> None:
        if snap is self._snap:
            return
        self._snap = snap
        if snap.program != self._program:
            self._show_program(snap.program)
        if self._running >= 0:
            elapsed = f"{max(0.0, snap.program[self._running].elapsed(snap.clock)):.1f}"  # a tick may lag the start
            item = self.table.item(self._running, SECONDS)
            if item.text() != elapsed:
                item.setText(elapsed)
        if snap.proposed != self._proposed:
            self._proposed = snap.proposed
            self.proposed.setText("" if snap.proposed is None else f"Next call awaiting approval:  {snap.proposed}")
            self.proposed.setVisible(snap.proposed is not None)
        if snap.alternatives != self._alternatives or (snap.alternatives and snap.proposed != self._shown_for):
            self._show_alternatives(snap.alternatives, snap.proposed)

    def _show_program(self, program: tuple[CallRow, ...]) -> None:
        old = self._program if len(program) >= len(self._program) else ()
        self._program = program
        self.table.setRowCount(len(program))
        for i, row in enumerate(program):
            if i >= len(old) or old[i] != row:
                self._fill_row(i, row)
        running = next((i for i in range(len(program) - 1, -1, -1) if program[i].status == "running"), -1)
        grew = len(program) > len(old)
        if running != self._running or grew:
            follow = running if running >= 0 else len(program) - 1
            if follow >= 0:
                self.table.updateGeometries()  # the scroll range covers rows just added before scrolling to them
                self.table.scrollToItem(self.table.item(follow, 0), QAbstractItemView.ScrollHint.EnsureVisible)
        self._running = running

    def _fill_row(self, i: int, row: CallRow) -> None:
        seconds = "" if row.t_end is None else f"{row.elapsed(row.t_end):.1f}"
        reason = row.reason or ""
        items = [_right(str(i + 1)), QTableWidgetItem(row.code), QTableWidgetItem(row.status),
                 QTableWidgetItem(row.source), _right(seconds), QTableWidgetItem(reason.replace("\n", " "))]
        tip = f"{row.code}: {row.status}" + (f"\n{reason}" if reason else "")
        background = {"running": RUNNING_BACKGROUND, "failed": FAILED_BACKGROUND,
                      "aborted": ABORTED_BACKGROUND}.get(row.status)
        for col, item in enumerate(items):
            item.setToolTip(reason if col == REASON and reason else tip)
            if background is not None:
                item.setBackground(background)
            if row.status == "running":
                _bold(item)
                item.setForeground(QColor("#000000"))
            self.table.setItem(i, col, item)
        items[STATUS].setForeground(QColor(STATUS_COLOURS.get(row.status, "#000000")))
        if row.status != "ok":
            _bold(items[STATUS])
        if reason:
            items[REASON].setForeground(QColor(STATUS_COLOURS.get(row.status, "#000000")))

    def _show_alternatives(self, alternatives: tuple[Alternative, ...], proposed: str | None) -> None:
        self._alternatives, self._shown_for = alternatives, proposed
        best_first = sorted(alternatives, key=lambda a: -a.probability)  # stable: ties keep the planner's order
        self._alternative_texts = [f"{100 * a.probability:.0f}%  {a.code}" for a in best_first]
        rows = "".join(
            f"<tr><td align='right'>{100 * a.probability:.0f}%</td><td>&nbsp;&nbsp;"
            + (f"<b>{escape(a.code)}</b>" if a.code == proposed else escape(a.code)) + "</td></tr>"
            for a in best_first)
        self.alternatives.setText(f"Planner's best next calls:<table cellspacing='0'>{rows}</table>")
        self.alternatives.setVisible(bool(alternatives))

    # ---- for tests ---------------------------------------------------------------------------------
    def row_count(self) -> int:
        return self.table.rowCount()

    def row_texts(self, i: int) -> tuple[str, ...]:
        return tuple(self.table.item(i, c).text() for c in range(len(COLUMNS)))

    def status_colour(self, i: int) -> str:
        return self.table.item(i, STATUS).foreground().color().name()

    def row_background(self, i: int) -> QColor:
        return self.table.item(i, CODE).background().color()

    def running_row(self) -> int:
        return self._running

    def proposed_text(self) -> str:
        return "" if self.proposed.isHidden() else self.proposed.text()

    def alternative_texts(self) -> list[str]:
        """'62%  pick(red_cube)' per alternative shown, best first."""
        return list(self._alternative_texts) if not self.alternatives.isHidden() else []
