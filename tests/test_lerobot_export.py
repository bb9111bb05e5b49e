"""`export lerobot`: the two recorded stack demos as a LeRobotDataset v3 folder, checked against the
format with pyarrow and PyAV (app/lerobot_export.py's docstring gives the layout)."""
from __future__ import annotations

import json
import shutil
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
av = pytest.importorskip("av")

from app.errors import UserError  # noqa: E402
from app.lerobot_export import export_lerobot, run_export_lerobot  # noqa: E402
from recorders.episode_file import open_episode  # noqa: E402
from recorders.segmentation import IDLE  # noqa: E402

CAMERAS = {"observation.images.front": "front_rgb", "observation.images.wrist": "wrist_rgb"}


@pytest.fixture(scope="module")
def exported(recorded, tmp_path_factory):
    out = tmp_path_factory.mktemp("lerobot") / "dataset"
    summary = export_lerobot(recorded, out)
    return out, summary


@pytest.fixture(scope="module")
def episodes(recorded):
    """Per recorded episode: its arrays, as the export should have written them."""
    eps = []
    for path in recorded:
        with open_episode(path) as ep:
            n = ep.frames
            codes = [IDLE] * n
            for s in ep.labels:
                codes[s.start:s.end] = [s.code] * (s.end - s.start)
            eps.append({"n": n, "fps": ep.control_hz, "instruction": ep.instruction,
                        "action": np.asarray(ep.stream_data("action")[:n], np.float32),
                        "state": np.concatenate([np.asarray(ep.stream_data(s)[:n], np.float32).reshape(n, -1)
                                                 for s in ("joint_positions", "gripper_width", "ee_pose")], 1),
                        "codes": codes, "labels": ep.labels,
                        "rgb": {k: np.asarray(ep.stream_data(s)[:n]) for k, s in CAMERAS.items()}})
    return eps


def _info(out: Path) -> dict:
    return json.loads((out / "meta/info.json").read_text())


def _data(out: Path):
    return pq.read_table(out / _info(out)["data_path"].format(chunk_index=0, file_index=0))


def _text_table(path: Path, name: str) -> dict[int, str]:
    t = pq.read_table(path)
    assert json.loads(t.schema.metadata[b"pandas"])["index_columns"] == [name]  # pandas restores the index
    return dict(zip(t.column(f"{name}_index").to_pylist(), t.column(name).to_pylist()))


def test_info_json_describes_the_dataset(exported, episodes):
    out, summary = exported
    info = _info(out)
    assert info["codebase_version"] == "v3.0"
    assert info["fps"] == episodes[0]["fps"] == 10
    assert info["total_episodes"] == summary["episodes"] == 2
    assert info["total_frames"] == sum(e["n"] for e in episodes)
    assert info["total_tasks"] == len({e["instruction"] for e in episodes})
    f = info["features"]
    assert f["observation.state"]["shape"] == [15] and len(f["observation.state"]["names"]) == 15
    assert f["action"] == {"dtype": "float32", "shape": [8], "names": f["action"]["names"]}
    for key, stream in CAMERAS.items():
        assert f[key]["dtype"] == "video" and f[key]["shape"] == list(episodes[0]["rgb"][key].shape[1:])
        assert f[key]["info"]["video.codec"] == "h264" and f[key]["info"]["video.fps"] == 10
        assert (out / info["video_path"].format(video_key=key, chunk_index=0, file_index=0)).is_file()
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index", "subtask_index"):
        assert f[key]["shape"] == [1]
    assert (out / info["data_path"].format(chunk_index=0, file_index=0)).is_file()


def test_data_rows_hold_every_frame_with_consistent_indices(exported, episodes):
    out, _ = exported
    t = _data(out)
    assert set(_info(out)["features"]) == set(t.column_names) | set(CAMERAS)
    assert t.num_rows == sum(e["n"] for e in episodes)
    assert t.column("index").to_pylist() == list(range(t.num_rows))
    ep_index = np.array(t.column("episode_index").to_pylist())
    frame_index = np.array(t.column("frame_index").to_pylist())
    for k, e in enumerate(episodes):
        assert (frame_index[ep_index == k] == np.arange(e["n"])).all()
    assert t.schema.field("timestamp").type == pa.float32()
    np.testing.assert_allclose(t.column("timestamp").to_numpy(), frame_index / 10, atol=1e-6)


