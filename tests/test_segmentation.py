"""Auto-segmentation: motion calls become segments that always tile the control timeline."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorders.call_log import CallRecord
from recorders.robot_api_spec import API
from recorders.segmentation import IDLE, Segment, check_tiling, events, resegment, segment_calls


def rec(name, code, t0, t1, status="ok", source="script"):
    return CallRecord(code, name, [], t0, t1, status, source)


TIMES = np.arange(50) * 0.1  # 10 Hz, 5 s


def spans(segs):
    return [(s.start, s.end, s.code) for s in segs]


def test_calls_become_segments_and_gaps_idle():
    calls = [rec("remember", 'remember("k", "a")', 0.0, 0.0), rec("pick", 'pick("a")', 0.5, 2.0),
             rec("place", 'place("a", "b")', 2.0, 3.55, "failed"), rec("done", "done()", 4.0, 4.0)]
    segs = segment_calls(calls, TIMES)
    assert spans(segs) == [(0, 5, IDLE), (5, 20, 'pick("a")'), (20, 36, 'place("a", "b")'), (36, 50, IDLE)]
    assert all(s.source == "auto" for s in segs)
    check_tiling(segs, 50)
    assert [(i, r.name) for i, r in events(calls, TIMES)] == [(0, "remember"), (40, "done")]


def test_aborted_hotkey_and_gui_motion_calls_are_segments_too():
    calls = [rec("push", 'push("a", "left", 0.1)', 1.0, 2.0, "aborted", "hotkey"),
             rec("home", "home()", 3.0, 4.0, "ok", "gui")]
    assert spans(segment_calls(calls, TIMES)) == [
        (0, 10, IDLE), (10, 20, 'push("a", "left", 0.1)'), (20, 30, IDLE), (30, 40, "home()"), (40, 50, IDLE)]


def test_memory_query_terminal_and_unknown_calls_never_become_segments():
    calls = [rec("remember", 'remember("k", "a")', 1.0, 2.0), rec("recall", 'recall("k")', 1.0, 2.0),
             rec("free_space", 'free_space("a")', 1.0, 2.0), rec("done", "done()", 1.0, 2.0),
             rec("fly", "fly()", 1.0, 2.0)]
    assert segment_calls(calls, TIMES) == [Segment(0, 50, IDLE)]


def test_overlaps_go_to_the_later_starting_call_whatever_the_log_order():
    teleop = rec("pick", 'pick("a")', 0.0, 3.0, source="hotkey")  # logged last: it closed last
    skill = rec("home", "home()", 1.0, 2.0, source="gui")
    segs = segment_calls([skill, teleop], TIMES)
    assert spans(segs) == [(0, 10, 'pick("a")'), (10, 20, "home()"), (20, 30, 'pick("a")'), (30, 50, IDLE)]


def test_back_to_back_calls_of_the_same_code_stay_two_segments():
    calls = [rec("pick", 'pick("a")', 0.0, 1.0), rec("pick", 'pick("a")', 1.0, 2.0)]
    assert spans(segment_calls(calls, TIMES))[:2] == [(0, 10, 'pick("a")'), (10, 20, 'pick("a")')]


def test_a_call_between_two_frames_leaves_no_empty_segment_and_a_running_one_reaches_the_end():
    calls = [rec("home", "home()", 1.01, 1.05), rec("pick", 'pick("a")', 4.0, None, "running")]
    assert spans(segment_calls(calls, TIMES)) == [(0, 40, IDLE), (40, 50, 'pick("a")')]


def test_empty_timeline_and_bad_frame_times():
    assert segment_calls([], []) == []
    assert segment_calls([rec("pick", 'pick("a")', 0.0, 1.0)], np.zeros(0)) == []
    assert events([rec("done", "done()", 0.0, 0.0)], []) == []
    with pytest.raises(ValueError, match="1-D"):
        segment_calls([], np.zeros((5, 2)))


def test_segments_round_trip_with_the_trim_flag_only_where_set():
    plain, trimmed = Segment(0, 5, IDLE, "edited"), Segment(5, 9, IDLE, "edited", trimmed=True)
    assert plain.to_dict() == {"start": 0, "end": 5, "code": IDLE, "source": "edited"}
    assert trimmed.to_dict()["trimmed"] is True
    assert [Segment.from_dict(s.to_dict()) for s in (plain, trimmed)] == [plain, trimmed]
    assert Segment.from_dict({"start": 1, "end": 2, "code": "home()"}) == Segment(1, 2, "home()", "auto")


def test_events_are_sorted_and_clamped_to_the_timeline():
    calls = [rec("done", "done()", 9.0, 9.0), rec("recall", 'recall("k")', 0.25, 0.25),
             rec("remember", 'remember("k", "a")', -1.0, -1.0), rec("pick", 'pick("a")', 0.0, 1.0)]
    assert [(i, r.name) for i, r in events(calls, TIMES)] == [(0, "remember"), (3, "recall"), (49, "done")]


def test_segment_dict_round_trip():
    s = Segment(3, 9, 'pick("a")', "edited")
    assert Segment.from_dict(s.to_dict()) == s
    assert Segment.from_dict({"start": 0, "end": 2, "code": IDLE}) == Segment(0, 2, IDLE, "auto")


def test_resegment_keeps_edited_segments_and_replaces_auto_ones():
    calls = [rec("pick", 'pick("a")', 0.5, 2.0), rec("place", 'place("a", "b")', 2.0, 3.5)]
    current = [Segment(0, 10, 'pick("a")', "edited"), Segment(10, 45, IDLE, "auto"),
               Segment(45, 50, "home()", "edited")]
    segs = resegment(calls, TIMES, current)
    check_tiling(segs, 50)
    assert [(s.start, s.end, s.code, s.source) for s in segs] == [
        (0, 10, 'pick("a")', "edited"), (10, 20, 'pick("a")', "auto"), (20, 35, 'place("a", "b")', "auto"),
        (35, 45, IDLE, "auto"), (45, 50, "home()", "edited")]


def test_resegment_keeps_adjacent_edits_apart_and_clips_them_to_the_timeline():
    current = [Segment(0, 5, "home()", "edited"), Segment(5, 10, "home()", "edited"),
               Segment(40, 70, IDLE, "edited"), Segment(80, 90, "home()", "edited")]
    segs = resegment([], TIMES, current)
    assert [(s.start, s.end, s.code, s.source) for s in segs] == [
        (0, 5, "home()", "edited"), (5, 10, "home()", "edited"), (10, 40, IDLE, "auto"), (40, 50, IDLE, "edited")]
    assert resegment([], [], current) == []


def test_check_tiling_names_the_problem():
    check_tiling([], 0)
    for segs, n, message in [([Segment(0, 1, IDLE)], 0, "empty timeline"), ([], 3, "cover frames 0..3"),
                             ([Segment(0, 2, IDLE), Segment(3, 5, IDLE)], 5, "gap or overlap at frame 2"),
                             ([Segment(0, 2, IDLE), Segment(2, 2, IDLE), Segment(2, 5, IDLE)], 5, "is empty"),
                             ([Segment(0, 5, IDLE, "guessed")], 5, "provenance"),
                             ([Segment(0, 5, " ")], 5, "no code")]:
        with pytest.raises(ValueError, match=message):
            check_tiling(segs, n)


# ---- properties ----------------------------------------------------------------------------------
NAMES = list(API) + ["fly"]
call_lists = st.lists(st.tuples(st.sampled_from(NAMES), st.floats(-1, 6), st.one_of(st.floats(0, 3), st.none()),
                                st.sampled_from(["ok", "failed", "aborted"]), st.sampled_from(["script", "hotkey"])),
                      max_size=12)


def make_calls(raw):
    return [rec(name, f"{name}({k})", t0, None if d is None else t0 + d, "running" if d is None else status, source)
            for k, (name, t0, d, status, source) in enumerate(raw)]


def expected_code(calls, t):
    """Brute force: the latest-starting motion call containing time t (log order breaks ties)."""
    inside = [(c.t_start, k, c.code) for k, c in enumerate(calls) if API.get(c.name) and API[c.name].kind == "motion"
              and c.t_start <= t < (np.inf if c.t_end is None else c.t_end)]
    return max(inside)[2] if inside else IDLE


@settings(max_examples=300)
@given(call_lists, st.integers(0, 80))
def test_segments_always_tile_and_label_every_frame_with_its_call(raw, n):
    times = np.arange(n) * 0.1
    calls = make_calls(raw)
    segs = segment_calls(calls, times)
    check_tiling(segs, n)
    for a, b in zip(segs, segs[1:]):
        assert not (a.code == IDLE and b.code == IDLE), "adjacent idle segments merge"
    for s in segs:
        for i in range(s.start, s.end):
            assert s.code == expected_code(calls, times[i])


@settings(max_examples=300)
@given(call_lists, st.integers(0, 80), st.lists(st.tuples(st.integers(-5, 90), st.integers(1, 30)), max_size=5))
def test_resegment_always_tiles_and_keeps_every_edited_frame(raw, n, edits):
    times = np.arange(n) * 0.1
    calls = make_calls(raw)
    edited = [Segment(a, a + w, f"home()#{k}", "edited") for k, (a, w) in enumerate(edits)]
    segs = resegment(calls, times, segment_calls(calls[: len(calls) // 2], times) + edited)
    check_tiling(segs, n)
    label = [None] * n
    for s in segs:
        label[s.start:s.end] = [(s.code, s.source)] * (s.end - s.start)
    for i in range(n):
        owners = [e for e in edited if e.start <= i < e.end]
        if owners:
            assert label[i] == (owners[-1].code, "edited")
        else:
            assert label[i] == (expected_code(calls, times[i]), "auto")
