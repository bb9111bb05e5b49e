"""A learned policy at work in the Run workspace: its termination head over time and its timing.

`PolicyPanel.show_policy(view)` renders `RunSnapshot.policy_view` (app/run_program.py): a plot of
P(finished) per tick (`done_trace`, on the take's clock) against a dashed line at the threshold above
which the running call ends, and counters of the chunks predicted, their inference latency (last,
mean, max) and the stalls where the arm waited for a chunk. `None` means the scripted skills run the
calls; the panel says so and clears the plot.

The same PolicyView returns at once (the panel polls at ~30 Hz); a new one redraws the curve only
when the trace changed.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from app.run_program import PolicyView

SCRIPTED_TEXT = "the scripted skills run the calls (no learned policy)"
TRACE_COLOUR = "#1565c0"
THRESHOLD_COLOUR = "#c62828"
STALL_COLOUR = "#e65100"
NO_VALUE = "–"
# (name, caption, row, column) of each counter; names are what counter_texts() returns.
COUNTERS = (("chunks", "chunks", 0, 0), ("stalls", "stalls", 0, 1), ("stall time", "waited", 0, 2),
            ("latency last", "latency last", 1, 0), ("latency mean", "mean", 1, 1), ("latency max", "max", 1, 2))
COUNTER_TIPS = {"chunks": "action chunks the policy predicted in this run",
                "stalls": "chunks that were not ready when the arm needed them",
                "stall time": "total time the arm waited for a chunk (or would have, on a stepped simulator)",
                "latency last": "inference time of the latest chunk",
                "latency mean": "mean inference time of the chunks so far",
                "latency max": "longest inference time of a chunk so far"}


def _ms(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:.1f} ms"


_NOTHING = object()  # nothing rendered yet: the first show_policy() draws


class PolicyPanel(QWidget):
    """P(finished) over time with its threshold, and the policy's chunk and latency counters."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._view: PolicyView | None | object = _NOTHING  # nothing shown yet: the first show() draws
        self._trace: tuple[tuple[float, float], ...] = ()

        self.message = QLabel(SCRIPTED_TEXT)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.setLabel("left", "P(finished)")
        self.plot.setYRange(0.0, 1.0, padding=0.02)
        self.plot.enableAutoRange(axis="y", enable=False)
        self.plot.setMinimumHeight(120)
        self._curve = self.plot.plot(pen=pg.mkPen(TRACE_COLOUR, width=2), antialias=True)
        self.threshold = pg.InfiniteLine(
            pos=0.5, angle=0, movable=False, pen=pg.mkPen(THRESHOLD_COLOUR, width=1.5, style=Qt.PenStyle.DashLine),
            label="threshold {value:.2f}",
            labelOpts={"position": 0.02, "anchors": [(0, 1), (0, 1)], "color": THRESHOLD_COLOUR})
        self.plot.addItem(self.threshold)

        self._counters: dict[str, QLabel] = {}
        grid = QGridLayout()
        grid.setContentsMargins(4, 0, 4, 0)
        grid.setHorizontalSpacing(8)
        for name, caption, row, col in COUNTERS:
            label = QLabel(f"{caption}:")
            label.setStyleSheet("color: #666666;")
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            value = QLabel(NO_VALUE)
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            for w in (label, value):
                w.setToolTip(COUNTER_TIPS[name])
            grid.addWidget(label, row, 2 * col)
            grid.addWidget(value, row, 2 * col + 1)
            self._counters[name] = value
        grid.setColumnStretch(6, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.message)
        layout.addWidget(self.plot, 1)
        layout.addLayout(grid)
        self.show_policy(None)

    def show_policy(self, view: PolicyView | None) -> None:
        if view is self._view:
            return
        self._view = view
        if view is None:
            self.message.setText(SCRIPTED_TEXT)
            self._set_trace(())
            self.threshold.hide()
            for value in self._counters.values():
                value.setText(NO_VALUE)
            return
        self.message.setText(f"learned policy running {view.call}" if view.call else "learned policy between calls")
        if view.done_trace != self._trace:
            self._set_trace(view.done_trace)
        self.threshold.show()  # before setValue: a hidden line's label does not follow its value
        if self.threshold.value() != view.threshold:
            self.threshold.setValue(view.threshold)
        texts = {"chunks": str(view.chunks), "stalls": str(view.stalls), "stall time": f"{view.stall_ms:.0f} ms",
                 "latency last": _ms(view.last_latency_ms), "latency mean": _ms(view.mean_latency_ms),
                 "latency max": _ms(view.max_latency_ms)}
        for name, text in texts.items():
            label = self._counters[name]
            if label.text() != text:
                label.setText(text)
        stalled = f"color: {STALL_COLOUR}; font-weight: bold;" if view.stalls else ""
        for name in ("stalls", "stall time"):
            if self._counters[name].styleSheet() != stalled:
                self._counters[name].setStyleSheet(stalled)

    def _set_trace(self, trace: tuple[tuple[float, float], ...]) -> None:
        self._trace = trace
        data = np.asarray(trace, dtype=float).reshape(-1, 2)  # (T, 2) t, P(finished)
        self._curve.setData(data[:, 0], data[:, 1])

    # ---- for tests ---------------------------------------------------------------------------------
    def trace_data(self) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._curve.getData()
        return (np.zeros(0), np.zeros(0)) if x is None else (np.asarray(x), np.asarray(y))

    def counter_texts(self) -> dict[str, str]:
        return {name: label.text() for name, label in self._counters.items()}

    def message_text(self) -> str:
        return self.message.text()

    def threshold_value(self) -> float | None:
        return float(self.threshold.value()) if self.threshold.isVisible() else None
