"""The cameras of a run with what the run engine projected onto them: memory markers and the path ahead.

`RunCameras.show_images(images, marks)` renders `RunSnapshot.images` and `RunSnapshot.marks`
(app/run_program.py): one image per camera (front first, aspect kept, pixel (0, 0) top-left) and,
from that camera's `CameraMarks`, a reticle with its key's name at every remembered key pose (in the
colour the memory table gives that key, widgets/run_memory_view.py) and the predicted end-effector
path still to run as a polyline, with a dot where it starts. Everything arrives in pixels; nothing
is projected here.

Marks are pixel coordinates with pixel centres at integers, while an ImageItem's pixel (i, j) covers
[j, j+1) x [i, i+1) of the view: a mark at (u, v) is drawn at (u + 0.5, v + 0.5). NaN rows of a path
(off the image or behind the camera) are not drawn and break the line.

The same images and marks mappings return at once (the panel polls at ~30 Hz); a new mapping only
touches the cameras whose image or marks object changed.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.run_program import CameraMarks
from widgets.live_views import CAMERA_TITLES
from widgets.run_memory_view import SHARED_KEY_COLOURS, MemoryKeyColours

BACKGROUND = "#202020"
PLACEHOLDER = "no camera: start a run"
PATH_COLOUR = "#ffffff"
PATH_OUTLINE = (0, 0, 0, 170)  # under the path so it reads over a bright scene
PIXEL_CENTRE = 0.5
MARKER_PX, PATH_DOT_PX = 18, 9
PATH_Z, MARKER_Z = 10, 20


class _CameraOverlay:
    """One camera's view box: its image, path and memory markers."""

    def __init__(self, box: pg.ViewBox, colours: MemoryKeyColours):
        self.box, self.colours = box, colours
        self.image = pg.ImageItem(axisOrder="row-major")
        self.rgb: np.ndarray | None = None
        self.marks: CameraMarks | None = None
        self.path_outline = pg.PlotCurveItem(pen=pg.mkPen(PATH_OUTLINE, width=4), antialias=True)
        self.path = pg.PlotCurveItem(pen=pg.mkPen(PATH_COLOUR, width=2), antialias=True)
        self.path_start = pg.ScatterPlotItem(size=PATH_DOT_PX, brush=pg.mkBrush(PATH_COLOUR),
                                             pen=pg.mkPen("#000000", width=1))
        self.markers: dict[str, pg.TargetItem] = {}
        self.labels: dict[str, pg.TextItem] = {}
        box.addItem(self.image)
        for item in (self.path_outline, self.path, self.path_start):
            item.setZValue(PATH_Z)
            box.addItem(item)

    def set_image(self, rgb: np.ndarray) -> None:
        if self.rgb is None or self.rgb.shape[:2] != rgb.shape[:2]:
            self.box.setRange(xRange=(0, rgb.shape[1]), yRange=(0, rgb.shape[0]), padding=0)
            self.box.disableAutoRange()  # overlays never move the view off the image
        self.rgb = rgb
        self.image.setImage(rgb, autoLevels=False, levels=(0, 255))

    def set_marks(self, marks: CameraMarks | None) -> None:
        self.marks = marks
        self._set_markers(marks.memory if marks is not None else ())
        self._set_path(marks.path if marks is not None else None)

    def _set_markers(self, memory: tuple[tuple[str, float, float], ...]) -> None:
        shown = {key: (u + PIXEL_CENTRE, v + PIXEL_CENTRE) for key, u, v in memory}
        for key in [k for k in self.markers if k not in shown]:
            self.box.removeItem(self.markers.pop(key))
            self.box.removeItem(self.labels.pop(key))
        for key, pos in shown.items():
            if key not in self.markers:
                colour = self.colours.colour(key)
                pen, brush = pg.mkPen(colour, width=2), pg.mkBrush(0, 0, 0, 0)
                marker = pg.TargetItem(pos=pos, size=MARKER_PX, pen=pen, hoverPen=pen, brush=brush, hoverBrush=brush,
                                       movable=False)
                # A separate text item: TargetItem's own label can fail to lay out before its first paint.
                label = pg.TextItem(key, color=colour, fill=pg.mkBrush(0, 0, 0, 150), anchor=(-0.12, 1.05))
                for item in (marker, label):
                    item.setZValue(MARKER_Z)
                    item.setToolTip(key)
                    self.box.addItem(item)
                self.markers[key], self.labels[key] = marker, label
            self.markers[key].setPos(pos)
            self.labels[key].setPos(*pos)

    def _set_path(self, path: np.ndarray | None) -> None:
        uv = np.zeros((0, 2)) if path is None else np.asarray(path, dtype=float).reshape(-1, 2)
        finite = np.isfinite(uv).all(axis=1)
        points = uv[finite] + PIXEL_CENTRE  # (M, 2) the drawn points
        # Point k joins point k+1 only where they were neighbours in the path: a NaN row breaks the line.
        index = np.flatnonzero(finite)
        connect = np.append(np.diff(index) == 1, False) if len(index) else np.zeros(0, bool)
        for curve in (self.path_outline, self.path):
            curve.setData(points[:, 0], points[:, 1], connect=connect)
        self.path_start.setData(points[:1, 0], points[:1, 1])

    def marker_positions(self) -> list[tuple[str, float, float]]:
        return [(key, float(m.pos().x()), float(m.pos().y())) for key, m in self.markers.items()]

    def path_points(self) -> np.ndarray:
        x, y = self.path.getData()
        return np.zeros((0, 2)) if x is None else np.column_stack([x, y])


