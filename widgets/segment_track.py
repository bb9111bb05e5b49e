"""The segment track: one coloured pyqtgraph LinearRegionItem per segment on the frame axis.

It renders an `AnnotationModel` (redrawing on `labels_changed`) and emits intents: dragging the
edge between two segments moves the neighbour's edge along live and, when the drag finishes
(`sigRegionChangeFinished`), emits `boundary_drag_finished(k, frame)` once - the panel turns that
into one undo step; the model snaps it to the nearest gripper event (drawn as dashed lines).

The model's instantaneous calls (remember, recall, free_space, done) are drawn in a lane along the
top as a thin tick and a diamond at their frame, coloured by kind (red when the call failed), with a
short label; a segment whose call failed or was aborted says so in its label (in red); events closer together than a few pixels share one label (`remember ×2`), and labels
shorten or hide as zoom leaves room. Hovering a diamond shows the full code, time, status and source.
Markers take no mouse drags, so the segment edges under them still drag and snap as before.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor

from app.annotation import AnnotationModel, CallEvent, describe_call
from app.domain import IDLE
from widgets.plot_cache import cache_static_layers

FUNCTION_COLOURS = {"pick": "#3d7fd9", "place": "#3bb36b", "push": "#e08a2e", "home": "#9a5fd0", IDLE: "#808080"}
EVENT_COLOURS = {"memory": "#5fd7e6", "query": "#e0e0e0", "terminal": "#8be08b"}
FAILED_COLOUR = "#ff5050"
TRIMMED_COLOUR = "#3a2020"
AXIS_WIDTH = 60
CHAR_PX = 7.5  # approximate width of a label character
SEGMENT_LABEL_Y = 0.3  # segment codes sit low, the event lane (ticks, diamonds, labels) along the top
EVENT_Y, EVENT_TICK = 0.84, (0.66, 1.0)
CLUSTER_PX = 10  # events closer than this on screen share one label
EVENT_Z = 20  # above the segments, below the cursor


def event_colour(event: CallEvent) -> str:
    return EVENT_COLOURS.get(event.kind, "#e0e0e0") if event.call.status == "ok" else FAILED_COLOUR


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
        self.setFixedHeight(110)
        self._event_lines: list[pg.InfiniteLine] = []  # gripper events
        # Call events: no mouse handlers that take drags, so edges below them stay draggable.
        self.event_ticks = pg.PlotCurveItem(pen=pg.mkPen("#c8f0f4", width=1), connect="pairs")
        self.event_spots = pg.ScatterPlotItem(symbol="d", size=10, pen=pg.mkPen("#101010", width=1), hoverable=True,
                                              tip=lambda x, y, data: data, hoverSize=13)
        self._event_labels: list[pg.TextItem] = []
        for item in (self.event_ticks, self.event_spots):
            item.setZValue(EVENT_Z)
            self.addItem(item)
        self._selected = -1
        self._following = False
        self.cursor = pg.InfiniteLine(0, angle=90, pen=pg.mkPen("#ffffff", width=1))
        self.cursor.setZValue(50)
        self.addItem(self.cursor)
        cache_static_layers(self, self.event_ticks)
        self.scene().sigMouseClicked.connect(self._clicked)
        self.getPlotItem().vb.sigXRangeChanged.connect(self._fit_texts)

    def set_model(self, model: AnnotationModel | None) -> None:
        if self.model is not None:
            self.model.labels_changed.disconnect(self.redraw)
        self.model = model
        if model is not None:
            model.labels_changed.connect(self.redraw)
            self.setXRange(0, model.frames, padding=0.01)
        self._draw_events(() if model is None else model.events)  # fixed per episode: edits do not move them
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
            call = self.model.call_of(k)
            failed = call is not None and call.status != "ok"
            text = pg.TextItem("", color="#ffb0b0" if failed else "#ffffff", anchor=(0.5, 0.5))
            text.setPos((s.start + s.end) / 2, SEGMENT_LABEL_Y)
            text.setToolTip(s.code if call is None else describe_call(call, self.model.t0))
            self.addItem(text)
            self._texts.append(text)
        self._fit_texts()
        for frame in self.model.gripper_events:
            line = pg.InfiniteLine(frame, angle=90, pen=pg.mkPen("#f0c040", width=1, style=Qt.PenStyle.DashLine))
            self.addItem(line)
            self._event_lines.append(line)

    def _draw_events(self, events) -> None:
        for text in self._event_labels:
            self.removeItem(text)
        self._event_labels = []
        frames = [e.frame for e in events]
        self.event_ticks.setData([f for f in frames for _ in (0, 1)], [y for _ in frames for y in EVENT_TICK])
        self.event_spots.setData([{"pos": (e.frame, EVENT_Y), "data": e.description,
                                   "brush": pg.mkBrush(event_colour(e))} for e in events])
        for e in events:
            text = pg.TextItem("", color=event_colour(e), anchor=(0, 0.5))
            text.setPos(e.frame, EVENT_Y)
            text.setZValue(EVENT_Z)
            self.addItem(text)
            self._event_labels.append(text)
        self._fit_event_labels()

    def segment_label_texts(self) -> list[str]:
        """The label shown on each segment ('' where it has no room)."""
        return [text.toPlainText() for text in self._texts]

    def event_label_texts(self) -> list[str]:
        """The label shown at each event ('' where it shares its cluster's label or has no room)."""
        return [text.toPlainText().strip() for text in self._event_labels]

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
            call = self.model.call_of(k)
            options = (full, full.split("(")[0])
            if call is not None and call.status != "ok":
                options = (*(f"✗ {call.status}: {c}" for c in options), f"✗ {options[1]}", "✗")
            label = next((c for c in options if len(c) <= room), "")
            text.setText(label)
        self._fit_event_labels()

    def _fit_event_labels(self) -> None:
        """One label per cluster of nearby events, as long as the gap to the next cluster allows;
        the last cluster may extend to the left when the episode's end leaves it no room."""
        if self.model is None or not self._event_labels:
            return
        (x0, x1), width = self.getPlotItem().vb.viewRange()[0], self.getPlotItem().vb.width()
        px_per_frame = width / max(x1 - x0, 1e-9)
        events = self.model.events
        clusters: list[list[int]] = []
        for i, e in enumerate(events):
            if clusters and (e.frame - events[clusters[-1][0]].frame) * px_per_frame < CLUSTER_PX:
                clusters[-1].append(i)
            else:
                clusters.append([i])
        for c, members in enumerate(clusters):
            head = events[members[0]]
            names = {events[i].call.name for i in members}
            if len(members) == 1:
                options = (head.label, head.call.name)
            else:
                options = (f"{head.call.name} ×{len(members)}" if len(names) == 1 else f"{len(members)} events",
                           f"×{len(members)}")
            right = events[clusters[c + 1][0]].frame if c + 1 < len(clusters) else x1
            room = (right - head.frame) * px_per_frame / CHAR_PX - 2
            anchor = (0, 0.5)
            if c + 1 == len(clusters) and not any(len(o) <= room for o in options):
                left = events[clusters[c - 1][0]].frame if c > 0 else x0
                room, anchor = (head.frame - left) * px_per_frame / CHAR_PX / 2 - 2, (1, 0.5)
            label = next((o for o in options if len(o) <= room), "")
            tip = "\n\n".join(events[i].description for i in members)
            for i in members:
                text = self._event_labels[i]
                text.setAnchor(anchor)
                text.setText(("  " + label if anchor[0] == 0 else label + "  ") if i == members[0] and label else "")
                text.setToolTip(tip)

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
