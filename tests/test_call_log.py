"""Logged calls: timing, status, reasons, sources, hotkey stretches and the record format."""
from __future__ import annotations

import json
import threading

import pytest

from recorders.call_log import CallAborted, CallLog, CallRecord, CallRecordError, SkillFailed
from recorders.robot_api_spec import Call

PICK = Call("pick", ("red cube",))


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_ok_failed_and_aborted_calls_are_all_logged_and_sunk():
    clock, sunk = Clock(), []
    log = CallLog(clock, sink=sunk.append)
    with log.record(PICK, "gui") as rec:
        assert (rec.status, rec.t_start, rec.t_end) == ("running", 0.0, None)
        assert log.records == []  # only finished records are kept and sunk
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
    assert all(json.loads(json.dumps(d)) == d for d in sunk)  # the sink gets plain JSON-able dicts


def test_unexpected_errors_are_failed_with_their_type_and_re_raised():
    log = CallLog(Clock())
    with pytest.raises(ZeroDivisionError):
        with log.record(Call("home")):
            1 / 0
    assert log.records[0].status == "failed"
    assert log.records[0].reason == "ZeroDivisionError: division by zero"


@pytest.mark.parametrize("error, reason", [(KeyboardInterrupt(), "KeyboardInterrupt"),
                                           (CallAborted(), "CallAborted"), (SystemExit(1), "SystemExit")])
def test_interrupts_are_aborted(error, reason):
    log = CallLog(Clock())
    with pytest.raises(type(error)):
        with log.record(PICK):
            raise error
    assert (log.records[0].status, log.records[0].reason) == ("aborted", reason)


def test_instant_events_take_no_time():
    clock, sunk = Clock(), []
    log = CallLog(clock, sink=sunk.append)
    clock.t = 7.25
    rec = log.instant(Call("remember", ("k", "red cube")), "gui")
    assert (rec.t_start, rec.t_end, rec.status, rec.source, rec.duration) == (7.25, 7.25, "ok", "gui", 0.0)
    assert sunk == [rec.to_dict()]
    with pytest.raises(ValueError, match="source must be one of script, gui, hotkey, planner"):
        log.instant(Call("done"), source="robot")
    with pytest.raises(TypeError, match="expected a Call"):
        log.instant('pick("red cube")')  # type: ignore[arg-type]


def test_hotkey_stretches_open_and_close_one_at_a_time():
    clock, sunk = Clock(), []
    log = CallLog(clock, sink=sunk.append)
    assert log.open_record is None
    opened = log.open_call(PICK)
    assert (opened.status, opened.source, log.open_record) == ("running", "hotkey", opened)
    with pytest.raises(RuntimeError, match=r'already open \(pick\("red cube"\)\); close it before opening'):
        log.open_call(Call("pick", ("blue cube",)))
    assert sunk == []  # the refused open closed nothing
    clock.t = 1.5
    closed = log.close_call()
    assert (closed.code, closed.source, closed.t_start, closed.t_end, closed.status) == \
        (opened.code, "hotkey", 0.0, 1.5, "ok")
    assert (opened.status, opened.t_end) == ("running", None)  # a record never changes once made
    assert log.open_record is None and sunk == [closed.to_dict()]
    with pytest.raises(RuntimeError, match="no call is open"):
        log.close_call()
    log.open_call(Call("place", ("red cube", "blue zone")))
    with pytest.raises(ValueError, match="status must be one of ok, failed, aborted"):
        log.close_call("running")
    clock.t = 3.0
    failed = log.close_call("failed", "dropped the cube")
    assert (failed.status, failed.reason, failed.t_start, failed.t_end) == ("failed", "dropped the cube", 1.5, 3.0)
    assert [r.code for r in log.records] == ['pick("red cube")', 'place("red cube", "blue zone")']


def test_record_keeps_the_call_and_round_trips():
    log = CallLog(Clock())
    call = Call("place", ("red cube", Call("recall", ("red cube start",))))
    with log.record(call, "planner"):
        pass
    rec = log.records[0]
    assert rec.args == ("red cube", {"name": "recall", "args": ["red cube start"]})
    assert rec.call == call
    assert CallRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec


@pytest.mark.parametrize("change, message", [
    ({"status": "maybe"}, "call status must be one of"),
    ({"source": "robot"}, "call source must be one of"),
    ({"t_start": "soon"}, "t_start must be a number"),
    ({"t_end": float("nan")}, "t_end must be finite"),
    ({"t_start": 5.0, "t_end": 4.0}, "ends (4.0) before it starts (5.0)"),
    ({"args": "red cube"}, "args must be a list"),
    ({"status": None}, "call status must be one of"),
])
def test_malformed_records_are_refused_with_the_field(change, message):
    d = {"code": 'pick("red cube")', "name": "pick", "args": ["red cube"], "t_start": 1.0, "t_end": 2.0,
         "status": "ok", "source": "script", "reason": None}
    with pytest.raises(CallRecordError) as info:
        CallRecord.from_dict({**d, **change})
    assert message in str(info.value)


def test_records_lacking_fields_are_refused():
    with pytest.raises(CallRecordError, match="lacks t_start, status"):
        CallRecord.from_dict({"code": "home()", "name": "home", "source": "gui"})
    with pytest.raises(CallRecordError, match="must be an object"):
        CallRecord.from_dict(["home()"])  # type: ignore[arg-type]
    old = CallRecord.from_dict({"code": "home()", "name": "home", "t_start": 1, "t_end": None,
                                "status": "running", "source": "gui"})
    assert (old.args, old.t_end, old.reason, old.duration) == ((), None, None, None)


def test_calls_from_several_threads_are_all_kept():
    log = CallLog(Clock())

    def work():
        for _ in range(200):
            log.instant(Call("done"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log.records) == 800


def test_records_are_frozen_and_a_finished_call_is_a_new_record():
    import dataclasses

    log = CallLog(Clock())
    with log.record(PICK) as running:
        pass
    finished = log.records[0]
    assert running.status == "running" and finished.status == "ok" and finished is not running
    with pytest.raises(dataclasses.FrozenInstanceError):
        finished.status = "failed"  # type: ignore[misc]
