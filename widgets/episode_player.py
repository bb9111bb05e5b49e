"""Episode playback: camera frames and state curves on the control timeline, a play/scrub transport.

`EpisodePlayerWidget` shows the front and wrist cameras as pyqtgraph ImageItems for the current
control frame (camera samples are matched to control frames by time) and owns the transport (play /
pause at the control rate, a scrub slider). `StateCurvesWidget` draws gripper width and end-effector
height against the same frame axis with a cursor; clicking it asks to seek. The current frame is
view state, not domain data: `frame_changed` tells the other views where the cursor is.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QStyle, QVBoxLayout, QWidget

from app.domain import CONTROL_STREAM, Episode

CAMERAS = (("front_rgb", "front camera"), ("wrist_rgb", "wrist camera"))


class EpisodePlayerWidget(QWidget):
    frame_changed = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._episode: Episode | None = None
        self._frame = 0
        self._frames = 0
        self._camera_rows: dict[str, np.ndarray] = {}  # control frame -> row of each camera stream
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._advance)

        self._view = pg.GraphicsLayoutWidget()
        self._view.setBackground("#202020")
        self._images: dict[str, pg.ImageItem] = {}
        for col, (stream, title) in enumerate(CAMERAS):
            self._view.addLabel(title, row=0, col=col, color="#dddddd", size="9pt")
            box = self._view.addViewBox(row=1, col=col, lockAspect=True, invertY=True, enableMouse=False)
            item = pg.ImageItem(axisOrder="row-major")
            box.addItem(item)
            self._images[stream] = item
        self._play = QPushButton()
        self._play.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self._play.setToolTip("Play / pause (Space)")
        self._play.clicked.connect(self.toggle_play)
        self._slider = QSlider(Qt.Orientation.Horizontal)
        self._slider.valueChanged.connect(self.set_frame)
        self._label = QLabel("no episode")
        self._label.setMinimumWidth(150)

        transport = QHBoxLayout()
        transport.addWidget(self._play)
        transport.addWidget(self._slider, 1)
        transport.addWidget(self._label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._view, 1)
        layout.addLayout(transport)
        self.setEnabled(False)

    @property
    def frame(self) -> int:
        return self._frame

    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    def set_episode(self, episode: Episode | None, frame: int = 0) -> None:
        """Show `episode` (kept open for reading frames) or nothing; the caller owns closing it."""
        self.pause()
        self._episode = episode
        self._camera_rows = {}
        self._frames = episode.frames if episode is not None else 0
        self.setEnabled(episode is not None)
        for item in self._images.values():
            item.clear()
        if episode is None:
            self._label.setText("no episode")
            return
        t = episode.stream_time(CONTROL_STREAM)
        for stream in self._images:
            if stream in episode.stream_names and episode.stream_count(stream) > 0:
                ct = episode.stream_time(stream)
                rows = np.clip(np.searchsorted(ct, t, side="right") - 1, 0, len(ct) - 1)
                self._camera_rows[stream] = rows
        self._timer.setInterval(max(10, int(1000 / max(episode.control_hz, 1.0))))
        self._slider.blockSignals(True)
        self._slider.setRange(0, max(0, self._frames - 1))
        self._slider.blockSignals(False)
        self._frame = -1
        self.set_frame(min(frame, self._frames - 1))

    def set_frame(self, frame: int) -> None:
        if self._episode is None or self._frames == 0:
            return
        frame = int(np.clip(frame, 0, self._frames - 1))
        if frame == self._frame:
            return
        self._frame = frame
        for stream, rows in self._camera_rows.items():
            self._images[stream].setImage(np.asarray(self._episode.stream_data(stream)[rows[frame]]), autoLevels=False,
                                          levels=(0, 255))
        self._slider.blockSignals(True)
        self._slider.setValue(frame)
        self._slider.blockSignals(False)
        hz = self._episode.control_hz
        self._label.setText(f"frame {frame} / {self._frames - 1}  ({frame / hz:.1f} s)")
        self.frame_changed.emit(frame)

    def step(self, delta: int) -> None:
        self.set_frame(self._frame + delta)

    def toggle_play(self) -> None:
        if self.playing:
            self.pause()
        elif self._episode is not None:
            if self._frame >= self._frames - 1:
                self.set_frame(0)
            self._timer.start()
            self._play.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPause))

    def pause(self) -> None:
        self._timer.stop()
        self._play.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay))

    def _advance(self) -> None:
        if self._frame >= self._frames - 1:
            self.pause()
        else:
            self.set_frame(self._frame + 1)


class StateCurvesWidget(pg.PlotWidget):
    """Gripper width and end-effector height over control frames; a click asks to seek there."""

    seek_requested = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground("#202020")
        self.showGrid(x=True, y=True, alpha=0.2)
        self.setLabel("left", "height / width", units="m")
        self.getAxis("left").setWidth(60)  # the segment track's axis is as wide: frames line up
        self.setMouseEnabled(x=True, y=False)
        self.getPlotItem().hideButtons()
        self.addLegend(offset=(5, 5), labelTextSize="8pt")
        self._gripper = self.plot(pen=pg.mkPen("#f0c040", width=2), name="gripper width")
        self._ee_z = self.plot(pen=pg.mkPen("#50b0f0", width=2), name="end-effector z")
        self.getPlotItem().setDownsampling(auto=True, mode="peak")  # a 10-minute episode draws fast
        self.getPlotItem().setClipToView(True)
        self.cursor = pg.InfiniteLine(0, angle=90, pen=pg.mkPen("#ffffff", width=1))
        self.addItem(self.cursor)
        self.scene().sigMouseClicked.connect(self._clicked)

    def set_episode(self, episode: Episode | None) -> None:
        self._gripper.setData([], [])
        self._ee_z.setData([], [])
        if episode is None:
            return
        n = episode.frames
        x = np.arange(n)
        if "gripper_width" in episode.stream_names:
            self._gripper.setData(x, np.asarray(episode.stream_data("gripper_width")[:n]).reshape(n, -1)[:, 0])
        if "ee_pose" in episode.stream_names:
            self._ee_z.setData(x, np.asarray(episode.stream_data("ee_pose")[:n])[:, 2])
        self.setXRange(0, n, padding=0.01)
        self.enableAutoRange(axis="y")

    def set_cursor(self, frame: int) -> None:
        self.cursor.setValue(frame)

    def _clicked(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            x = self.getPlotItem().vb.mapSceneToView(event.scenePos()).x()
            self.seek_requested.emit(int(round(x)))
