"""The episode file format: fixtures, round trip, typed errors, labels, recovery, dropping."""
from __future__ import annotations

import datetime as dt
import shutil
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from app.bench_recording import bench_recording
from recorders.call_log import CallRecord
from recorders.episode_file import (
    EmptyEpisodeError, EpisodeError, EpisodeExistsError, EpisodeMeta, EpisodeWriteError, NotAnEpisodeError,
    StreamSpec, TruncatedEpisodeError, UnsupportedVersionError, episode_summary, open_episode, write_labels,
)
from recorders.episode_recovery import find_partials, recover_partial
from recorders.episode_meta import ModelRef, Provenance
from recorders.episode_writer import EpisodeWriter
from recorders.segmentation import Segment
from recorders.task_suite import make_instance
from tests.fixtures import make_fixtures as fx

FIXTURES = Path(__file__).parent / "fixtures"
SUMMARY_KEYS = {"task", "instruction", "robot", "frames", "duration_s", "control_hz", "streams", "calls", "segments",
                "success", "format_version", "recovered"}


@pytest.mark.parametrize("name", ["episode_v1.h5", "episode_v1_jsonlines.h5"])
def test_reads_the_version_1_fixtures(name):
    with open_episode(FIXTURES / name) as ep:
        assert ep.meta == fx.META and ep.created == fx.CREATED and ep.scene == fx.SCENE and ep.provenance is None
        assert ep.format_version == 1 and ep.success is True and not ep.recovered and ep.labels_edited
        assert [ep.stream_spec(s.name) for s in fx.STREAMS] == fx.STREAMS
        for s in fx.STREAMS:
            expected = np.stack([fx.sample(s.name, i) for i in range(fx.rows(s.name))])
            assert np.array_equal(ep.stream_data(s.name)[:], expected)
            assert ep.stream_time(s.name) == pytest.approx(np.arange(fx.rows(s.name)) / s.rate_hz)
        assert ep.calls == records(fx.CALLS) and ep.labels == segments(fx.LABELS)
        s = episode_summary(ep)
    assert SUMMARY_KEYS <= set(s)
    assert s["frames"] == 6 and s["duration_s"] == 0.6 and s["success"] is True and s["control_hz"] == 10.0
    assert s["streams"]["wrist_depth"] == {"shape": [16, 16], "count": 6, "rate_hz": 10.0, "kind": "depth",
                                           "encoding": "raw"}
    assert s["streams"]["audio"]["count"] == 16
    assert [c["status"] for c in s["calls"]] == ["ok", "failed"] and s["calls"][1]["reason"] == "slipped"
    assert s["segments"] == fx.LABELS


def test_layout_one_compressed_frame_per_chunk():
    with h5py.File(FIXTURES / "episode_v1.h5", "r") as f:
        rgb, depth = f["streams/front_rgb/data"], f["streams/wrist_depth/data"]
        assert rgb.chunks == (1, 16, 16, 3) and depth.chunks == (1, 16, 16) and depth.dtype == np.uint16
        assert rgb.id.get_create_plist().get_filter(0)[0] == 32001  # Blosc
        assert f["streams/action/data"].chunks == (256, 8) and f["streams/audio/data"].chunks == (4096, 1)
        assert f["streams/action/time"].dtype == np.float64 and rgb.maxshape[0] is None
        assert h5py.check_string_dtype(f["calls"].dtype).encoding == "utf-8" and f["labels"].shape == (3,)


PUSH = make_instance("push", 3)


def meta(**kw) -> EpisodeMeta:
    provenance = Provenance("policy", "franky-sim", (ModelRef("policy", "runs/p", "runs/p/step_100"),
                                                     ModelRef("planner", "runs/q")))
    return EpisodeMeta(**{**dict(task="push", instruction="push the red cube to the left", robot="franky-sim",
                                 control_hz=10.0, seed=3, split="test", clock="monotonic", scene=PUSH.scene,
                                 roles=PUSH.roles, program=PUSH.program_code, provenance=provenance), **kw})


def records(calls: list[dict]) -> tuple[CallRecord, ...]:
    return tuple(CallRecord.from_dict(c) for c in calls)


