"""`import lerobot`: the two recorded stack demos exported with app/lerobot_export.py and imported back
come out as the same episodes (frames, actions, instruction, labels, camera frames); a dataset
without subtasks gets proposals at the gripper events; an import never overwrites episodes."""
from __future__ import annotations

import json
import shutil
from argparse import Namespace

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("av")

from app.errors import UserError  # noqa: E402
from app.lerobot_export import export_lerobot  # noqa: E402
from app.lerobot_import import import_lerobot, run_import_lerobot  # noqa: E402
from recorders.episode_file import open_episode  # noqa: E402
from recorders.segmentation import IDLE  # noqa: E402

SUBTASK_COLUMNS = ("subtask_index", "language_persistent", "language_events")


@pytest.fixture(scope="module")
def exported(recorded, tmp_path_factory):
    out = tmp_path_factory.mktemp("lerobot_import") / "dataset"
    export_lerobot(recorded, out)
    return out


@pytest.fixture(scope="module")
def imported(exported, tmp_path_factory):
    out = tmp_path_factory.mktemp("imported")
    return import_lerobot(exported, out)


@pytest.fixture(scope="module")
def without_subtasks(exported, tmp_path_factory):
    """The exported dataset with every trace of subtasks removed, as a foreign dataset would be."""
    root = tmp_path_factory.mktemp("foreign") / "dataset"
    shutil.copytree(exported, root)
    data = root / "data/chunk-000/file-000.parquet"
    t = pq.read_table(data)
    pq.write_table(t.drop_columns([c for c in SUBTASK_COLUMNS if c in t.column_names]), data)
    (root / "meta/subtasks.parquet").unlink()
    info = json.loads((root / "meta/info.json").read_text())
    info["features"] = {k: v for k, v in info["features"].items() if k not in SUBTASK_COLUMNS}
    (root / "meta/info.json").write_text(json.dumps(info))
    return root


def test_every_episode_comes_back_with_its_frames_actions_and_instruction(recorded, imported):
    assert [p.name for p in imported] == ["lerobot_0000.h5", "lerobot_0001.h5"]
    for original, path in zip(recorded, imported):
        with open_episode(original) as a, open_episode(path) as b:
            assert b.frames == a.frames
            assert b.instruction == a.instruction and b.task == "instruction"
            assert b.control_hz == a.control_hz
            np.testing.assert_array_equal(np.asarray(b.stream_data("action")),
                                          np.asarray(a.stream_data("action")[:a.frames], np.float32))
            for s in ("joint_positions", "gripper_width", "ee_pose"):
                np.testing.assert_array_equal(np.asarray(b.stream_data(s)),
                                              np.asarray(a.stream_data(s)[:a.frames], np.float32))
            np.testing.assert_allclose(b.stream_time("action"), np.arange(b.frames) / b.control_hz, atol=1e-5)


def test_labels_are_the_original_codes_and_frame_ranges(recorded, imported):
    for original, path in zip(recorded, imported):
        with open_episode(original) as a, open_episode(path) as b:
            assert [(s.start, s.end, s.code) for s in b.labels] == [(s.start, s.end, s.code) for s in a.labels]
            assert any(s.code != IDLE for s in b.labels)
            assert {s.source for s in b.labels} == {"auto"}


def test_camera_frames_are_close_to_the_originals(recorded, imported):
    for original, path in zip(recorded, imported):
        with open_episode(original) as a, open_episode(path) as b:
            for stream in ("front_rgb", "wrist_rgb"):
                assert b.stream_encoding(stream)["codec"] == "h264"  # stored as video again, as they came
                assert b.stream_count(stream) == a.frames
                # the recorded demos hold one camera frame per control frame
                want = np.asarray(a.stream_data(stream)[:a.frames]).astype(np.int16)
                got = np.asarray(b.stream_data(stream)).astype(np.int16)
                assert got.shape == want.shape
                assert np.abs(got - want).mean() < 8


def test_a_dataset_without_subtasks_gets_proposals_at_gripper_events(recorded, without_subtasks, tmp_path):
    paths = import_lerobot(without_subtasks, tmp_path / "out")
    assert len(paths) == 2
    for original, path in zip(recorded, paths):
        with open_episode(original) as a, open_episode(path) as b:
            grip = np.asarray(a.stream_data("action")[:a.frames, 7]) > 0.5
            events = (np.flatnonzero(grip[1:] != grip[:-1]) + 1).tolist()
            assert events, "a stack demo closes and opens the gripper"
            assert [s.start for s in b.labels] == [0, *events]
            assert b.labels[-1].end == b.frames
            assert {s.source for s in b.labels} == {"proposed"}
            np.testing.assert_array_equal(np.asarray(b.stream_data("action")),
                                          np.asarray(a.stream_data("action")[:a.frames], np.float32))


def test_a_second_import_into_the_same_folder_is_refused(exported, imported):
    before = [p.stat().st_mtime_ns for p in imported]
    with pytest.raises(UserError, match="lerobot_0000.h5"):
        import_lerobot(exported, imported[0].parent)
    assert [p.stat().st_mtime_ns for p in imported] == before


def test_a_broken_episode_is_skipped_with_one_line(exported, tmp_path):
    root = tmp_path / "dataset"
    shutil.copytree(exported, root)
    table = root / "meta/episodes/chunk-000/file-000.parquet"
    rows = pq.read_table(table).to_pylist()
    for end in ("from", "to"):  # the second episode's wrist video lies past the end of its file
        rows[1][f"videos/observation.images.wrist/{end}_timestamp"] += 1000.0
    pq.write_table(pa.Table.from_pylist(rows), table)
    lines = []
    paths = import_lerobot(root, tmp_path / "out", warn=lines.append)
    assert [p.name for p in paths] == ["lerobot_0000.h5"]
    assert len(lines) == 1 and lines[0].startswith("skipped LeRobot episode 1")
    assert not list((tmp_path / "out").glob("*.partial"))


def test_the_cli_command_imports_and_refuses_a_missing_dataset(exported, tmp_path, capsys):
    assert run_import_lerobot(Namespace(dir=exported, out=tmp_path / "out")) == 0
    assert "imported 2 episodes" in capsys.readouterr().out
    with pytest.raises(UserError, match="not a LeRobotDataset"):
        run_import_lerobot(Namespace(dir=tmp_path / "missing", out=tmp_path / "out2"))


def test_annotate_opens_imported_episodes_with_their_labels(imported, without_subtasks, tmp_path):
    from app.annotation import AnnotationModel
    for path in imported:
        m = AnnotationModel.load(path)
        with open_episode(path) as ep:
            assert list(m.segments) == list(ep.labels)
    proposed = import_lerobot(without_subtasks, tmp_path / "out")[0]
    m = AnnotationModel.load(proposed)
    assert [s.start for s in m.segments][1:] == list(m.timeline.gripper_events)


def test_video_coded_episodes_export_again(imported, tmp_path):
    """The imported episodes store their cameras as H.264: exporting them decodes every frame again."""
    import av

    out = tmp_path / "again"
    export_lerobot(imported, out)
    with open_episode(imported[0]) as ep:
        n, want = ep.frames, np.asarray(ep.stream_data("front_rgb")).astype(np.int16)
    video = next((out / "videos/observation.images.front").rglob("*.mp4"))
    with av.open(str(video)) as container:
        got = np.stack([f.to_ndarray(format="rgb24") for _, f in zip(range(n), container.decode(video=0))])
    assert got.shape == want.shape and np.abs(got.astype(np.int16) - want).mean() < 8
