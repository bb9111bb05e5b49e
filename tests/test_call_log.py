"""Logged calls: timing, status, reasons and sources."""
from __future__ import annotations

import pytest

from recorders.call_log import CallAborted, CallLog, CallRecord, SkillFailed
from recorders.robot_api_spec import Call


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_ok_failed_and_aborted_calls_are_all_logged_and_sunk():
    clock, sunk = Clock(), []
    log = CallLog(clock, sink=sunk.append)
    with log.record(Call("pick", ("red cube",)), "gui"):
        clock.t = 2.5
    with pytest.raises(SkillFailed):
        with log.record(Call("place", ("red cube", "blue zone")), "planner"):
            clock.t = 3.0
            raise SkillFailed("not holding the red cube")
    with pytest.raises(CallAborted):
        with log.record(Call("push", ("red cube", "left", 0.1))):
            clock.t = 4.0
            raise CallAborted("e-stop")
    statuses = [(r.code, r.status, r.source, r.t_start, r.t_end, r.reason) for r in log.records]
    assert statuses == [
        ('pick("red cube")', "ok", "gui", 0.0, 2.5, None),
        ('place("red cube", "blue zone")', "failed", "planner", 2.5, 3.0, "not holding the red cube"),
        ('push("red cube", "left", 0.1)', "aborted", "script", 3.0, 4.0, "e-stop"),
    ]
    assert [CallRecord.from_dict(d) for d in sunk] == log.records


def test_unexpected_errors_are_failed_with_their_type():
    log = CallLog(Clock())
    with pytest.raises(ZeroDivisionError):
        with log.record(Call("home", ())):
            1 / 0
    assert log.records[0].status == "failed" and log.records[0].reason.startswith("ZeroDivisionError")


def test_instant_events_and_hotkey_stretches():
    clock = Clock()
    log = CallLog(clock)
    rec = log.instant(Call("remember", ("k", "red cube")))
    assert rec.t_start == rec.t_end == 0.0
    log.open(Call("pick", ("red cube",)))
    with pytest.raises(RuntimeError, match="already open"):
        log.open(Call("pick", ("blue cube",)))
    clock.t = 1.5
    closed = log.close()
    assert (closed.source, closed.t_end, closed.status) == ("hotkey", 1.5, "ok")
    with pytest.raises(RuntimeError, match="no call is open"):
        log.close()
    with pytest.raises(ValueError, match="source must be one of"):
        log.instant(Call("done", ()), source="robot")
