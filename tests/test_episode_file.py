"""The episode file format: fixtures, round trip, typed errors, labels, recovery, dropping."""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from recorders.episode_file import (
    EmptyEpisodeError, EpisodeMeta, NotAnEpisodeError, StreamSpec, TruncatedEpisodeError,
    UnsupportedVersionError, episode_summary, find_partials, open_episode, recover_partial, write_labels,
)
from recorders.episode_writer import EpisodeWriter

FIXTURES = Path(__file__).parent / "fixtures"


def test_reads_the_version_1_fixture():
    with open_episode(FIXTURES / "episode_v1.h5") as ep:
        s = episode_summary(ep)
        assert ep.format_version == 1 and ep.seed == 7 and ep.scene == {"note": "fixture"}
        assert ep.stream_data("front_rgb")[5].max() == 50
        assert ep.stream_info("front_rgb")["meta"] == {"intrinsics": {"fx": 20.0}}
        assert list(ep.stream_time("action")) == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert s["task"] == "stack" and s["frames"] == 6 and s["success"] is True and s["duration_s"] == 0.6
    assert s["streams"]["wrist_depth"] == {"shape": [16, 16], "count": 6, "rate_hz": 10.0, "kind": "depth"}
    assert [c["status"] for c in s["calls"]] == ["ok", "failed"] and s["calls"][1]["reason"] == "slipped"
    assert [g["source"] for g in s["segments"]] == ["auto", "auto", "edited"]


def test_image_streams_are_compressed_one_frame_per_chunk():
    with h5py.File(FIXTURES / "episode_v1.h5", "r") as f:
        d = f["streams/front_rgb/data"]
        assert d.chunks == (1, 16, 16, 3)
        assert d.id.get_create_plist().get_filter(0)[0] == 32001  # Blosc


def make(tmp_path, n=20, name="ep.h5", **kw):
    meta = EpisodeMeta("push", "push the red cube to the left", "sim", 10.0, seed=1, split="test", clock="sim")
    streams = [StreamSpec("action", "array", (8,), "float32", 10.0), StreamSpec("cam", "rgb", (8, 8, 3), "uint8", 10)]
    w = EpisodeWriter(tmp_path / name, meta, streams, **kw)
    for i in range(n):
        w.append("action", i / 10, np.full(8, i, np.float32))
        w.append("cam", i / 10, np.full((8, 8, 3), i, np.uint8))
    return w


def test_round_trip_and_atomic_finish(tmp_path):
    w = make(tmp_path, drop_when_full=False)
    w.log_call({"code": "home()", "name": "home", "t_start": 0.0, "t_end": 1.0, "status": "ok", "source": "gui"})
    final = w.finish(None, [{"start": 0, "end": 20, "code": "home()", "source": "auto"}])
    assert final.exists() and not find_partials(tmp_path)
    with open_episode(final) as ep:
        assert ep.frames == 20 and ep.success is None and ep.split == "test"
        assert np.array_equal(ep.stream_data("action")[:, 0], np.arange(20))
        assert ep.calls[0]["code"] == "home()"


def test_write_labels_replaces_them_and_marks_edits(tmp_path):
    final = make(tmp_path, drop_when_full=False).finish(True, [{"start": 0, "end": 20, "code": "idle", "source": "auto"}])
    new = [{"start": 0, "end": 5, "code": "idle", "source": "auto"},
           {"start": 5, "end": 20, "code": 'pick("a")', "source": "edited"}]
    write_labels(final, new)
    with open_episode(final) as ep:
        assert ep.labels == new and ep.labels_edited


def test_full_queue_drops_and_counts(tmp_path):
    w = make(tmp_path, n=0, queue_size=1, drop_when_full=True)
    accepted = sum(w.append("cam", i, np.zeros((8, 8, 3), np.uint8)) for i in range(2000))
    w.finish(None, [])
    assert w.dropped["cam"] == 2000 - accepted and w.dropped["cam"] > 0


def test_unknown_stream_is_a_clear_error(tmp_path):
    w = make(tmp_path, n=0)
    with pytest.raises(KeyError, match="unknown stream 'nope'"):
        w.append("nope", 0.0, np.zeros(3))
    w.discard()
    assert not list(tmp_path.iterdir())


def test_exception_keeps_a_recoverable_partial(tmp_path):
    with pytest.raises(RuntimeError):
        with make(tmp_path, drop_when_full=False):
            raise RuntimeError("robot unplugged")
    (partial,) = find_partials(tmp_path)
    recovered = recover_partial(partial)
    with open_episode(recovered) as ep:
        assert ep.recovered and ep.frames == 20 and ep.success is None
        assert ep.labels == [{"start": 0, "end": 20, "code": "idle", "source": "auto"}]


def test_typed_errors_for_bad_files(tmp_path):
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    with pytest.raises(EmptyEpisodeError):
        open_episode(empty)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(NotAnEpisodeError):
        open_episode(text)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(NotAnEpisodeError, match="not a Code2Act episode"):
        open_episode(foreign)
    newer = tmp_path / "newer.h5"
    shutil.copy(FIXTURES / "episode_v1.h5", newer)
    with h5py.File(newer, "r+") as f:
        f.attrs["format_version"] = 2
    with pytest.raises(UnsupportedVersionError, match="format version 2"):
        open_episode(newer)
    cut = tmp_path / "cut.h5"
    data = (FIXTURES / "episode_v1.h5").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedEpisodeError):
        with open_episode(cut) as ep:
            episode_summary(ep)
    with pytest.raises(FileNotFoundError):
        open_episode(tmp_path / "missing.h5")
