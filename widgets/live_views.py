"""Live views of a workcell: camera images and robot-state curves, fed from session snapshots.

Both widgets only draw what they are given (`show_images`, `show_samples`, `show_marks`); they never
talk to a device, so the GUI thread stays free while the record session's worker does the I/O. A left
click on a camera image is reported as that image's pixel (`image_clicked`; the pixel convention is
widgets/image_marks.py's), for teaching objects by clicking them (widgets/teach_box.py).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from widgets.image_marks import NamedImageMarks, click_pixel

CAMERA_TITLES = {"front": "front camera", "wrist": "wrist camera"}
CURVES = (("x", "#e53935", 0), ("y", "#43a047", 1), ("z", "#1e88e5", 2))


class LiveCameras(QWidget):
    """One image per camera, side by side, aspect kept, with named marks."""

    image_clicked = Signal(str, float, float)  # camera, u, v: the pixel under a left click

    def __init__(self, parent=None):
        super().__init__(parent)
        self._view = pg.GraphicsLayoutWidget()
        self._view.setBackground("#202020")
        self._view.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # a click moves the keys to teleop
        self._items: dict[str, pg.ImageItem] = {}
        self._marks: dict[str, NamedImageMarks] = {}
        self._sizes: dict[str, tuple[int, int]] = {}  # camera -> (width, height) the view box shows
        self._view.scene().sigMouseClicked.connect(self._clicked)
        self._placeholder = self._view.addLabel("no camera: connect to a workcell", color="#aaaaaa", size="11pt")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._view)
        self.setFocusProxy(self._view)

    def show_images(self, images: dict[str, np.ndarray]) -> None:
        if set(images) != set(self._items):
            self._rebuild(sorted(images, key=lambda c: (c != "front", c)))
        for cam, rgb in images.items():
            size = (rgb.shape[1], rgb.shape[0])
            if self._sizes.get(cam) != size:  # the view fits the image; marks never move it
                self._sizes[cam] = size
                box = self._marks[cam].box
                box.setRange(xRange=(0, size[0]), yRange=(0, size[1]), padding=0)
                box.disableAutoRange()
            self._items[cam].setImage(rgb, autoLevels=False, levels=(0, 255))

    def show_marks(self, marks: dict, kinds: dict[str, str]) -> None:
        """`marks`: camera -> ((name, u, v, seen), ...) in that camera's pixels; `kinds`: name -> kind."""
        for cam, overlay in self._marks.items():
            overlay.show(marks.get(cam, ()), kinds, self._sizes.get(cam, (0, 0)))

    def set_teaching(self, on: bool) -> None:
        """A cross cursor over the images while a click teaches what it lands on."""
        if on:
            self._view.viewport().setCursor(Qt.CursorShape.CrossCursor)
        else:
            self._view.viewport().unsetCursor()

    def _clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        for cam, item in self._items.items():
            pixel = click_pixel(item, event.scenePos())
            if pixel is not None:
                self.image_clicked.emit(cam, *pixel)
                return

    def _rebuild(self, cameras: list[str]) -> None:
        self._view.clear()
        self._items, self._marks, self._sizes = {}, {}, {}
        if not cameras:
            self._placeholder = self._view.addLabel("no camera", color="#aaaaaa", size="11pt")
            return
        for col, cam in enumerate(cameras):
            self._view.addLabel(CAMERA_TITLES.get(cam, cam), row=0, col=col, color="#dddddd", size="9pt")
            box = self._view.addViewBox(row=1, col=col, lockAspect=True, invertY=True, enableMouse=False)
            item = pg.ImageItem(axisOrder="row-major")
            box.addItem(item)
            self._items[cam] = item
            self._marks[cam] = NamedImageMarks(box)

    @property
    def cameras(self) -> list[str]:
        return list(self._items)

    def image_item(self, cam: str) -> pg.ImageItem:
        return self._items[cam]

    def marks(self, cam: str) -> NamedImageMarks:
        return self._marks[cam]


class LiveStateCurves(QWidget):
    """End-effector position and gripper width over the last seconds."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.setLabel("left", "TCP position", units="m")
        self.plot.addLegend(offset=(6, 6), labelTextSize="8pt")
        self._curves = {name: self.plot.plot(name=f"TCP {name}", pen=pg.mkPen(colour, width=2), antialias=True)
                        for name, colour, _ in CURVES}
        self._gripper = self.plot.plot(name="gripper width x5", antialias=True,
                                       pen=pg.mkPen("#8e24aa", width=2, style=Qt.PenStyle.DashLine))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self._last_t: float | None = None

    def show_samples(self, samples) -> None:
        """`samples`: TickSample-like objects with t, ee_xyz and gripper_width, oldest first."""
        if not samples:
            for curve in (*self._curves.values(), self._gripper):
                curve.setData([], [])
            self._last_t = None
            return
        if samples[-1].t == self._last_t:
            return
        self._last_t = samples[-1].t
        t = np.fromiter((s.t for s in samples), float, len(samples))
        xyz = np.array([s.ee_xyz for s in samples], float)
        for name, _, axis in CURVES:
            self._curves[name].setData(t, xyz[:, axis])
        self._gripper.setData(t, 5.0 * np.fromiter((s.gripper_width for s in samples), float, len(samples)))

    def curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        curve = self._gripper if name == "gripper" else self._curves[name]
        x, y = curve.getData()
        return (np.asarray([]), np.asarray([])) if x is None else (x, y)
