"""The workcell's workspace box in the Record workspace: the box the safety layer keeps the end
effector in (robot base frame, metres), edited with numbers or by dragging it on a top view.

    snapshot.workspace ((lower xyz), (upper xyz)) -> the six numbers, the box on the top view (dashed:
                                                     the box in use; solid with corner handles: the edit)
    snapshot.samples[-1].ee_xyz                   -> the TCP on the top view (red when outside the edit)
    typing a number / dragging a corner (on release, sigRegionChangeFinished) -> the edit, not yet used
    Apply  -> session.set_workspace(lower, upper) -> saved with the calibration; an "error" line (a box
              that does not hold the gripper, lower not below upper) is shown here
    Revert -> the box in use again

Top view: x to the right, y up (looking down at the table), the robot base at the origin. The editor
holds no domain data: the box in use comes from the snapshot, the edit lives in its spin boxes.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDoubleSpinBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout,
)

AXES = "xyz"
LIMIT_M = 2.0  # no Franka reaches further: the spin boxes' range
DECIMALS = 3
SNAP_M = 0.005  # dragged corners land on this grid
VIEW_MARGIN_M = 0.12
APPLIED_PEN = pg.mkPen("#757575", width=1.5, style=Qt.PenStyle.DashLine)
EDIT_PEN = pg.mkPen("#1565c0", width=2)
TCP_INSIDE, TCP_OUTSIDE = "#2e7d32", "#c62828"
HANDLE_PEN = pg.mkPen("#0d47a1", width=2)
HINT = "Drag the blue box or its corners, or type the numbers, then Apply. Dashed grey: the box in use."
NOTE_STYLE = "color: #555; font-size: 11px;"
ERROR_STYLE = "color: #c62828; font-size: 11px;"


class WorkspaceBoxEditor(QGroupBox):
    """Six numbers and a top view of the safety layer's box; Apply sends it to `session`."""

    def __init__(self, session, parent=None):
        super().__init__("Workspace box (safety layer)", parent)
        self.session = session
        self._applied: tuple | None = None
        self._tcp: tuple | None = None
        self._live = False
        self._waiting = False
        self.lower: list[QDoubleSpinBox] = []
        self.upper: list[QDoubleSpinBox] = []
        grid = QGridLayout()
        grid.addWidget(QLabel("lower"), 0, 1, Qt.AlignmentFlag.AlignCenter)
        grid.addWidget(QLabel("upper"), 0, 2, Qt.AlignmentFlag.AlignCenter)
        for row, axis in enumerate(AXES, start=1):
            grid.addWidget(QLabel(axis), row, 0)
            for col, spins in ((1, self.lower), (2, self.upper)):
                spin = QDoubleSpinBox()
                spin.setRange(-LIMIT_M, LIMIT_M)
                spin.setDecimals(DECIMALS)
                spin.setSingleStep(0.01)
                spin.setSuffix(" m")
                spin.setToolTip(f"{'lowest' if col == 1 else 'highest'} {axis} of the end effector, robot base "
                                "frame (x forward, y left, z up)")
                spin.valueChanged.connect(self._numbers_edited)
                grid.addWidget(spin, row, col)
                spins.append(spin)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Use this box from now on and save it with the workcell's calibration")
        self.apply_button.clicked.connect(self.apply)
        self.revert_button = QPushButton("Revert")
        self.revert_button.setToolTip("Back to the box in use")
        self.revert_button.clicked.connect(self.revert)
        buttons = QVBoxLayout()
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.revert_button)
        buttons.addStretch(1)
        numbers = QHBoxLayout()
        numbers.addLayout(grid)
        numbers.addLayout(buttons)

        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setAspectLocked(True)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        for side, text in (("bottom", "x, forward (m)"), ("left", "y, left (m)")):
            self.plot.setLabel(side, text)
            self.plot.getAxis(side).enableAutoSIPrefix(False)  # metres throughout, as the numbers
        self.plot.setMinimumSize(240, 220)
        self.plot.setMaximumHeight(340)
        self.plot.setToolTip("Top view: drag the box or its corners (blue), then Apply. Dashed: the box in use")
        self.applied_outline = pg.PlotCurveItem(pen=APPLIED_PEN)
        self.base = pg.ScatterPlotItem([0.0], [0.0], size=14, symbol="s", brush=pg.mkBrush("#424242"))
        self.base_label = pg.TextItem("base", color="#424242", anchor=(0.5, -0.3))
        self.tcp = pg.ScatterPlotItem(size=10, symbol="o", pen=pg.mkPen("w", width=1))
        self.tcp_label = pg.TextItem("TCP", anchor=(-0.2, 0.5))
        self.roi = pg.ROI((0.2, -0.4), (0.6, 0.8), pen=EDIT_PEN, hoverPen=pg.mkPen("#42a5f5", width=3),
                          snapSize=SNAP_M, translateSnap=True, scaleSnap=True, rotatable=False,
                          handlePen=HANDLE_PEN, handleHoverPen=pg.mkPen("#42a5f5", width=3))
        for corner, opposite in (((1, 1), (0, 0)), ((0, 0), (1, 1)), ((1, 0), (0, 1)), ((0, 1), (1, 0))):
            self.roi.addScaleHandle(corner, opposite)
        self.roi.sigRegionChangeFinished.connect(self._dragged)
        for item in (self.applied_outline, self.base, self.base_label, self.roi, self.tcp, self.tcp_label):
            self.plot.addItem(item)
        self.tcp_label.hide()

        self.note = QLabel(HINT)
        self.note.setWordWrap(True)
        self.note.setStyleSheet(NOTE_STYLE)
        layout = QVBoxLayout(self)
        layout.addLayout(numbers)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.note)
        self._enable()

    # ---- the edit ----------------------------------------------------------------------------------
    def box(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """The edited box: (lower xyz), (upper xyz)."""
        return tuple(s.value() for s in self.lower), tuple(s.value() for s in self.upper)

    def set_box(self, lower, upper) -> None:
        """Show `lower`, `upper` as the edit (numbers and top view)."""
        for spins, values in ((self.lower, lower), (self.upper, upper)):
            for spin, value in zip(spins, values):
                spin.blockSignals(True)
                spin.setValue(float(value))
                spin.blockSignals(False)
        self._numbers_edited()

    def edited(self) -> bool:
        if self._applied is None:
            return False
        return _rounded(self.box()) != _rounded(self._applied)

    def apply(self) -> None:
        for spin in (*self.lower, *self.upper):
            spin.interpretText()  # a number typed but not yet committed counts
        lower, upper = self.box()
        self._waiting = True
        self._show_note("setting the workspace box ...")
        self.session.set_workspace(lower, upper)

    def revert(self) -> None:
        if self._applied is not None:
            self.set_box(*self._applied)
            self._show_note(HINT)

    def _numbers_edited(self) -> None:
        (x0, y0, _), (x1, y1, _) = self.box()
        self.roi.blockSignals(True)  # drawn from the numbers, not a drag: nothing to read back
        self.roi.setPos((x0, y0), update=False, finish=False)
        self.roi.setSize((x1 - x0, y1 - y0), finish=False)
        self.roi.blockSignals(False)
        self._show_tcp()
        self._enable()

    def _dragged(self) -> None:
        """A drag of the box or a corner finished: its x-y range becomes the edit."""
        pos, size = self.roi.pos(), self.roi.size()
        lower, upper = self.box()
        self.set_box((pos.x(), pos.y(), lower[2]), (pos.x() + size.x(), pos.y() + size.y(), upper[2]))
        if self.edited():
            self._show_note("edited: Apply to use this box")

    # ---- rendering ---------------------------------------------------------------------------------
    def show_snapshot(self, s) -> None:
        live = s.connection == "live"
        if live != self._live:
            self._live = live
            self._enable()
        if s.workspace is not None and s.workspace != self._applied:
            was_edited = self.edited()
            self._applied = (tuple(s.workspace[0]), tuple(s.workspace[1]))
            corners = box_corners(*self._applied)
            self.applied_outline.setData(corners[:, 0], corners[:, 1])
            if not was_edited:
                self.set_box(*self._applied)
            self._fit_view()
            self._enable()
        tcp = s.samples[-1].ee_xyz if s.samples and live else None
        if tcp != self._tcp:
            self._tcp = tcp
            self._show_tcp()

    def show_event(self, event) -> None:
        """The outcome of Apply: the next info or error line."""
        if self._waiting and event.kind in ("info", "error"):
            self._waiting = False
            self._show_note(event.text, error=event.kind == "error")

    def _show_tcp(self) -> None:
        if self._tcp is None:
            self.tcp.setData([], [])
            self.tcp_label.hide()
            return
        lower, upper = self.box()
        inside = all(lo <= v <= hi for lo, v, hi in zip(lower, self._tcp, upper))
        colour = TCP_INSIDE if inside else TCP_OUTSIDE
        x, y, z = self._tcp
        self.tcp.setData([x], [y], brush=pg.mkBrush(colour))
        self.tcp_label.setText(f"TCP (z {z:.2f})" if inside else f"TCP (z {z:.2f}) outside", color=colour)
        self.tcp_label.setPos(x, y)
        self.tcp_label.show()

    def _fit_view(self) -> None:
        lower, upper = self.box()
        xs = [0.0, lower[0], upper[0]] + ([self._applied[0][0], self._applied[1][0]] if self._applied else [])
        ys = [0.0, lower[1], upper[1]] + ([self._applied[0][1], self._applied[1][1]] if self._applied else [])
        self.plot.setRange(xRange=(min(xs) - VIEW_MARGIN_M, max(xs) + VIEW_MARGIN_M),
                           yRange=(min(ys) - VIEW_MARGIN_M, max(ys) + VIEW_MARGIN_M), padding=0)

    def _show_note(self, text: str, error: bool = False) -> None:
        self.note.setStyleSheet(ERROR_STYLE if error else NOTE_STYLE)
        self.note.setText(text)

    def _enable(self) -> None:
        edited = self.edited()
        self.apply_button.setEnabled(self._live and edited)
        self.revert_button.setEnabled(edited)
        self.apply_button.setStyleSheet("font-weight: bold;" if edited else "")
        self.roi.translatable = self._live
        for spin in (*self.lower, *self.upper):
            spin.setEnabled(self._live)


def _rounded(box) -> tuple:
    return tuple(tuple(round(float(v), DECIMALS) for v in corner) for corner in box)


def box_corners(lower, upper) -> np.ndarray:
    """(5, 2) x-y corners of the box's top view, closed."""
    (x0, y0, _), (x1, y1, _) = lower, upper
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], float)
