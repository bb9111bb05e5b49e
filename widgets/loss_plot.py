"""Loss curves of a training run: total, diffusion and termination loss (log scale) over steps, the
learning rate below on the same step axis, and a dashed line at every checkpoint.

Draws the step lines of a `RunProgress` (app/train_runs.py) that it is handed; it reads no files.
"""
from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

LOSS_CURVES = (("loss", "total loss", "#1e88e5", 2.5), ("diffusion", "diffusion", "#43a047", 1.5),
               ("done", "termination", "#fb8c00", 1.5))
LR_COLOUR = "#8e24aa"
CHECKPOINT_PEN = pg.mkPen("#9e9e9e", width=1, style=Qt.PenStyle.DashLine)


class LossPlotWidget(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground("w")
        self.loss_plot = self.view.addPlot(row=0, col=0)
        self.lr_plot = self.view.addPlot(row=1, col=0)
        self.view.ci.layout.setRowStretchFactor(0, 3)
        self.view.ci.layout.setRowStretchFactor(1, 1)
        for plot in (self.loss_plot, self.lr_plot):
            plot.setMenuEnabled(False)
            plot.showGrid(x=True, y=True, alpha=0.3)
            plot.getAxis("left").setWidth(58)
        self.loss_plot.setLogMode(y=True)
        self.loss_plot.setLabel("left", "loss (log)")
        self.lr_plot.setLabel("left", "learning rate")
        self.lr_plot.setLabel("bottom", "step")
        self.lr_plot.setXLink(self.loss_plot)
        self.loss_plot.getAxis("bottom").setStyle(showValues=False)
        self.curves = {key: self.loss_plot.plot(name=name, pen=pg.mkPen(colour, width=width), antialias=True,
                                                symbol="o" if key == "loss" else None, symbolSize=4,
                                                symbolBrush=colour, symbolPen=None)
                       for key, name, colour, width in LOSS_CURVES}
        self.curves["lr"] = self.lr_plot.plot(pen=pg.mkPen(LR_COLOUR, width=2), antialias=True)
        self._checkpoint_lines: list[pg.InfiniteLine] = []
        self._drawn: set[str] = set()  # curves with data
        self._title = ""
        self.set_title("no run selected")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)

    def set_title(self, text: str) -> None:
        """The run's name, then the key of the curves it has (a planner logs the total loss only; a
        legend inside the plot would cover them)."""
        self._title = text
        shown = [c for c in LOSS_CURVES if c[0] in self._drawn] or LOSS_CURVES
        key = "&nbsp;&nbsp;".join(f"<span style='color:{colour}'>&#9632; {name}</span>"
                                  for _, name, colour, _ in shown)
        self.loss_plot.setTitle(f"<b>{html.escape(text)}</b>&nbsp;&nbsp;&nbsp;{key}", color="#424242", size="9pt")
        self.loss_plot.titleLabel.setMinimumWidth(0)  # a narrow window clips the title, not the plot

    def set_steps(self, steps: list[dict]) -> None:
        """Redraw from a run's step lines (a few hundred at most: one per 10 steps)."""
        x = np.fromiter((s["step"] for s in steps), float, len(steps))
        for key, curve in self.curves.items():
            y = np.fromiter((s.get(key, np.nan) for s in steps), float, len(steps))
            keep = np.isfinite(y) & ((y > 0) if key != "lr" else True)  # log axis: positive losses only
            curve.setData(x[keep], y[keep])
            if keep.any():
                self._drawn.add(key)
            else:
                self._drawn.discard(key)
        self.set_title(self._title)
        if steps:
            self.loss_plot.enableAutoRange()
            self.lr_plot.enableAutoRange()

    def set_checkpoints(self, steps: list[int]) -> None:
        for line in self._checkpoint_lines:
            self.loss_plot.removeItem(line)
        self._checkpoint_lines = []
        for step in steps:
            line = pg.InfiniteLine(step, angle=90, pen=CHECKPOINT_PEN, movable=False)
            line.setToolTip(f"checkpoint at step {step}")
            self.loss_plot.addItem(line, ignoreBounds=True)
            self._checkpoint_lines.append(line)

    def clear(self, title: str = "no run selected") -> None:
        self.set_steps([])
        self.set_checkpoints([])
        self.set_title(title)

    def points(self, key: str = "loss") -> int:
        x, _ = self.curves[key].getData()
        return 0 if x is None else len(x)