def test_actions_and_state_are_the_episode_streams_exactly(exported, episodes):
    out, _ = exported
    t = _data(out)
    assert t.schema.field("action").type == pa.list_(pa.float32(), 8)
    action = t.column("action").combine_chunks().flatten().to_numpy().reshape(-1, 8)
    state = t.column("observation.state").combine_chunks().flatten().to_numpy().reshape(-1, 15)
    np.testing.assert_array_equal(action, np.concatenate([e["action"] for e in episodes]))
    np.testing.assert_array_equal(state, np.concatenate([e["state"] for e in episodes]))


def test_instruction_is_the_task_and_labels_are_subtasks_frame_by_frame(exported, episodes):
    out, _ = exported
    t = _data(out)
    tasks = _text_table(out / "meta/tasks.parquet", "task")
    subtasks = _text_table(out / "meta/subtasks.parquet", "subtask")
    assert sorted(tasks.values()) == sorted({e["instruction"] for e in episodes})
    ep_index = np.array(t.column("episode_index").to_pylist())
    task_of = [tasks[i] for i in t.column("task_index").to_pylist()]
    sub_of = [subtasks[i] for i in t.column("subtask_index").to_pylist()]
    persistent = t.column("language_persistent").to_pylist()
    for k, e in enumerate(episodes):
        rows = np.flatnonzero(ep_index == k)
        assert {task_of[i] for i in rows} == {e["instruction"]}
        assert [sub_of[i] for i in rows] == e["codes"]
        assert any(c.startswith("pick(") for c in e["codes"]) and any(c.startswith("place(") for c in e["codes"])
        language = persistent[rows[0]]
        assert all(persistent[i] == language for i in rows)  # broadcast over the episode
        assert [(r["style"], r["content"]) for r in language] == [("subtask", s.code) for s in e["labels"]]
        np.testing.assert_allclose([r["timestamp"] for r in language], [s.start / 10 for s in e["labels"]], atol=1e-6)
    assert all(row == [] for row in t.column("language_events").to_pylist())


def test_videos_decode_to_the_stored_frames_and_episode_rows_locate_them(exported, episodes):
    out, _ = exported
    info = _info(out)
    table = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [r["episode_index"] for r in table] == [0, 1]
    assert [r["tasks"] for r in table] == [[e["instruction"]] for e in episodes]
    assert [r["length"] for r in table] == [e["n"] for e in episodes]
    assert [(r["dataset_from_index"], r["dataset_to_index"]) for r in table] == \
        [(0, episodes[0]["n"]), (episodes[0]["n"], episodes[0]["n"] + episodes[1]["n"])]
    for key in CAMERAS:
        path = out / info["video_path"].format(video_key=key, chunk_index=0, file_index=0)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and stream.pix_fmt == "yuv420p"
            decoded = [(float(fr.pts * fr.time_base), fr.to_ndarray(format="rgb24")) for fr in container.decode(stream)]
        assert len(decoded) == sum(e["n"] for e in episodes)
        times = np.array([t for t, _ in decoded])
        for row, e in zip(table, episodes):
            assert row[f"videos/{key}/file_index"] == 0
            lo, hi = row[f"videos/{key}/from_timestamp"], row[f"videos/{key}/to_timestamp"]
            inside = np.flatnonzero((times >= lo - 1e-4) & (times < hi - 1e-4))
            assert len(inside) == e["n"] and hi - lo == pytest.approx(e["n"] / 10)
            frames = np.stack([decoded[i][1] for i in inside]).astype(np.float32)
            error = np.abs(frames - e["rgb"][key].astype(np.float32)).mean()
            assert error < 8, f"{key}: mean abs error {error:.1f} on 0..255"


def test_stats_cover_every_feature(exported, episodes):
    out, _ = exported
    stats = json.loads((out / "meta/stats.json").read_text())
    for key in ("observation.state", "action", "timestamp", "frame_index", "index", *CAMERAS):
        assert {"min", "max", "mean", "std", "count", "q01", "q50", "q99"} <= set(stats[key])
    actions = np.concatenate([e["action"] for e in episodes]).astype(np.float64)
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats["action"]["std"], actions.std(0), atol=1e-5)
    np.testing.assert_allclose(stats["action"]["min"], actions.min(0))
    assert stats["action"]["count"] == [len(actions)]
    for key in CAMERAS:
        mean = np.array(stats[key]["mean"])
        assert mean.shape == (3, 1, 1) and ((0 <= mean) & (mean <= 1)).all()
        assert np.array(stats[key]["max"]).max() <= 1 and np.array(stats[key]["std"]).min() > 0