class RunCameras(QWidget):
    """One image per camera, side by side, with the run's memory markers and predicted path."""

    def __init__(self, colours: MemoryKeyColours | None = None, parent=None):
        super().__init__(parent)
        self.colours = colours if colours is not None else SHARED_KEY_COLOURS
        self._view = pg.GraphicsLayoutWidget()
        self._view.setBackground(BACKGROUND)
        self._overlays: dict[str, _CameraOverlay] = {}
        self._images: Mapping[str, np.ndarray] | None = None
        self._marks: Mapping[str, CameraMarks] | None = None
        self.placeholder = self._view.addLabel(PLACEHOLDER, color="#aaaaaa", size="11pt")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._view)

    def show_images(self, images: Mapping[str, np.ndarray],
             marks: Mapping[str, CameraMarks] | None = None) -> None:
        marks = {} if marks is None else marks
        if images is self._images and marks is self._marks:
            return
        self._images, self._marks = images, marks
        if set(images) != set(self._overlays):
            self._rebuild(sorted(images, key=lambda c: (c != "front", c)))
        for cam, rgb in images.items():
            overlay = self._overlays[cam]
            if rgb is not overlay.rgb:
                overlay.set_image(rgb)
            cam_marks = marks.get(cam)
            if cam_marks is not overlay.marks:
                overlay.set_marks(cam_marks)

    def _rebuild(self, cameras: list[str]) -> None:
        self._view.clear()
        self._overlays = {}
        self.placeholder = None
        if not cameras:
            self.placeholder = self._view.addLabel(PLACEHOLDER, color="#aaaaaa", size="11pt")
            return
        for col, cam in enumerate(cameras):
            self._view.addLabel(CAMERA_TITLES.get(cam, cam), row=0, col=col, color="#dddddd", size="9pt")
            box = self._view.addViewBox(row=1, col=col, lockAspect=True, invertY=True, enableMouse=False)
            self._overlays[cam] = _CameraOverlay(box, self.colours)

    # ---- for tests ---------------------------------------------------------------------------------
    @property
    def cameras(self) -> list[str]:
        return list(self._overlays)

    def placeholder_text(self) -> str:
        return "" if self.placeholder is None else self.placeholder.text

    def marker_positions(self, cam: str) -> list[tuple[str, float, float]]:
        """(key, x, y) of each memory marker drawn on `cam`, in view coordinates."""
        return self._overlays[cam].marker_positions()

    def path_points(self, cam: str) -> np.ndarray:
        """(M, 2) x, y of the path points drawn on `cam` (NaN rows left out), in view coordinates."""
        return self._overlays[cam].path_points()

    def marker_colour(self, cam: str, key: str) -> str:
        return self._overlays[cam].markers[key].pen.color().name()
