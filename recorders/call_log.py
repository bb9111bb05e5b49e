"""Logged calls of the robot API: what was called, when, by whom, and how it ended.

Every call (ok, failed with its reason, or aborted) becomes one `CallRecord` on the workcell's
clock, handed to a sink (the episode writer) as soon as it ends. Hotkey-labelled teleop stretches
are open calls closed later by the operator.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

from recorders.robot_api_spec import Call

STATUSES = ("ok", "failed", "aborted", "running")
SOURCES = ("script", "gui", "hotkey", "planner")


class SkillFailed(Exception):
    """A call could not be done; the message is the reason shown to the user."""


class CallAborted(Exception):
    """A call was stopped before it finished (operator, e-stop, time limit)."""


@dataclass
class CallRecord:
    code: str
    name: str
    args: list
    t_start: float
    t_end: float | None
    status: str
    source: str
    reason: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "CallRecord":
        return CallRecord(d["code"], d["name"], list(d.get("args", [])), float(d["t_start"]),
                          None if d.get("t_end") is None else float(d["t_end"]), d["status"], d["source"],
                          d.get("reason"))


class CallLog:
    """Records calls on one clock and passes each finished record to `sink`."""

    def __init__(self, clock: Callable[[], float], sink: Callable[[dict], None] | None = None):
        self.clock = clock
        self.sink = sink
        self.records: list[CallRecord] = []
        self._open: CallRecord | None = None

    def _start(self, call: Call, source: str) -> CallRecord:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        return CallRecord(call.code, call.name, call.to_json()["args"], self.clock(), None, "running", source)

    def _finish(self, rec: CallRecord, status: str, reason: str | None = None) -> None:
        rec.t_end, rec.status, rec.reason = self.clock(), status, reason
        self.records.append(rec)
        if self.sink is not None:
            self.sink(rec.to_dict())

    @contextmanager
    def record(self, call: Call, source: str = "script") -> Iterator[CallRecord]:
        """Time the body as this call; failures and aborts are logged, then re-raised."""
        rec = self._start(call, source)
        try:
            yield rec
        except SkillFailed as e:
            self._finish(rec, "failed", str(e))
            raise
        except (CallAborted, KeyboardInterrupt) as e:
            self._finish(rec, "aborted", str(e) or type(e).__name__)
            raise
        except Exception as e:
            self._finish(rec, "failed", f"{type(e).__name__}: {e}")
            raise
        self._finish(rec, "ok")

    def instant(self, call: Call, source: str = "script") -> CallRecord:
        """A zero-duration event (memory, query and terminal calls)."""
        rec = self._start(call, source)
        rec.t_end, rec.status = rec.t_start, "ok"
        self.records.append(rec)
        if self.sink is not None:
            self.sink(rec.to_dict())
        return rec

    # ---- hotkey-labelled teleop stretches -----------------------------------------------------
    @property
    def open_call(self) -> CallRecord | None:
        return self._open

    def open(self, call: Call, source: str = "hotkey") -> CallRecord:
        if self._open is not None:
            raise RuntimeError(f"a call is already open ({self._open.code}); close it first")
        self._open = self._start(call, source)
        return self._open

    def close(self, status: str = "ok", reason: str | None = None) -> CallRecord:
        if self._open is None:
            raise RuntimeError("no call is open")
        if status not in ("ok", "failed", "aborted"):
            raise ValueError(f"status must be ok, failed or aborted, got {status!r}")
        rec, self._open = self._open, None
        self._finish(rec, status, reason)
        return rec
