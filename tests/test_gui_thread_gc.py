"""Cyclic garbage is collected on the GUI thread only (widgets/gui_thread_gc.py)."""
from __future__ import annotations

import gc
import threading

from widgets.gui_thread_gc import GuiThreadGarbageCollector


class Cycle:
    def __init__(self):
        self.me = self


def test_workers_never_collect_and_the_gui_thread_collects_at_the_thresholds(qapp):
    collector = GuiThreadGarbageCollector()
    collector.start()
    try:
        assert not gc.isenabled()

        def allocate() -> None:  # a worker allocating far past the thresholds collects nothing
            for _ in range(5 * gc.get_threshold()[0]):
                Cycle()
        worker = threading.Thread(target=allocate)
        worker.start()
        worker.join()
        assert gc.get_count()[0] > gc.get_threshold()[0]
        collector.check()  # the GUI thread's timer
        assert gc.get_count()[0] < gc.get_threshold()[0]
    finally:
        collector.stop()
    assert gc.isenabled()


def test_while_the_arm_is_busy_only_the_young_generations_are_collected(qapp):
    collector = GuiThreadGarbageCollector()
    collector.start()
    busy = [True]
    collector.defer_full = lambda: busy[0]
    try:
        frozen = gc.get_freeze_count()
        for _ in range(3 * gc.get_threshold()[0]):
            Cycle()
        collector.check()
        assert gc.get_count()[0] < gc.get_threshold()[0]  # the young pass ran
        assert gc.get_freeze_count() == frozen  # no full pass, no freeze: the arm is busy
        busy[0] = False
        for _ in range(3 * gc.get_threshold()[0]):
            Cycle()
        collector.check()
        assert gc.get_freeze_count() > frozen  # idle: a full pass, survivors frozen
    finally:
        collector.stop()