def test_a_non_empty_out_folder_is_refused(exported, recorded):
    out, _ = exported
    with pytest.raises(UserError, match="not empty") as e:
        export_lerobot(recorded, out)
    assert "\n" not in str(e.value)


def test_cli_skips_unreadable_episodes_with_one_line_each(recorded, tmp_path, capsys):
    folder = tmp_path / "episodes"
    folder.mkdir()
    shutil.copy(recorded[0], folder / "a.h5")
    (folder / "b.h5").write_bytes(b"not an episode")
    assert run_export_lerobot(Namespace(dirs=[folder], out=tmp_path / "out")) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert len(err) == 1 and "b.h5" in err[0]
    assert _info(tmp_path / "out")["total_episodes"] == 1
    with pytest.raises(UserError, match="no such file"):
        run_export_lerobot(Namespace(dirs=[tmp_path / "missing"], out=tmp_path / "out2"))


def _write_trimmed(path: Path) -> Path:
    """20 control frames at 10 Hz, a camera at 5 Hz stamped 0.05 s late (frame k: solid grey 10 * k),
    idle frames 0..2 and 17..19 trimmed off by the annotator."""
    from recorders.episode_file import EpisodeMeta, StreamSpec
    from recorders.episode_writer import EpisodeWriter

    streams = [StreamSpec("action", "array", (8,), "float32", 10.0),
               StreamSpec("joint_positions", "array", (7,), "float32", 10.0),
               StreamSpec("gripper_width", "array", (1,), "float32", 10.0),
               StreamSpec("ee_pose", "array", (7,), "float32", 10.0),
               StreamSpec("front_rgb", "rgb", (32, 48, 3), "uint8", 5.0)]
    meta = EpisodeMeta(task="stack", instruction="stack it", robot="sim", control_hz=10.0, clock="sim")
    labels = [{"start": 0, "end": 3, "code": IDLE, "source": "edited", "trimmed": True},
              {"start": 3, "end": 10, "code": 'pick("red cube")', "source": "auto"},
              {"start": 10, "end": 17, "code": IDLE, "source": "auto"},
              {"start": 17, "end": 20, "code": IDLE, "source": "edited", "trimmed": True}]
    with EpisodeWriter(path, meta, streams, drop_when_full=False) as w:
        for i in range(20):
            w.append("action", i / 10, np.full(8, i, np.float32))
            w.append("joint_positions", i / 10, np.full(7, i, np.float32))
            w.append("gripper_width", i / 10, np.array([i], np.float32))
            w.append("ee_pose", i / 10, np.full(7, -i, np.float32))
        for k in range(10):
            w.append("front_rgb", k / 5 + 0.05, np.full((32, 48, 3), 10 * k, np.uint8))
        return w.finish(True, labels)


def test_trimmed_frames_are_left_out_and_cameras_at_their_own_rate_are_sampled_causally(tmp_path):
    out = tmp_path / "out"
    summary = export_lerobot([_write_trimmed(tmp_path / "trimmed.h5")], out)
    assert summary["frames"] == 14
    t = _data(out)
    np.testing.assert_array_equal(t.column("action").combine_chunks().flatten().to_numpy()[::8], np.arange(3, 17))
    subtasks = _text_table(out / "meta/subtasks.parquet", "subtask")
    assert [subtasks[i] for i in t.column("subtask_index").to_pylist()] == ['pick("red cube")'] * 7 + [IDLE] * 7
    language = t.column("language_persistent").to_pylist()[0]
    assert [(r["content"], r["timestamp"]) for r in language] == \
        [('pick("red cube")', 0.0), (IDLE, pytest.approx(0.7))]
    with av.open(str(out / "videos/observation.images.front/chunk-000/file-000.mp4")) as container:
        grey = [fr.to_ndarray(format="rgb24").mean() for fr in container.decode(video=0)]
    # control frame i (time i / 10) shows camera frame k stamped k / 5 + 0.05 <= i / 10; frame 0 would
    # precede every camera frame and falls back to the first
    expected = [10 * max(0, (i - 1) // 2) for i in range(3, 17)]
    np.testing.assert_allclose(grey, expected, atol=3)
