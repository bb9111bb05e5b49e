"""Episode playback: camera frames and state curves on the control timeline, a play/scrub transport.

`EpisodePlayerWidget` shows the front and wrist cameras as pyqtgraph ImageItems for the current
control frame (camera samples are matched to control frames by time) and owns the transport (play /
pause, a scrub slider). Playing hands the current frame's time to an `AudioPlayback`
(app/audio_playback.py), which plays the episode's sound from there; a timer then shows the frame at
the playback's clock: the samples heard when there is sound, a monotonic clock when there is no
audio or no output device (`sound_unavailable` says why, in one line). Seeking while playing moves
the sound along. `StateCurvesWidget` draws gripper width and end-effector height against the same
frame axis with a cursor; clicking it asks to seek. The current frame is view state, not domain
data: `frame_changed` tells the other views where the cursor is.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QStyle, QVBoxLayout, QWidget

from app.audio_playback import AudioPlayback, AudioTrack
from app.domain import CONTROL_STREAM, Episode
from widgets.plot_cache import cache_static_layers

CAMERAS = (("front_rgb", "front camera"), ("wrist_rgb", "wrist camera"))
PLAY_TICK_MS = 15  # how often playing looks at the clock: every frame of a 60 Hz screen


class EpisodePlayerWidget(QWidget):
    frame_changed = Signal(int)
    sound_unavailable = Signal(str)  # why playing is silent, one line

    def __init__(self, playback: AudioPlayback | None = None, parent=None):
        super().__init__(parent)
        self.playback = playback if playback is not None else AudioPlayback()
        self._episode: Episode | None = None
        self._frame = 0
        self._frames = 0
        self._times = np.zeros(0)  # (N,) control frame times
        self._end_t = 0.0  # the last frame's time + one control period
        self._camera_rows: dict[str, np.ndarray] = {}  # control frame -> row of each camera stream
        self._timer = QTimer(self)
        self._timer.setInterval(PLAY_TICK_MS)
        self._timer.timeout.connect(self.advance)

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

    def set_episode(self, episode: Episode | None, frame: int = 0, audio: AudioTrack | None = None) -> None:
        """Show `episode` (kept open for reading frames) with its `audio`, or nothing; the caller owns
        closing it."""
        self.pause()
        self.playback.set_track(audio if episode is not None else None)
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
        self._times, self._end_t = t, float(t[-1]) + 1.0 / max(episode.control_hz, 1e-6)
        for stream in self._images:
            if stream in episode.stream_names and episode.stream_count(stream) > 0:
                ct = episode.stream_time(stream)
                rows = np.clip(np.searchsorted(ct, t, side="right") - 1, 0, len(ct) - 1)
                self._camera_rows[stream] = rows
        self._slider.blockSignals(True)
        self._slider.setRange(0, max(0, self._frames - 1))
        self._slider.blockSignals(False)
        self._frame = -1
        self.set_frame(min(frame, self._frames - 1))

    def set_frame(self, frame: int) -> None:
        """Show `frame`; while playing, playing goes on from there (the sound too)."""
        if self._episode is None or self._frames == 0:
            return
        frame = int(np.clip(frame, 0, self._frames - 1))
        if self.playing:
            self.playback.seek(float(self._times[frame]))
        self._show(frame)

    def frame_at(self, t: float) -> int:
        """The control frame showing at episode time t (a microsecond early counts: sums of buffer
        lengths land on frame times up to round-off)."""
        i = np.searchsorted(self._times, t + 1e-6, side="right") - 1
        return int(np.clip(i, 0, max(self._frames - 1, 0)))

    def _show(self, frame: int) -> None:
        if frame == self._frame:
            return
        self._frame = frame
        frames = self._episode.samples_at({stream: int(rows[frame]) for stream, rows in self._camera_rows.items()})
        for stream, image in frames.items():
            self._images[stream].setImage(image, autoLevels=False, levels=(0, 255))
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
            problem = self.playback.start(float(self._times[self._frame]))
            self._timer.start()
            self._play.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPause))
            if problem:
                self.sound_unavailable.emit(problem)

    def pause(self) -> None:
        self._timer.stop()
        self.playback.stop()
        self._play.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay))

    def advance(self) -> None:
        """Show the frame at the playback clock; stop at the end of the episode."""
        if not self.playing:
            return
        t = self.playback.time()
        if t >= self._end_t:
            self._show(self._frames - 1)
            self.pause()
        else:
            self._show(self.frame_at(t))

    def hideEvent(self, event) -> None:
        self.pause()  # another workspace took the window: the sound stops with the picture
        super().hideEvent(event)


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
        cache_static_layers(self, self._gripper, self._ee_z)
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