def segments(labels: list[dict]) -> tuple[Segment, ...]:
    return tuple(Segment.from_dict(s) for s in labels)


SPECS = [StreamSpec("action", "array", (8,), "float32", 10.0), StreamSpec("cam", "rgb", (8, 8, 3), "uint8", 10.0)]


def writer(tmp_path, name="ep.h5", streams=SPECS, **kw) -> EpisodeWriter:
    return EpisodeWriter(tmp_path / name, meta(), streams, **{"drop_when_full": False, **kw})


def fill(w: EpisodeWriter, n: int) -> None:
    for i in range(n):
        w.append("action", i / 10, np.full(8, i, np.float32))
        w.append("cam", i / 10, np.full((8, 8, 3), i, np.uint8))


def test_round_trip_of_every_field(tmp_path):
    specs = [StreamSpec("action", "array", (8,), "float32", 100.0),
             StreamSpec("joint_positions", "array", (7,), "float64", 100.0),
             StreamSpec("object_poses", "array", (3, 7), "float32", 100.0, {"names": ["a", "b", "c"]}),
             StreamSpec("front_rgb", "rgb", (12, 16, 3), "uint8", 30.0, {"fx": 1.5, "fy": 1.5, "cx": 8, "cy": 6}),
             StreamSpec("front_depth", "depth", (12, 16), "uint16", 30.0, {"depth_scale": 0.001}),
             StreamSpec("audio", "audio", (2,), "int16", 16000.0)]
    rng = np.random.default_rng(0)
    data = {s.name: rng.integers(0, 200, (40, *s.shape)).astype(s.dtype) for s in specs}
    times = {s.name: np.sort(rng.random(40)) for s in specs}
    calls = [{"code": "home()", "name": "home", "args": [], "t_start": 0.0, "t_end": 0.2, "status": "ok",
              "source": "hotkey", "reason": None},
             {"code": 'pick("a")', "name": "pick", "args": ["a"], "t_start": 0.2, "t_end": 0.4, "status": "aborted",
              "source": "gui", "reason": "operator stop", "extra": {"nested": [1, 2]}}]
    labels = [{"start": 0, "end": 15, "code": "home()", "source": "auto"},
              {"start": 15, "end": 40, "code": 'pick("a")', "source": "auto"}]
    w = EpisodeWriter(tmp_path / "ep.h5", meta(), specs, drop_when_full=False)
    for i in range(40):
        for s in specs:
            assert w.append(s.name, times[s.name][i], data[s.name][i])
    for c in calls:
        w.log_call(c)
    final = w.finish(False, labels)
    assert final == tmp_path / "ep.h5" and not find_partials(tmp_path)
    with open_episode(final) as ep:
        assert ep.meta == meta() and ep.success is False and not ep.recovered and not ep.labels_edited
        assert dt.datetime.fromisoformat(ep.created).tzinfo is not None
        assert ep.stream_names == sorted(s.name for s in specs)
        for s in specs:
            assert ep.stream_spec(s.name) == s
            assert np.array_equal(ep.stream_data(s.name)[:], data[s.name])
            assert np.array_equal(ep.stream_time(s.name), times[s.name])
        assert ep.calls == records(calls) and ep.labels == segments(labels) and ep.frames == 40
        assert ep.provenance.models[0].checkpoint == "runs/p/step_100" and ep.scene["roles"] == PUSH.roles
        summary = episode_summary(ep)
    assert summary["robot"] == "franky-sim" and summary["success"] is False and summary["frames"] == 40
    assert summary["streams"]["object_poses"] == {"shape": [3, 7], "count": 40, "rate_hz": 100.0, "kind": "array",
                                                 "encoding": "raw"}
    assert summary["calls"][1] == {"code": 'pick("a")', "t_start": 0.2, "t_end": 0.4, "status": "aborted",
                                   "source": "gui", "reason": "operator stop"}


def test_unknown_success_reads_as_none(tmp_path):
    w = writer(tmp_path)
    fill(w, 3)
    with open_episode(w.finish(None, [])) as ep:
        assert ep.success is None and episode_summary(ep)["success"] is None and ep.labels == ()


