"""The segment track: one coloured pyqtgraph LinearRegionItem per segment on the frame axis.

It renders an `AnnotationModel` (redrawing on `labels_changed`) and emits intents: dragging the
edge between two segments moves the neighbour's edge along live and, when the drag finishes
(`sigRegionChangeFinished`), emits `boundary_drag_finished(k, frame)` once - the panel turns that
into one undo step; the model snaps it to the nearest gripper event (drawn as dashed lines).
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor

from app.annotation import AnnotationModel
from app.domain import IDLE

FUNCTION_COLOURS = {"pick": "#3d7fd9", "place": "#3bb36b", "push": "#e08a2e", "home": "#9a5fd0", IDLE: "#808080"}
TRIMMED_COLOUR = "#3a2020"
AXIS_WIDTH = 60
CHAR_PX = 7.5  # approximate width of a label character


def segment_colour(code: str, trimmed: bool = False, selected: bool = False) -> QColor:
    colour = QColor(TRIMMED_COLOUR if trimmed else FUNCTION_COLOURS.get(code.split("(")[0], "#c04060"))
    colour.setAlpha(200 if selected else 110)
    return colour


class SegmentTrackWidget(pg.PlotWidget):
    boundary_drag_finished = Signal(int, float)  # boundary after segment k, dropped at frame
    segment_clicked = Signal(int, int)  # segment index, frame clicked

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model: AnnotationModel | None = None
        self.regions: list[pg.LinearRegionItem] = []
        self._texts: list[pg.TextItem] = []
        self.setBackground("#202020")
        self.setMouseEnabled(x=True, y=False)
        left = self.getAxis("left")  # kept, blank, as wide as the curves' axis so frames line up
        left.setStyle(showValues=False, tickLength=0)
        left.setWidth(AXIS_WIDTH)
        left.setPen(pg.mkPen(None))
        self.setLabel("bottom", "frame")
        self.getPlotItem().hideButtons()
        self.setYRange(0, 1, padding=0)
        self.setFixedHeight(90)
        self._event_lines: list[pg.InfiniteLine] = []
        self._selected = -1
        self._following = False
        self.cursor = pg.InfiniteLine(0, angle=90, pen=pg.mkPen("#ffffff", width=1))
        self.cursor.setZValue(50)
        self.addItem(self.cursor)
        self.scene().sigMouseClicked.connect(self._clicked)
        self.getPlotItem().vb.sigXRangeChanged.connect(self._fit_texts)

    def set_model(self, model: AnnotationModel | None) -> None:
        if self.model is not None:
            self.model.labels_changed.disconnect(self.redraw)
        self.model = model
        if model is not None:
            model.labels_changed.connect(self.redraw)
            self.setXRange(0, model.frames, padding=0.01)
        self.redraw()

    def set_selected(self, k: int) -> None:
        self._selected = k
        if self.model is not None:
            for i, region in enumerate(self.regions):
                region.setBrush(segment_colour(self.model.segments[i].code, self.model.is_trimmed(i), i == k))

    def set_cursor(self, frame: int) -> None:
        self.cursor.setValue(frame)

    def redraw(self) -> None:
        for item in self.regions + self._texts + self._event_lines:
            self.removeItem(item)
        self.regions, self._texts, self._event_lines = [], [], []
        if self.model is None:
            return
        segments = self.model.segments
        for k, s in enumerate(segments):
            trimmed = self.model.is_trimmed(k)
            region = pg.LinearRegionItem((s.start, s.end), brush=segment_colour(s.code, trimmed, k == self._selected),
                                         pen=pg.mkPen("#f0f0f0", width=2), hoverPen=pg.mkPen("#ffff60", width=3),
                                         movable=False, swapMode="block")
            # Only edges shared with a neighbour move (the body and the episode's ends do not).
            region.lines[0].setMovable(k > 0)
            region.lines[1].setMovable(k < len(segments) - 1)
            lo = segments[k - 1].start + 1 if k > 0 else s.start
            hi = segments[k + 1].end - 1 if k + 1 < len(segments) else s.end
            region.setBounds((lo, hi))
            region.sigRegionChanged.connect(lambda r, k=k: self._follow(k))
            region.sigRegionChangeFinished.connect(lambda r, k=k: self._finished(k))
            self.addItem(region)
            self.regions.append(region)
            text = pg.TextItem("", color="#ffffff", anchor=(0.5, 0.5))
            text.setPos((s.start + s.end) / 2, 0.5)
            text.setToolTip(s.code)
            self.addItem(text)
            self._texts.append(text)
        self._fit_texts()
        for frame in self.model.gripper_events:
            line = pg.InfiniteLine(frame, angle=90, pen=pg.mkPen("#f0c040", width=1, style=Qt.PenStyle.DashLine))
            self.addItem(line)
            self._event_lines.append(line)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_texts()

    def _fit_texts(self, *_) -> None:
        """Each label as long as its segment's width allows: the code, the function name, or nothing."""
        if not getattr(self, "_texts", None) or self.model is None:  # resized while being constructed
            return
        (x0, x1), width = self.getPlotItem().vb.viewRange()[0], self.getPlotItem().vb.width()
        px_per_frame = width / max(x1 - x0, 1e-9)
        for k, (s, text) in enumerate(zip(self.model.segments, self._texts)):
            room = (s.end - s.start) * px_per_frame / CHAR_PX - 1
            full = "trimmed" if self.model.is_trimmed(k) else s.code
            label = next((c for c in (full, full.split("(")[0]) if len(c) <= room), "")
            text.setText(label)

    def _moved_edge(self, k: int) -> tuple[int, float] | None:
        """(boundary index, new position) of the edge of region k that differs from the model."""
        s = self.model.segments[k]
        lo, hi = self.regions[k].getRegion()
        if abs(lo - s.start) > 1e-6 and k > 0:
            return k - 1, lo
        if abs(hi - s.end) > 1e-6 and k + 1 < len(self.regions):
            return k, hi
        return None

    def _follow(self, k: int) -> None:
        """Keep the neighbour's edge on the dragged edge while the drag is in progress."""
        moved = self._moved_edge(k) if self.model is not None and not self._following else None
        if moved is None:
            return
        boundary, x = moved
        other = boundary + 1 if boundary == k else boundary
        self._following = True
        try:
            self.regions[other].lines[0 if other > k else 1].setValue(x)
        finally:
            self._following = False

    def _finished(self, k: int) -> None:
        moved = self._moved_edge(k) if self.model is not None else None
        if moved is not None:  # after the drag's own event handling: the redraw replaces the dragged item
            QTimer.singleShot(0, lambda: self.boundary_drag_finished.emit(*moved))

    def _clicked(self, event) -> None:
        if self.model is None or event.button() != Qt.MouseButton.LeftButton:
            return
        frame = int(self.getPlotItem().vb.mapSceneToView(event.scenePos()).x())
        if 0 <= frame < self.model.frames:
            self.segment_clicked.emit(self.model.segment_at(frame), frame)
