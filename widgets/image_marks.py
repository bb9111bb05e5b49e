"""Named marks on a camera image, and where on an image a click landed: the pixel convention of the
Record workspace's live cameras (widgets/live_views.py).

Pixels: a mark or a click is (u, v) with pixel centres at integers (u to the right, v down), as the
session projects them (app/workcell_tools.py `marks`) and as teaching reads them (rounded to the
nearest pixel). An ImageItem with `axisOrder="row-major"` covers pixel (row i, column j) with
[j, j+1) x [i, i+1) of its view box (invertY: row 0 on top), so the pixel centre (u, v) lies at
(u + 0.5, v + 0.5) and a click at view point (x, y) is pixel (x - 0.5, y - 0.5). The Run workspace's
cameras draw with the same convention (widgets/run_cameras.py).

`NamedImageMarks(box)` keeps one marker and one label per name on a view box and moves them as new
marks arrive (the session publishes them every control tick): items are made once per name, never
per frame, and an unchanged set of marks returns at once.

    object, seen now         amber circle (lightly filled), amber name
    object, not seen now     hollow dashed grey circle, grey name (the tracker keeps its last pose)
    target (a place)         light-blue crosshair, light-blue name
Names sit by their marks where they stay inside the image and clear of the marks and the names placed before them
(objects above-right first, targets below-right first); a name stays where it is while that place is
still clear, so names do not jump about as tracked marks jitter.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt

PIXEL_CENTRE = 0.5
MARK_PX = 14
MARK_Z = 20
LABEL_FONT_PT = 8
LABEL_FILL = (0, 0, 0, 160)
OBJECT_COLOUR = "#ffc107"
OBJECT_FILL = (255, 193, 7, 60)  # light: the object stays visible under its mark
LOST_COLOUR = "#9e9e9e"
TARGET_COLOUR = "#4fc3f7"
# Where a name sits by its mark (TextItem anchors: the mark is at this fraction of the label's box).
ABOVE_RIGHT, BELOW_RIGHT, ABOVE_LEFT, BELOW_LEFT = (-0.15, 1.05), (-0.15, -0.05), (1.15, 1.05), (1.15, -0.05)
LABEL_PLACES = {"object": (ABOVE_RIGHT, BELOW_RIGHT, ABOVE_LEFT, BELOW_LEFT),
                "target": (BELOW_RIGHT, ABOVE_RIGHT, BELOW_LEFT, ABOVE_LEFT)}
SYMBOLS = {"object": "o", "target": "crosshair"}


def click_pixel(item: pg.ImageItem, scene_pos: QPointF) -> tuple[float, float] | None:
    """The pixel (u, v) of `item`'s image under a point of the scene, or None when it is off the image."""
    image = item.image
    if image is None:
        return None
    p = item.mapFromScene(scene_pos)
    h, w = image.shape[:2]  # row-major: rows are v, columns are u
    if not (0.0 <= p.x() < w and 0.0 <= p.y() < h):
        return None
    return float(p.x()) - PIXEL_CENTRE, float(p.y()) - PIXEL_CENTRE


def mark_style(kind: str, seen: bool) -> tuple[str, object, str]:
    """(pen colour, brush, symbol) of a mark."""
    if kind == "target":
        return TARGET_COLOUR, pg.mkBrush(0, 0, 0, 0), SYMBOLS["target"]
    if not seen:
        return LOST_COLOUR, pg.mkBrush(0, 0, 0, 0), SYMBOLS["object"]
    return OBJECT_COLOUR, pg.mkBrush(*OBJECT_FILL), SYMBOLS["object"]


