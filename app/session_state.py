"""What the record and run sessions share with their callers: an immutable snapshot and a queue of
events, both published by the worker under one lock, read and waited on from any thread.

A session sets `_lock` (an RLock), `_changed` (a Condition on it, notified whenever the snapshot
changes or an event is posted), `_snap` and `_events` (a deque) before its worker starts.
"""
from __future__ import annotations

from typing import Callable


class PublishedState:
    """Reading a session's snapshot and events from any thread, and waiting on them."""

    def snapshot(self):
        with self._lock:
            return self._snap

    def drain_events(self) -> list:
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events

    def wait_for(self, predicate: Callable, timeout: float) -> bool:
        """Block until `predicate(snapshot)` holds, checked whenever the snapshot changes; False
        after `timeout` seconds without it."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self._snap), timeout)

    def wait_for_event(self, kind: str, timeout: float):
        """The oldest event of `kind` not drained yet, waiting up to `timeout` seconds for one."""
        def first():
            return next((e for e in self._events if e.kind == kind), None)

        with self._changed:
            return first() if self._changed.wait_for(lambda: first() is not None, timeout) else None