def test_append_copies_the_sample_and_checks_it(tmp_path):
    w = writer(tmp_path)
    buf = np.zeros(8, np.float32)
    w.append("action", 0.0, buf)
    buf[:] = 5  # a producer reusing its buffer must not change what was recorded
    w.append("action", 0.1, buf)
    with pytest.raises(KeyError, match="unknown stream 'nope'"):
        w.append("nope", 0.0, np.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(8, 8, 3\), got \(8, 8\)"):
        w.append("cam", 0.0, np.zeros((8, 8), np.uint8))
    with pytest.raises(TypeError, match="holds uint8, got float64"):
        w.append("cam", 0.0, np.zeros((8, 8, 3)))
    with open_episode(w.finish(None, [])) as ep:
        assert ep.stream_data("action")[:, 0].tolist() == [0.0, 5.0]


def test_specs_and_meta_validate_themselves(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        StreamSpec("x", "video", (2,), "float32", 10.0)
    with pytest.raises(ValueError, match="depth stream holds uint16"):
        StreamSpec("d", "depth", (4, 4), "float32", 10.0)
    with pytest.raises(ValueError, match="bad rgb sample shape"):
        StreamSpec("c", "rgb", (4, 4), "uint8", 10.0)
    with pytest.raises(ValueError, match="robot must be one of"):
        meta(robot="ur5")
    with pytest.raises(ValueError, match="clock must be one of"):
        meta(clock="gps")
    with pytest.raises(ValueError, match="control stream 'action'"):
        EpisodeWriter(tmp_path / "x.h5", meta(), SPECS[1:])


def test_full_queue_drops_and_counts(tmp_path, monkeypatch):
    w = writer(tmp_path, queue_size=2, drop_when_full=True)
    gate = threading.Event()
    write_stream = w._write_stream
    monkeypatch.setattr(w, "_write_stream", lambda *a: (gate.wait(), write_stream(*a)))  # a stalled disk
    assert w.append("action", 0.0, np.zeros(8, np.float32))  # the queue is empty: accepted
    accepted = [w.append("cam", i / 10, np.full((8, 8, 3), i, np.uint8)) for i in range(50)]
    assert w.dropped["cam"] == accepted.count(False) > 40
    gate.set()
    with open_episode(w.finish(None, [])) as ep:
        kept = ep.stream_data("cam")[:, 0, 0, 0]
    assert len(kept) == accepted.count(True) == w.written["cam"]
    assert kept.tolist() == [i for i, ok in enumerate(accepted) if ok]  # order kept, nothing duplicated


def test_finish_leaves_only_the_final_file(tmp_path):
    w = writer(tmp_path)
    fill(w, 5)
    assert w.partial.exists() and not w.path.exists()
    final = w.finish(True, [{"start": 0, "end": 5, "code": "idle", "source": "auto"}])
    assert final.exists() and list(tmp_path.iterdir()) == [final]
    with pytest.raises(EpisodeError, match="already ended"):
        w.append("action", 1.0, np.zeros(8, np.float32))


def test_a_failing_writer_thread_fails_finish_and_keeps_the_partial(tmp_path, monkeypatch):
    w = writer(tmp_path)
    fill(w, 3)

    def disk_full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(w, "_write_stream", disk_full)
    w.append("action", 1.0, np.zeros(8, np.float32))
    with pytest.raises(EpisodeWriteError, match="No space left on device"):
        w.finish(True, [])
    assert find_partials(tmp_path) == [w.partial] and not w.path.exists()


def test_discard_deletes_the_recording(tmp_path):
    w = writer(tmp_path)
    fill(w, 5)
    w.discard()
    assert not list(tmp_path.iterdir())


def test_write_labels_replaces_them_and_marks_edits(tmp_path):
    w = writer(tmp_path)
    fill(w, 20)
    final = w.finish(True, [{"start": 0, "end": 20, "code": "idle", "source": "auto"}])
    new = [{"start": 0, "end": 5, "code": "idle", "source": "edited", "trimmed": True},  # extra keys are kept
           {"start": 5, "end": 20, "code": 'pick("a")', "source": "edited"}]
    write_labels(final, new)
    with open_episode(final) as ep:
        assert ep.labels == segments(new) and ep.labels[0].trimmed and ep.labels_edited
    with pytest.raises(ValueError, match="source auto|edited"):
        write_labels(final, [{"start": 0, "end": 20, "code": "idle", "source": "guessed"}])
    write_labels(final, new[:1], edited=False)
    with open_episode(final) as ep:
        assert ep.labels == segments(new[:1]) and not ep.labels_edited


def test_labels_survive_a_kill_between_unlink_and_move(tmp_path):
    w = writer(tmp_path)
    fill(w, 4)
    final = w.finish(True, [{"start": 0, "end": 4, "code": "idle", "source": "edited"}])
    with h5py.File(final, "r+") as f:  # the state write_labels leaves if killed between its two steps
        f.move("labels", "labels.new")
    with open_episode(final) as ep:
        assert ep.labels == (Segment(0, 4, "idle", "edited"),)
    write_labels(final, [{"start": 0, "end": 4, "code": "home()", "source": "edited"}])
    with open_episode(final) as ep:
        assert ep.labels[0].code == "home()" and "labels.new" not in ep.h5


def test_exception_keeps_a_recoverable_partial(tmp_path):
    with pytest.raises(RuntimeError, match="robot unplugged"):
        with writer(tmp_path) as w:
            fill(w, 20)
            w.log_call({"code": "home()", "name": "home", "args": [], "t_start": 0.5, "t_end": 1.0, "status": "ok",
                        "source": "script", "reason": None})
            raise RuntimeError("robot unplugged")
    (partial,) = find_partials(tmp_path)
    with pytest.raises(EpisodeExistsError, match="unfinished recording"):
        writer(tmp_path)
    recovered = recover_partial(partial)
    assert recovered == tmp_path / "ep.h5" and not partial.exists()
    with open_episode(recovered) as ep:
        assert ep.recovered and ep.success is None and ep.frames == 20 and ep.meta == meta()
        assert np.array_equal(ep.stream_data("cam")[:, 0, 0, 0], np.arange(20))
        assert ep.calls[0].code == "home()"
        assert [s.code for s in ep.labels] == ["idle", "home()", "idle"] and ep.labels[-1].end == 20


def test_recovery_never_overwrites_an_episode(tmp_path):
    w = writer(tmp_path)
    fill(w, 3)
    first = w.finish(True, [])
    with writer(tmp_path, name="other.h5") as w:  # a second recording, never finished ...
        fill(w, 7)
    w.partial.rename(tmp_path / "ep.h5.partial")  # ... under the finished episode's name (copied in, say)
    recovered = recover_partial(find_partials(tmp_path)[0])
    assert recovered.name == "ep.recovered.h5"
    with open_episode(first) as a, open_episode(recovered) as b:
        assert (a.frames, a.success, b.frames, b.recovered) == (3, True, 7, True)


def test_a_finished_episode_is_never_overwritten(tmp_path):
    w = writer(tmp_path)
    fill(w, 3)
    first = w.finish(True, [])
    with pytest.raises(EpisodeExistsError, match="finished episode"):
        writer(tmp_path)
    other = writer(tmp_path, name="other.h5")
    fill(other, 5)
    shutil.copy(first, tmp_path / "other.h5")  # an episode appears under its name while it records
    with pytest.raises(EpisodeExistsError, match="never overwrites"):
        other.finish(True, [])
    assert (tmp_path / "other.h5.partial").exists()  # what it recorded stays recoverable
    with open_episode(tmp_path / "other.h5") as ep:
        assert ep.frames == 3


def test_an_empty_partial_says_it_is_an_unfinished_recording(tmp_path):
    with writer(tmp_path):
        pass  # killed before the first frame
    (partial,) = find_partials(tmp_path)
    expect(EmptyEpisodeError, partial, "unfinished recording .* no frames")
    with pytest.raises(EmptyEpisodeError):
        recover_partial(partial)


def test_an_episode_that_lost_its_calls_says_so(tmp_path):
    w = writer(tmp_path)
    fill(w, 6)
    final = w.finish(True, [{"start": 0, "end": 2, "code": "idle"}, {"start": 2, "end": 6, "code": "home()"}])
    with open_episode(final) as ep:
        assert ep.calls_logged and ep.calls == () and "calls were lost" in ep.calls_missing
    with h5py.File(final, "r+") as f:
        del f["calls"]
    with open_episode(final) as ep:
        assert not ep.calls_logged and "no call log" in ep.calls_missing
    idle = writer(tmp_path, name="idle.h5")
    fill(idle, 4)
    with open_episode(idle.finish(True, [{"start": 0, "end": 4, "code": "idle"}])) as ep:
        assert ep.calls_missing is None  # no calls and nothing labelled: nothing was lost


def test_malformed_calls_are_a_one_line_error(tmp_path):
    w = writer(tmp_path)
    fill(w, 3)
    w.log_call({"code": "home()", "name": "home", "t_start": "soon", "status": "ok", "source": "gui"})
    with open_episode(w.finish(True, [])) as ep:
        with pytest.raises(TruncatedEpisodeError, match="calls are malformed.*t_start must be a number"):
            ep.calls


def expect(error, path: Path, match: str | None = None) -> None:
    with pytest.raises(error, match=match) as info:
        with open_episode(path) as ep:
            episode_summary(ep)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_typed_errors_for_bad_files(tmp_path):
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    expect(EmptyEpisodeError, empty, "empty")
    text = tmp_path / "text.h5"
    text.write_text("task: stack\n" * 50)
    expect(NotAnEpisodeError, text, "not an HDF5")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    expect(NotAnEpisodeError, foreign, "not a Code2Act episode")
    newer = tmp_path / "newer.h5"
    shutil.copy(FIXTURES / "episode_v1.h5", newer)
    with h5py.File(newer, "r+") as f:
        f.attrs["format_version"] = 3
    expect(UnsupportedVersionError, newer, "format version 3")
    cut = tmp_path / "cut.h5"
    data = (FIXTURES / "episode_v1.h5").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    expect(TruncatedEpisodeError, cut, "truncated or damaged")
    with writer(tmp_path, name="cut_partial.h5") as w:
        fill(w, 50)
    data = w.partial.read_bytes()
    w.partial.write_bytes(data[: len(data) // 2])
    expect(TruncatedEpisodeError, w.partial)
    with pytest.raises(TruncatedEpisodeError):
        recover_partial(w.partial)
    w = writer(tmp_path, name="no_frames.h5")
    w.append("cam", 0.0, np.zeros((8, 8, 3), np.uint8))
    expect(EmptyEpisodeError, w.finish(None, []), "no frames")
    with pytest.raises(FileNotFoundError):
        open_episode(tmp_path / "missing.h5")


def test_partial_without_frames_is_not_recovered(tmp_path):
    with writer(tmp_path):
        pass
    (partial,) = find_partials(tmp_path)
    with pytest.raises(EmptyEpisodeError, match="no frames to recover"):
        recover_partial(partial)
    assert partial.exists() and find_partials(tmp_path) == [partial]


def test_recording_bench_reports_its_figures(tmp_path):
    from app.bench_frames import noisy_depth, noisy_rgb

    rng = np.random.default_rng(0)
    yx = np.indices((480, 640)).sum(axis=0)
    rgb = np.stack([yx % 256] * 3, axis=-1).astype(np.uint8)
    loop = {cam: (np.stack([noisy_rgb(rgb, rng)] * 2), np.stack([noisy_depth((600 + yx).astype(np.uint16), rng)] * 2))
            for cam in ("front", "wrist")}  # the bench's own loop is rendered; two noisy frames do here
    r = bench_recording(tmp_path, seconds=1.5, frames=loop)
    assert {"seconds", "frames_per_stream", "dropped_frames", "dropped_per_stream", "stop_to_readable_s",
            "file_mb", "file_mb_per_stream", "gb_per_10_minutes"} <= set(r)
    assert r["video_quality"] == "standard" and r["file_mb_per_stream"]["front_depth"] > r["file_mb_per_stream"]["action"]
    assert set(r["frames_per_stream"]) == set(r["dropped_per_stream"]) >= {"front_rgb", "wrist_depth", "ee_pose"}
    assert not list(tmp_path.iterdir())  # the multi-GB-per-minute file is not left behind
