"""Python's cyclic garbage collector, run on the GUI thread only.

Python collects cycles in whichever thread happens to allocate past the threshold. In this app the
workers (record and run sessions, policy inference, episode writers) allocate the most, so a Qt
widget's wrapper left in a reference cycle would be destroyed on a worker thread: QObject's
destructor then waits for the GIL while the GUI thread, destroying another object, waits for a
mutex the worker holds, and the app deadlocks (seen in the Run workspace's tests when the first
torch import on the run worker triggered a collection). Qt objects must die on the GUI thread.

`GuiThreadGarbageCollector` turns automatic collection off and collects from a timer on the GUI
thread instead, by generation, at the interpreter's own thresholds; `stop()` turns it back on.
A full collection traverses every tracked object: with torch, transformers and MuJoCo loaded that
is ~0.3 s with the GIL held, which stopped the window and the control loop alike (measured by
`bench run`). So each full collection ends with `gc.freeze()`: what survived it (modules, the
window, loaded models) is left out of later collections, which then look only at newer objects.
The cost: an object that survived a full collection and later becomes garbage inside a reference
cycle is never freed (one freed by its reference count is, which is how models and episodes go).
The first full pass after models load still takes its ~0.3 s, so full passes wait while
`defer_full()` says the arm is busy (a run or a recording); young generations are still collected,
every CHECK_MS, before they grow long to traverse.
"""
from __future__ import annotations

import gc
from typing import Callable

from PySide6.QtCore import QObject, QTimer

CHECK_MS = 20  # often: workers allocate fast, and a young generation left to grow takes long to traverse


class GuiThreadGarbageCollector(QObject):
    def __init__(self, parent=None, interval_ms: int = CHECK_MS):
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.check)
        self._interval = interval_ms
        self.defer_full: Callable[[], bool] = lambda: False  # True while a full pass would stall the arm

    def start(self) -> None:
        gc.disable()
        self._timer.start(self._interval)

    def stop(self) -> None:
        self._timer.stop()
        gc.enable()

    def check(self) -> None:
        """When a generation passed its threshold: while the arm is idle, a full pass and a freeze
        (what was imported and loaded since is left out from then on); while it is busy, the oldest
        young generation that is due."""
        counts = gc.get_count()
        due = [g for g in (2, 1, 0) if counts[g] > self._thresholds[g]]
        if not due:
            return
        if not self.defer_full():
            gc.collect()
            gc.freeze()  # survivors leave the collector's view: the next passes are short
            return
        young = [g for g in due if g < 2]
        if young:
            gc.collect(young[0])


def collect_on_gui_thread(app) -> GuiThreadGarbageCollector:
    """The application's collector (made once; it lives as long as the application), started."""
    collector = app.findChild(GuiThreadGarbageCollector) or GuiThreadGarbageCollector(app)
    collector.start()
    return collector
