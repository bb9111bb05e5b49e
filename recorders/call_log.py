"""Logged calls of the robot API: what was called, when, by whom, and how it ended.

A `CallLog` times calls on one clock (the workcell's). Every call, ok, failed with its reason, or
aborted, becomes one frozen `CallRecord`: a call starts as a record with status "running", and when
it ends the log builds its finished record, keeps it in `log.records` and hands it as a plain dict
to the sink (the episode writer). Reading an episode gives the same frozen records back. Motion calls are timed with `record()`, memory,
query and terminal calls are zero-duration `instant()` events, and hotkey-labelled teleop
stretches are opened with `open_call()` and closed later by the operator with `close_call()`.
"""
from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterator

from recorders.robot_api_spec import Call

STATUSES = ("ok", "failed", "aborted", "running")
SOURCES = ("script", "gui", "hotkey", "planner")
FINAL_STATUSES = ("ok", "failed", "aborted")


class SkillFailed(Exception):
    """A call could not be done; the message is the reason shown to the user."""


class CallAborted(Exception):
    """A call was stopped before it finished (operator, e-stop, time limit)."""


class CallRecordError(ValueError):
    """A logged call (e.g. read from a file) is malformed; the message says which field."""


@dataclass(frozen=True)
class CallRecord:
    code: str  # canonical code of the call
    name: str
    args: tuple  # JSON-able values: strings, numbers, nested calls as {"name", "args"} dicts
    t_start: float  # seconds on the log's clock
    t_end: float | None  # None while running
    status: str  # one of STATUSES
    source: str  # one of SOURCES
    reason: str | None = None  # why it failed or was aborted

    def __post_init__(self):
        if self.status not in STATUSES:
            raise CallRecordError(f"call status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if self.source not in SOURCES:
            raise CallRecordError(f"call source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.t_end is not None and self.t_end < self.t_start:
            raise CallRecordError(f"call {self.code} ends ({self.t_end}) before it starts ({self.t_start})")
        object.__setattr__(self, "args", tuple(self.args))

    @property
    def duration(self) -> float | None:
        return None if self.t_end is None else self.t_end - self.t_start

    @property
    def call(self) -> Call:
        """The logged call as a `Call` value."""
        return Call.from_json({"name": self.name, "args": list(self.args)})

    def to_dict(self) -> dict:
        return {**asdict(self), "args": list(self.args)}

    @staticmethod
    def from_dict(d: dict) -> "CallRecord":
        """The record of a `to_dict()` dict; CallRecordError naming the bad field otherwise."""
        if not isinstance(d, dict):
            raise CallRecordError(f"a logged call must be an object, got {type(d).__name__}")
        missing = [k for k in ("code", "name", "t_start", "status", "source") if k not in d]
        if missing:
            raise CallRecordError(f"logged call {str(d)[:80]} lacks {', '.join(missing)}")
        args = d.get("args", [])
        if not isinstance(args, (list, tuple)):
            raise CallRecordError(f"logged call {d['code']!r}: args must be a list")
        reason = d.get("reason")
        return CallRecord(str(d["code"]), str(d["name"]), tuple(args), _time(d, "t_start"),
                          None if d.get("t_end") is None else _time(d, "t_end"), d["status"], d["source"],
                          None if reason is None else str(reason))


def _time(d: dict, key: str) -> float:
    try:
        t = float(d[key])
    except (TypeError, ValueError):
        raise CallRecordError(f"logged call {d.get('code')!r}: {key} must be a number, got {d[key]!r}") from None
    if not math.isfinite(t):
        raise CallRecordError(f"logged call {d.get('code')!r}: {key} must be finite, got {t}")
    return t


class CallLog:
    """Records calls on one clock and passes each finished record, as a dict, to `sink`.

    Thread-safe: a worker may run skills while the GUI thread opens and closes hotkey stretches."""

    def __init__(self, clock: Callable[[], float], sink: Callable[[dict], None] | None = None):
        self.clock = clock
        self.sink = sink
        self.records: list[CallRecord] = []
        self._open: CallRecord | None = None
        self._lock = threading.Lock()

    def _start(self, call: Call, source: str) -> CallRecord:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        if not isinstance(call, Call):
            raise TypeError(f"expected a Call, got {type(call).__name__}")
        return CallRecord(call.code, call.name, tuple(call.to_json()["args"]), self.clock(), None, "running", source)

    def _finish(self, running: CallRecord, status: str, reason: str | None = None,
                t_end: float | None = None) -> CallRecord:
        rec = replace(running, t_end=self.clock() if t_end is None else t_end, status=status, reason=reason)
        with self._lock:
            self.records.append(rec)
        if self.sink is not None:
            self.sink(rec.to_dict())
        return rec

    @contextmanager
    def record(self, call: Call, source: str = "script") -> Iterator[CallRecord]:
        """Time the body as this call; failures and aborts are logged, then re-raised. Yields the
        running record; the finished one is `records[-1]` once the body ended."""
        rec = self._start(call, source)
        try:
            yield rec
        except SkillFailed as e:
            self._finish(rec, "failed", str(e) or "SkillFailed")
            raise
        except (CallAborted, KeyboardInterrupt) as e:
            self._finish(rec, "aborted", str(e) or type(e).__name__)
            raise
        except Exception as e:
            self._finish(rec, "failed", f"{type(e).__name__}: {e}")
            raise
        except BaseException as e:  # SystemExit and the like also stop the call before it finished
            self._finish(rec, "aborted", type(e).__name__)
            raise
        self._finish(rec, "ok")

    def instant(self, call: Call, source: str = "script") -> CallRecord:
        """A zero-duration event (memory, query and terminal calls)."""
        running = self._start(call, source)
        return self._finish(running, "ok", t_end=running.t_start)

    # ---- hotkey-labelled teleop stretches -----------------------------------------------------
    @property
    def open_record(self) -> CallRecord | None:
        """The hotkey stretch now open (status running), if any."""
        return self._open

    def open_call(self, call: Call, source: str = "hotkey") -> CallRecord:
        """Start a stretch labelled `call`; only one may be open at a time."""
        with self._lock:
            if self._open is not None:
                raise RuntimeError(f"a call is already open ({self._open.code}); close it before opening {call.code}")
            self._open = self._start(call, source)
            return self._open

    def close_call(self, status: str = "ok", reason: str | None = None) -> CallRecord:
        """End the open stretch with `status` (ok, failed or aborted), log it and return its record."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}, got {status!r}")
        with self._lock:
            if self._open is None:
                raise RuntimeError("no call is open")
            running, self._open = self._open, None
        return self._finish(running, status, reason)
