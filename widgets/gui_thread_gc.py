"""Python's cyclic garbage collector, run on the GUI thread only.

Python collects cycles in whichever thread happens to allocate past the threshold. In this app the
workers (record and run sessions, policy inference, episode writers) allocate the most, so a Qt
widget's wrapper left in a reference cycle would be destroyed on a worker thread: QObject's
destructor then waits for the GIL while the GUI thread, destroying another object, waits for a
mutex the worker holds, and the app deadlocks (seen in the Run workspace's tests when the first
torch import on the run worker triggered a collection). Qt objects must die on the GUI thread.

`GuiThreadGarbageCollector` turns automatic collection off and collects from a timer on the GUI
thread instead, by generation, at the interpreter's own thresholds; `stop()` turns it back on.
Workers also no longer pause for collections: the control loop never stops for one.
"""
from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

CHECK_MS = 250


class GuiThreadGarbageCollector(QObject):
    def __init__(self, parent=None, interval_ms: int = CHECK_MS):
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.check)
        self._interval = interval_ms

    def start(self) -> None:
        gc.disable()
        self._timer.start(self._interval)

    def stop(self) -> None:
        self._timer.stop()
        gc.enable()

    def check(self) -> None:
        """Collect the oldest generation whose count passed its threshold (as the interpreter would)."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self._thresholds[generation]:
                gc.collect(generation)
                return


def collect_on_gui_thread(app) -> GuiThreadGarbageCollector:
    """Install the collector on the application (once); it lives as long as the application."""
    existing = app.findChild(GuiThreadGarbageCollector)
    if existing is not None:
        return existing
    collector = GuiThreadGarbageCollector(app)
    collector.start()
    return collector