class _Mark:
    """One name's marker and label on a view box."""

    def __init__(self, box: pg.ViewBox, name: str):
        self.name = name
        self.marker = pg.TargetItem(pos=(0, 0), size=MARK_PX, movable=False)
        # A separate text item: TargetItem's own label can fail to lay out before its first paint.
        self.label = pg.TextItem(name, fill=pg.mkBrush(*LABEL_FILL))
        font = self.label.textItem.font()
        font.setPointSize(LABEL_FONT_PT)
        self.label.setFont(font)
        for item in (self.marker, self.label):
            item.setZValue(MARK_Z)
            item.setToolTip(name)
            box.addItem(item)
        self.style: tuple | None = None
        self.anchor: tuple | None = None
        self.xy = (0.0, 0.0)

    def place(self, x: float, y: float, kind: str, seen: bool) -> None:
        self.xy = (x, y)
        self.marker.setPos((x, y))
        self.label.setPos(x, y)
        style = (kind, seen)
        if style != self.style:
            self.style = style
            colour, brush, symbol = mark_style(kind, seen)
            pen = pg.mkPen(colour, width=2, style=Qt.PenStyle.SolidLine if seen else Qt.PenStyle.DashLine)
            self.marker.setSymbol(symbol)
            for set_pen in (self.marker.setPen, self.marker.setHoverPen):
                set_pen(pen)
            for set_brush in (self.marker.setBrush, self.marker.setHoverBrush):
                set_brush(brush)
            self.label.setColor(colour)
            self.label.setToolTip(f"{self.name} ({kind}{'' if seen or kind == 'target' else ', not seen now'})")

    def label_box(self, anchor: tuple[float, float], scale: tuple[float, float]) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of the name in image pixels, placed at `anchor`; `scale`: image
        pixels per screen pixel."""
        text = self.label.textItem.boundingRect()
        w, h = text.width() * scale[0], text.height() * scale[1]
        left, top = self.xy[0] - anchor[0] * w, self.xy[1] - anchor[1] * h
        return left, top, left + w, top + h

    def set_anchor(self, anchor: tuple[float, float]) -> None:
        if anchor != self.anchor:
            self.anchor = anchor
            self.label.setAnchor(anchor)

    def remove(self, box: pg.ViewBox) -> None:
        box.removeItem(self.marker)
        box.removeItem(self.label)


class NamedImageMarks:
    """The named marks of one camera's view box."""

    def __init__(self, box: pg.ViewBox):
        self.box = box
        self._marks: dict[str, _Mark] = {}
        self._shown: tuple | None = None
        self._size = (0, 0)
        box.sigResized.connect(self._place_labels)  # another scale: the names take other room

    def show(self, marks: tuple, kinds: dict[str, str], size: tuple[int, int]) -> None:
        """`marks`: ((name, u, v, seen), ...) in pixels of an image `size` = (width, height) pixels;
        `kinds`: name -> "object" | "target" (an unknown name is drawn as an object)."""
        key = (marks, tuple(sorted(kinds.items())), size)
        if key == self._shown:
            return
        self._shown = key
        names = {m[0] for m in marks}
        for name in [n for n in self._marks if n not in names]:
            self._marks.pop(name).remove(self.box)
        for name, u, v, seen in marks:
            if not (np.isfinite(u) and np.isfinite(v)):
                continue
            mark = self._marks.get(name)
            if mark is None:
                mark = self._marks[name] = _Mark(self.box, name)
            mark.place(u + PIXEL_CENTRE, v + PIXEL_CENTRE, kinds.get(name, "object"), bool(seen))
        self._size = size
        self._place_labels()

    def _place_labels(self, *_) -> None:
        """Each name where it fits inside the image and overlaps the marks and the names placed so far
        the least."""
        try:
            sx, sy = self.box.viewPixelSize()
        except Exception:  # noqa: BLE001 - not laid out yet: the next show or resize places them
            return
        width, height = self._size
        r = MARK_PX / 2
        placed: list[tuple] = [(m.xy[0] - r * sx, m.xy[1] - r * sy, m.xy[0] + r * sx, m.xy[1] + r * sy)
                               for m in self._marks.values()]  # names keep off every mark too
        for mark in sorted(self._marks.values(), key=lambda m: (m.style[0] != "object", m.name)):
            places = LABEL_PLACES.get(mark.style[0], LABEL_PLACES["object"])
            if mark.anchor in places:  # keep it where it is while that stays clear
                places = (mark.anchor, *[p for p in places if p != mark.anchor])
            costs = [_clash(mark.label_box(p, (sx, sy)), placed, width, height) for p in places]
            best = places[costs.index(min(costs))]
            mark.set_anchor(best)
            placed.append(mark.label_box(best, (sx, sy)))

    def labels(self) -> dict[str, tuple[float, float]]:
        """name -> the anchor its label is drawn at (for tests)."""
        return {n: m.anchor for n, m in self._marks.items()}

    def clear(self) -> None:
        self.show((), {}, (0, 0))

    # ---- for tests ---------------------------------------------------------------------------------
    def positions(self) -> dict[str, tuple[float, float]]:
        """name -> (u, v) in pixels of each mark drawn."""
        return {n: (float(m.marker.pos().x()) - PIXEL_CENTRE, float(m.marker.pos().y()) - PIXEL_CENTRE)
                for n, m in self._marks.items()}

    def styles(self) -> dict[str, tuple[str, bool]]:
        """name -> (kind, seen) as drawn."""
        return {n: m.style for n, m in self._marks.items()}


def _clash(rect: tuple, placed: list[tuple], width: float, height: float) -> float:
    """How badly a label's rect sits: its area outside the image plus its overlap with placed labels."""
    left, top, right, bottom = rect
    area = (right - left) * (bottom - top)
    inside = _overlap(rect, (0.0, 0.0, float(width), float(height)))
    return (area - inside) + sum(_overlap(rect, other) for other in placed)


def _overlap(a: tuple, b: tuple) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
