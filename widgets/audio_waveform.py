"""The audio lane of the Annotate timeline: the take's sound as a min/max envelope on the frame axis.

It is handed an `AudioTrack` (app/audio_playback.py) and the episode's control frame times; the
envelope is computed once per episode (200 buckets a second) and mapped onto frames, the same x
axis as the segment track and the state curves (the panel links their x ranges). Each redraw
(zoom, pan, resize) merges the visible buckets down to about one per pixel, so a 10-minute take
draws as fast as a 10-second one. Silence (a dropped block) is a flat line. A click asks to seek;
the playhead is a cursor line like the other views'. Hidden when the episode has no audio.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal

from app.audio_playback import AudioTrack, Envelope, reduce_envelope
from widgets.plot_cache import cache_static_layers

AXIS_WIDTH = 60  # as wide as the curves' and the segment track's axes: frames line up
WAVE_COLOUR = "#4fc3c0"
MIN_PEAK = 0.02  # quieter takes are scaled up to this, not to their own noise floor


def times_to_frames(t: np.ndarray, frame_times: np.ndarray, hz: float) -> np.ndarray:
    """x positions on the control frame axis of episode times `t` (linear beyond the recorded frames)."""
    frames = np.arange(len(frame_times), dtype=float)
    x = np.interp(t, frame_times, frames)
    before, after = t < frame_times[0], t > frame_times[-1]
    x[before] = (t[before] - frame_times[0]) * hz
    x[after] = frames[-1] + (t[after] - frame_times[-1]) * hz
    return x


class AudioWaveformWidget(pg.PlotWidget):
    seek_requested = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.envelope: Envelope | None = None
        self._x = np.zeros(0)  # (K,) frame position of each envelope bucket
        self.setBackground("#202020")
        self.setMouseEnabled(x=True, y=False)
        plot = self.getPlotItem()
        plot.hideButtons()
        plot.hideAxis("bottom")
        left = self.getAxis("left")
        left.setStyle(showValues=False, tickLength=0)
        left.setWidth(AXIS_WIDTH)
        left.setPen(pg.mkPen(None))
        left.enableAutoSIPrefix(False)  # a label, not a unit: no "(x0.001)"
        self.setLabel("left", "audio")
        self.setFixedHeight(64)
        self._upper = pg.PlotCurveItem(pen=pg.mkPen(WAVE_COLOUR, width=1))
        self._lower = pg.PlotCurveItem(pen=pg.mkPen(WAVE_COLOUR, width=1))
        self._fill = pg.FillBetweenItem(self._upper, self._lower, brush=pg.mkBrush(WAVE_COLOUR + "a0"))
        for item in (self._fill, self._upper, self._lower):
            self.addItem(item)
        self.addItem(pg.InfiniteLine(0, angle=0, pen=pg.mkPen("#505050", width=1)))
        self.cursor = pg.InfiniteLine(0, angle=90, pen=pg.mkPen("#ffffff", width=1))
        self.cursor.setZValue(50)
        self.addItem(self.cursor)
        cache_static_layers(self, self._fill, self._upper, self._lower)
        self.scene().sigMouseClicked.connect(self._clicked)
        plot.vb.sigXRangeChanged.connect(self._redraw)
        self.setVisible(False)

    def set_track(self, track: AudioTrack | None, frame_times: np.ndarray | None = None, hz: float = 1.0) -> None:
        """Show `track` against the control frames at `frame_times` (hidden for None)."""
        if track is None or frame_times is None or len(frame_times) == 0:
            self.envelope, self._x = None, np.zeros(0)
            self.setVisible(False)
            self._redraw()
            return
        self.envelope = track.envelope()
        self._x = times_to_frames(self.envelope.times, np.asarray(frame_times, float), hz)
        peak = max(self.envelope.peak, MIN_PEAK) * 1.05
        self.setYRange(-peak, peak, padding=0)
        self.setVisible(True)
        self._redraw()

    def set_cursor(self, frame: int) -> None:
        self.cursor.setValue(frame)

    def drawn(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, min, max) as drawn now, for tests."""
        x, hi = self._upper.getData()
        _, lo = self._lower.getData()
        empty = np.zeros(0)
        return (empty, empty, empty) if x is None else (x, lo, hi)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._redraw()

    def _redraw(self, *_) -> None:
        if not hasattr(self, "_upper"):  # resized while being constructed
            return
        if self.envelope is None or len(self._x) == 0:
            self._upper.setData([], [])
            self._lower.setData([], [])
            return
        (x0, x1), pixels = self.getPlotItem().vb.viewRange()[0], max(self.getPlotItem().vb.width(), 1.0)
        i0 = max(int(np.searchsorted(self._x, x0)) - 1, 0)
        i1 = min(int(np.searchsorted(self._x, x1)) + 1, len(self._x))
        if i1 <= i0:
            i0, i1 = 0, len(self._x)
        factor = max(1, math.ceil((i1 - i0) / pixels))  # about one bucket per pixel
        starts, lo, hi = reduce_envelope(self.envelope.lo[i0:i1], self.envelope.hi[i0:i1], factor)
        x = self._x[i0:i1][starts]
        self._upper.setData(x, hi)
        self._lower.setData(x, lo)

    def _clicked(self, event) -> None:
        if self.envelope is not None and event.button() == Qt.MouseButton.LeftButton:
            x = self.getPlotItem().vb.mapSceneToView(event.scenePos()).x()
            self.seek_requested.emit(int(round(x)))
