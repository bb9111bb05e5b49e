"""The annotation model (app/annotation.py) and dataset folder (app/dataset.py), without widgets."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.annotation import SNAP_FRAMES, AnnotationError, AnnotationModel, InvalidCodeError
from app.dataset import Dataset, DatasetError
from recorders.episode_file import open_episode
from recorders.segmentation import IDLE, Segment, check_tiling


@pytest.fixture
def episode(recorded, tmp_path) -> Path:
    path = tmp_path / recorded[0].name
    shutil.copy(recorded[0], path)
    return path


@pytest.fixture
def model(episode) -> AnnotationModel:
    return AnnotationModel.load(episode)


def tiles(m: AnnotationModel) -> None:
    check_tiling(m.segments, m.frames)


def test_loads_auto_segments_and_gripper_events(model):
    assert [s.code for s in model.segments] == ['pick("red cube")', 'place("red cube", "green cube")']
    assert all(s.source == "auto" for s in model.segments)
    assert len(model.gripper_events) == 2  # close on pick, open on place
    assert "red cube" in model.objects and "blue zone" in model.objects
    assert not model.is_dirty()


def test_boundary_snaps_to_gripper_event_within_three_frames(model):
    ev = model.gripper_events[1]
    assert model.move_boundary(0, ev - SNAP_FRAMES) == ev
    assert model.segments[0].end == ev and model.segments[1].start == ev
    assert all(s.source == "edited" for s in model.segments)
    far = ev - SNAP_FRAMES - 5
    assert model.move_boundary(0, far) == far  # too far from any event: stays where dropped
    assert model.undo_stack.count() == 2
    tiles(model)


def test_boundary_must_leave_both_segments_a_frame(model):
    with pytest.raises(AnnotationError, match="at least one frame"):
        model.move_boundary(0, 0, snap=False)
    assert model.undo_stack.count() == 0


def test_set_code_validates_against_api_and_scene(model):
    model.set_code(0, "pick( 'green cube' )")
    assert model.segments[0].code == 'pick("green cube")' and model.segments[0].source == "edited"
    before = model.segments
    with pytest.raises(InvalidCodeError, match="unknown object 'yellow cube'"):
        model.set_code(1, 'pick("yellow cube")')
    with pytest.raises(InvalidCodeError, match="not a segment"):
        model.set_code(1, 'remember("a", "red cube")')
    with pytest.raises(InvalidCodeError, match="not a valid call"):
        model.set_code(1, "pick(")
    assert model.segments == before and model.undo_stack.count() == 1
    model.set_code(1, "idle")
    model.set_code(1, 'place("red cube", "blue zone")')
    assert model.segments[1].code == 'place("red cube", "blue zone")'


def test_split_merge_insert_delete(model):
    n = model.frames
    model.split(20)
    assert [(s.start, s.end) for s in model.segments][:2] == [(0, 20), (20, 50)]
    with pytest.raises(AnnotationError, match="already a segment boundary"):
        model.split(20)
    model.merge(0)
    assert (model.segments[0].start, model.segments[0].end) == (0, 50)
    model.insert(10, 30, "home()")
    assert [(s.start, s.end, s.code) for s in model.segments][:3] == [
        (0, 10, 'pick("red cube")'), (10, 30, "home()"), (30, 50, 'pick("red cube")')]
    tiles(model)
    model.insert(40, 60, "idle")  # across a boundary: both neighbours are cut back
    assert [(s.start, s.end) for s in model.segments] == [(0, 10), (10, 30), (30, 40), (40, 60), (60, n)]
    model.delete(1)  # home() becomes idle
    assert model.segments[1].code == IDLE
    model.delete(2)  # pick becomes idle and joins idle on both sides
    assert [(s.start, s.end, s.code) for s in model.segments] == [
        (0, 10, 'pick("red cube")'), (10, 60, IDLE), (60, n, 'place("red cube", "green cube")')]
    tiles(model)
    with pytest.raises(InvalidCodeError):
        model.insert(5, 8, "jump()")


def test_trim_marks_outside_frames_and_blocks_edits_there(model, episode):
    n = model.frames
    model.trim_start(5)
    model.trim_end(n - 5)
    assert model.trim == (5, n - 5)
    assert model.segments[0] == model.segments[0].__class__(0, 5, IDLE, "edited")
    assert model.segments[-1].start == n - 5 and model.segments[-1].code == IDLE
    with pytest.raises(AnnotationError, match="trimmed"):
        model.set_code(0, 'pick("red cube")')
    with pytest.raises(AnnotationError, match="inside 5"):
        model.insert(0, 10, "home()")
    model.move_boundary(0, 8, snap=False)  # the trimmed head's boundary is the trim start
    assert model.trim == (8, n - 5)
    model.save()
    labels = open_episode(episode).labels
    assert labels[0].trimmed and labels[-1].trimmed and not labels[1].trimmed
    assert AnnotationModel.load(episode).trim == (8, n - 5)
    model.trim_start(0)  # untrim: the frames come back as idle
    assert model.trim[0] == 0 and model.segments[0] == model.segments[0].__class__(0, 8, IDLE, "edited")


def test_undo_redo_one_step_per_operation(model):
    original = model.segments
    changes = []
    model.labels_changed.connect(lambda: changes.append(1))
    model.split(30)
    model.set_code(1, "home()")
    edited = model.segments
    assert model.undo_stack.count() == 2 and len(changes) == 2
    model.undo_stack.undo()
    model.undo_stack.undo()
    assert model.segments == original and not model.is_dirty()
    model.undo_stack.redo()
    model.undo_stack.redo()
    assert model.segments == edited and model.is_dirty()


def test_dirty_flag_follows_save_and_undo(model):
    flags = []
    model.dirty_changed.connect(flags.append)
    model.split(30)
    model.save()
    model.undo_stack.undo()
    assert flags == [True, False, True]


def test_rerun_auto_segmentation_keeps_or_discards_edits(model):
    model.insert(10, 20, "home()")
    model.resegment(keep_edits=True)
    assert any(s.code == "home()" and (s.start, s.end) == (10, 20) for s in model.segments)
    model.resegment(keep_edits=False)
    assert [s.source for s in model.segments] == ["auto", "auto"] and model.trim == (0, model.frames)
    model.undo_stack.undo()
    assert any(s.code == "home()" for s in model.segments)


def test_save_then_reopen_shows_edits_with_provenance(model, episode):
    model.set_code(1, 'place("red cube", "purple zone")')
    model.save()
    assert not model.is_dirty()
    ep = open_episode(episode)
    assert ep.labels_edited
    assert ep.labels[1] == Segment(50, ep.frames, 'place("red cube", "purple zone")', "edited")
    assert ep.labels[0].source == "auto"
    ep.close()
    again = AnnotationModel.load(episode)
    assert again.segments == model.segments


def test_dataset_lists_filters_and_reports_unreadable(recorded, tmp_path):
    for p in recorded:
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "broken.h5").write_bytes(b"not an episode")
    ds = Dataset(tmp_path)
    assert [e.name for e in ds.entries] == ["stack_0000.h5", "stack_0001.h5"]
    e = ds.entries[0]
    assert e.task == "stack" and e.segments == 2 and e.success is True and not e.edited and e.duration_s > 1
    assert [p.name for p, _ in ds.unreadable] == ["broken.h5"]
    assert "not an HDF5" in ds.unreadable[0][1]
    assert ds.tasks() == ["stack"]
    assert [x.name for x in ds.filtered("0001")] == ["stack_0001.h5"]
    assert ds.filtered(task="tower") == []


def test_trash_and_restore(recorded, tmp_path):
    for p in recorded:
        shutil.copy(p, tmp_path / p.name)
    ds = Dataset(tmp_path)
    moved = ds.trash(tmp_path / "stack_0000.h5")
    assert moved == tmp_path / ".trash" / "stack_0000.h5" and moved.exists()
    assert [e.name for e in ds.entries] == ["stack_0001.h5"] and ds.trashed() == [moved]
    back = ds.restore(moved)
    assert back.exists() and ds.trashed() == [] and len(ds.entries) == 2
    shutil.copy(back, moved)
    with pytest.raises(DatasetError, match="already exists"):
        ds.restore(moved)


def test_resegment_is_refused_when_the_calls_are_missing(episode):
    import h5py

    with h5py.File(episode, "r+") as f:
        del f["calls"]
    model = AnnotationModel.load(episode)
    before = model.segments
    with pytest.raises(AnnotationError, match="no call log"):
        model.resegment(keep_edits=False)
    assert model.segments == before and not model.is_dirty()  # the labels are untouched


# ---- logged calls shown beside the labels: status and source per segment, instantaneous events ----
HZ = 10.0


def _rec(code: str, t0: float, t1: float, status: str = "ok", source: str = "script", reason: str | None = None):
    from recorders.call_log import CallRecord
    from recorders.robot_api_spec import Call

    call = Call.from_code(code, ("red cube", "blue cube", "blue zone"))
    return CallRecord(call.code, call.name, tuple(call.to_json()["args"]), t0, t1, status, source, reason)


@pytest.fixture
def logged() -> AnnotationModel:
    """40 frames at 10 Hz: remember, pick (ok, script), recall, a place that failed (gui), idle, done."""
    import numpy as np

    from app.annotation import EpisodeTimeline
    from recorders.segmentation import segment_calls

    calls = (_rec('remember("a", "red cube")', 0.0, 0.0), _rec('pick("red cube")', 0.0, 1.5),
             _rec('recall("a")', 1.5, 1.5),
             _rec('place("red cube", recall("a"))', 1.5, 2.5, "failed", "gui", "slipped"),
             _rec("done()", 3.95, 3.95))
    times = np.arange(40) / HZ
    timeline = EpisodeTimeline("unused.h5", 40, times, calls, ("red cube", "blue cube", "blue zone"), ())
    return AnnotationModel(timeline, segment_calls(calls, times))


def test_events_are_the_instantaneous_calls_at_their_frames(logged):
    assert [(e.frame, e.call.code, e.kind) for e in logged.events] == [
        (0, 'remember("a", "red cube")', "memory"), (15, 'recall("a")', "memory"), (39, "done()", "terminal")]
    remember = logged.events[0]
    assert remember.label == 'remember("a")' and logged.events[2].label == "done()"
    assert remember.description == 'remember("a", "red cube")\nframe 0, 0.00 s · ok · by script'
    assert all(s.code.split("(")[0] in ("pick", "place", IDLE) for s in logged.segments)  # events are no segments


def test_call_of_gives_each_segment_the_call_it_came_from(logged):
    assert [s.code for s in logged.segments] == ['pick("red cube")', 'place("red cube", recall("a"))', IDLE]
    pick, place = logged.call_of(0), logged.call_of(1)
    assert (pick.code, pick.status, pick.source) == ('pick("red cube")', "ok", "script")
    assert (place.status, place.source, place.reason) == ("failed", "gui", "slipped")
    assert logged.call_of(2) is None  # idle
    logged.split(5)  # both halves still overlap the pick
    assert logged.call_of(0) is pick and logged.call_of(1) is pick
    logged.move_boundary(1, 20, snap=False)  # the pick's code now reaches into the place's frames: still the pick
    assert logged.call_of(1) is pick and logged.call_of(2) is place
    logged.set_code(2, "home()")  # no home() was called: a hand-made segment
    assert logged.call_of(2) is None
    logged.undo_stack.undo()
    assert logged.call_of(2) is place
    logged.trim_start(3)
    assert logged.is_trimmed(0) and logged.call_of(0) is None


def test_call_of_picks_the_call_with_the_same_code_that_overlaps_most():
    import numpy as np

    from app.annotation import EpisodeTimeline
    from recorders.segmentation import segment_calls

    first, again = _rec('pick("red cube")', 0.0, 1.0), _rec('pick("red cube")', 2.0, 3.0, "aborted", "hotkey", "e-stop")
    calls = (first, _rec('place("red cube", "blue zone")', 1.0, 2.0), again)
    times = np.arange(30) / HZ
    model = AnnotationModel(EpisodeTimeline("unused.h5", 30, times, calls, ("red cube", "blue zone"), ()),
                            segment_calls(calls, times))
    assert [(s.start, s.end) for s in model.segments] == [(0, 10), (10, 20), (20, 30)]
    assert model.call_of(0) is first and model.call_of(2) is again
    model.merge(1)  # place + the second pick -> one place segment: still the place
    assert model.call_of(1).code == 'place("red cube", "blue zone")'


def test_describe_call_and_short_code():
    from app.annotation import describe_call, short_code

    failed = _rec('place("red cube", recall("a"))', 11.5, 12.0, "failed", "planner", "nothing stored under 'a'")
    assert describe_call(failed, t0=10.0) == ('place("red cube", recall("a"))\n1.50 – 2.00 s · '
                                              "failed: nothing stored under 'a' · by planner")
    assert short_code(_rec('remember("blue start", "blue cube")', 0, 0)) == 'remember("blue start")'
    assert short_code(_rec("done()", 0, 0)) == "done()"
    running = _rec("home()", 1.0, None, "running", "hotkey")
    assert describe_call(running).endswith("1.00 – running · running · by hotkey")
