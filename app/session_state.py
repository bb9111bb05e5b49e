"""What the record and run sessions share with their callers: an immutable snapshot and a queue of
events, both published by the worker under one lock, read and waited on from any thread.

A session sets `_lock` (an RLock), `_changed` (a Condition on it, notified whenever the snapshot
changes or an event is posted), `_snap` and `_events` (a deque) before its worker starts, and names
its event type in `event_type`. Its worker publishes with `_update(**changes)` and `_event(kind, text)`.
Both sessions open their workcell with `open_session_workcell` and stop its arm with `estop_arm`.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable


class PublishedState:
    """Reading a session's snapshot and events from any thread, and waiting on them."""

    event_type: Callable  # (kind, text, path) -> the session's event

    # ---- publishing (the worker) -----------------------------------------------------------------
    def _update(self, **changes) -> None:
        with self._changed:
            self._snap = replace(self._snap, **changes)
            self._changed.notify_all()

    def _event(self, kind: str, text: str, path: Path | None = None) -> None:
        with self._changed:
            self._events.append(self.event_type(kind, text, path))
            self._changed.notify_all()

    # ---- reading (any thread) --------------------------------------------------------------------

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


def open_session_workcell(robot: str, spec, control_hz: float, robot_ip: str | None, setup=None):
    """The workcell of `robot` as `setup` says (app/workcell_setup.py; None: the kind's default);
    a real arm gets its address."""
    from app.workcell_setup import default_setup, open_setup_workcell

    return open_setup_workcell(robot, spec, control_hz, robot_ip, setup or default_setup(robot))


def estop_arm(cell, reason: str) -> None:
    """Stop the workcell's arm; an arm that cannot be reached is left to its own watchdog."""
    try:
        cell.arm.estop(reason)
    except Exception:  # noqa: BLE001 - the arm is unreachable; its own watchdog holds it
        pass
