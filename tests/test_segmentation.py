"""Auto-segmentation always tiles the control timeline."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from recorders.call_log import CallRecord
from recorders.segmentation import IDLE, Segment, check_tiling, events, resegment, segment_calls


def rec(name, code, t0, t1, status="ok"):
    return CallRecord(code, name, [], t0, t1, status, "script")


TIMES = np.arange(50) * 0.1  # 10 Hz, 5 s


def test_calls_become_segments_and_gaps_idle():
    calls = [rec("remember", 'remember("k", "a")', 0.0, 0.0), rec("pick", 'pick("a")', 0.5, 2.0),
             rec("place", 'place("a", "b")', 2.0, 3.55, "failed"), rec("done", "done()", 4.0, 4.0)]
    segs = segment_calls(calls, TIMES)
    assert [(s.start, s.end, s.code) for s in segs] == [
        (0, 5, IDLE), (5, 20, 'pick("a")'), (20, 36, 'place("a", "b")'), (36, 50, IDLE)]
    check_tiling(segs, 50)
    assert [(i, r.name) for i, r in events(calls, TIMES)] == [(0, "remember"), (40, "done")]


def test_empty_timeline_and_dict_calls():
    assert segment_calls([], []) == []
    d = rec("pick", 'pick("a")', 0.0, 5.0).to_dict()
    assert segment_calls([d], TIMES) == [Segment(0, 50, 'pick("a")')]


def test_resegment_keeps_edited_segments():
    calls = [rec("pick", 'pick("a")', 0.5, 2.0), rec("place", 'place("a", "b")', 2.0, 3.5)]
    edited = [Segment(0, 10, 'pick("a")', "edited"), Segment(10, 50, IDLE, "auto")]
    segs = resegment(calls, TIMES, edited)
    check_tiling(segs, 50)
    assert segs[0] == Segment(0, 10, 'pick("a")', "edited")
    assert Segment(20, 35, 'place("a", "b")', "auto") in segs


call_lists = st.lists(st.tuples(st.sampled_from(["pick", "place", "push", "home", "remember", "done"]),
                                st.floats(-1, 6), st.floats(0, 3)), max_size=12)


@given(call_lists, st.integers(0, 80))
def test_segments_always_tile(raw, n):
    times = np.arange(n) * 0.1
    calls = [rec(name, f"{name}()", t0, t0 + d) for name, t0, d in raw]
    segs = segment_calls(calls, times)
    check_tiling(segs, n)
    edited = [Segment(s.start, s.end, s.code, "edited" if i % 2 else "auto") for i, s in enumerate(segs)]
    check_tiling(resegment(calls[: len(calls) // 2], times, edited), n)
