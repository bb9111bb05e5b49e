"""The session's e-stop status never misleads (issue 12): `estop_reason` says "latched" the moment the
e-stop is pressed, clears once a reset is done (disconnected or not), and a reset asked for before a
second e-stop leaves that second one latched. No widgets; pacing off; waits on the session's condition."""
from __future__ import annotations

import pytest

from app.record_session import RecordSession

pytestmark = pytest.mark.slow
HANG_S = 120.0  # only a hung worker takes this long


@pytest.fixture
def session(tmp_path):
    s = RecordSession(tmp_path / "data", task="stack", seed=3, realtime=False)
    s.connect_robot()
    assert s.wait_until_live(HANG_S), s.snapshot().message
    yield s
    s.close(HANG_S)
    assert not s._thread.is_alive()


def test_latched_at_once_and_cleared_by_the_reset(session):
    session.estop("test")
    assert session.snapshot().estop_reason == "test"  # no tick needed to say so
    tick = session.snapshot().tick
    assert session.wait_for(lambda snap: snap.tick > tick + 3, HANG_S)
    assert session.snapshot().estop_reason == "test"  # the ticks after it keep it latched
    session.reset_estop()
    assert session.wait_until_idle(HANG_S)
    assert session.snapshot().estop_reason is None
    texts = [e.text for e in session.drain_events()]
    assert texts[-1] == "e-stop reset; the arm accepts commands again", texts


def test_a_reset_asked_before_a_second_estop_leaves_it_latched(session):
    import threading

    session.estop("first")
    worker_free = threading.Event()
    session._submit(lambda: worker_free.wait(HANG_S))  # the worker is busy: the reset waits in the queue
    session.reset_estop()
    session.estop("second")  # pressed after the reset was asked for, before it is done
    worker_free.set()
    assert session.wait_until_idle(HANG_S)
    tick = session.snapshot().tick
    assert session.wait_for(lambda snap: snap.tick > tick + 2, HANG_S)
    assert session.snapshot().estop_reason == "second" and session._cell.arm.estopped
    session.reset_estop()  # a reset asked for now clears it
    assert session.wait_until_idle(HANG_S)
    assert session.snapshot().estop_reason is None


def test_disconnecting_ends_the_latch_with_the_arm(session):
    session.estop("test")
    session.disconnect()
    assert session.wait_for(lambda snap: snap.connection == "disconnected", HANG_S)
    assert session.snapshot().estop_reason is None
    session.estop("nothing connected")  # nothing to stop: logged, never shown as latched
    assert session.snapshot().estop_reason is None
    assert any("no arm connected" in e.text for e in session.drain_events())
