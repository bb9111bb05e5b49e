"""models/policy_dataset.py and models/call_encoding.py on episodes recorded by the scripted recorder."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from models.anchor_frame import action_to_anchor, anchor_of, state_to_anchor
from models.call_encoding import (COLOUR_VOCAB, MEMORY_DIM, POSE_DIM, TARGET_KINDS, CallEncoding, colour_index,
                                  function_index)
from models.norm_stats import MIN_HALF_RANGE, NormStats
from models.policy_dataset import PolicyDataset
from models.policy_layout import CAMERAS, MAX_OBJECTS, STATE_DIM, TASK_VOCAB
from recorders.episode_file import open_episode, write_labels
from recorders.robot_api_spec import Call, vocabulary

ENC = CallEncoding()
S = ENC.slices
OBJ_POSE = slice(S["obj"].start + 1, S["obj"].start + 1 + POSE_DIM)
TARGET_PRESENT = S["target"].start
TARGET_KIND = slice(S["target"].start + 1, S["target"].start + 1 + len(TARGET_KINDS))
TARGET_POSE = slice(TARGET_KIND.stop, TARGET_KIND.stop + POSE_DIM)


@pytest.fixture(scope="module")
def swap(tmp_path_factory):
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.task_suite import make_instance

    path = tmp_path_factory.mktemp("policy") / "swap_0000.h5"
    assert record_demo(make_instance("swap", 0), path, RecordOptions(obs="state")).success
    return path


@pytest.fixture(scope="module")
def stack_rgb(tmp_path_factory):
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.task_suite import make_instance

    path = tmp_path_factory.mktemp("policy_rgb") / "stack_0000.h5"
    record_demo(make_instance("stack", 0), path, RecordOptions(obs="rgb"))
    return path


@pytest.fixture(scope="module")
def episode(swap):
    with open_episode(swap) as ep:
        return {"labels": [s.to_dict() for s in ep.labels], "calls": ep.calls, "times": ep.stream_time("action"),
                "action": ep.stream_data("action")[:], "objects": ep.stream_data("object_poses")[:],
                "names": ep.stream_spec("object_poses").meta["names"], "ee": ep.stream_data("ee_pose")[:],
                "frames": ep.frames, "scene": ep.scene}


def _samples_of(ds, code):
    """(segment, [dataset indices]) of the first segment whose code is `code`."""
    seg = next(k for k, s in enumerate(ds.segments) if s.code == code)
    return ds.segments[seg], [i for i, s in enumerate(ds.samples) if s.segment == seg]


def test_every_motion_segment_contributes_its_length(swap, episode):
    ds = PolicyDataset([swap])
    motion = [s for s in episode["labels"] if s["code"] != "idle" and s["end"] > s["start"]]
    assert [(s.start, s.end, s.code) for s in ds.segments] == [(s["start"], s["end"], s["code"]) for s in motion]
    assert len(ds) == sum(s["end"] - s["start"] for s in motion)
    for k, seg in enumerate(ds.segments):
        assert [s.t for s in ds.samples if s.segment == k] == list(range(seg.start, seg.end))
    d = ds.describe()
    assert d["episodes"] == 1 and d["samples"] == len(ds) and d["skipped"] == []
    assert d["segments_per_function"] == {"pick": 3, "place": 3}


def test_item_shapes_and_dtypes(swap):
    item = PolicyDataset([swap])[0]
    assert item["obs_state"].shape == (2, STATE_DIM) and item["obs_state"].dtype == torch.float32
    assert item["object_mask"].tolist() == [1.0] * 3 + [0.0] * (MAX_OBJECTS - 3)
    assert item["action"].shape == (16, 8) and item["done"].shape == (16,)
    assert item["call"].shape == (ENC.dim,) == (47,) and item["call"].dtype == torch.float32
    assert item["memory"].shape == (MEMORY_DIM,)
    assert item["function"].dtype == torch.int64 and int(item["function"]) == function_index("pick")
    assert not any(cam in item for cam in CAMERAS)


def test_windows_pad_at_segment_ends_and_clamp_at_starts(swap, episode):
    ds = PolicyDataset([swap])
    seg, idx = _samples_of(ds, 'pick("red cube")')
    last_action = episode["action"][seg.end - 1]
    for i in idx[-20:]:
        t, item = ds.samples[i].t, ds[i]
        steps = np.arange(t, t + 16)
        assert item["done"].numpy().tolist() == (steps >= seg.end).astype(float).tolist()
        inside = steps < seg.end
        np.testing.assert_array_equal(item["action"].numpy()[inside], episode["action"][steps[inside]])
        np.testing.assert_array_equal(item["action"].numpy()[~inside], np.repeat(last_action[None], (~inside).sum(), 0))
    assert ds[idx[-1]]["done"][1] == 1.0 and ds[idx[-1]]["done"][0] == 0.0  # exactly after the end
    first = ds[idx[0]]["obs_state"].numpy()
    np.testing.assert_array_equal(first[0], first[1])  # frame t-1 clamped to the segment start
    np.testing.assert_array_equal(first[1, :7], episode["ee"][seg.start])
    second = ds[idx[1]]["obs_state"].numpy()
    np.testing.assert_array_equal(second[:, :7], episode["ee"][seg.start:seg.start + 2])


def test_pick_condition_uses_the_objects_pose_now(swap, episode):
    ds = PolicyDataset([swap])
    seg, idx = _samples_of(ds, 'pick("red cube")')
    j = episode["names"].index("red cube")
    for i in idx[::7]:
        t, call = ds.samples[i].t, ds[i]["call"].numpy()
        np.testing.assert_array_equal(call[OBJ_POSE], episode["objects"][t, j])
        assert call[S["function"]].argmax() == vocabulary().index("pick")
        assert call[S["obj"].start + 1 + POSE_DIM + COLOUR_VOCAB.index("red")] == 1.0


def test_recall_target_is_the_pose_at_remember_time(swap, episode):
    ds = PolicyDataset([swap])
    seg, idx = _samples_of(ds, 'place("red cube", recall("yellow cube start"))')
    remember = next(c for c in episode["calls"] if c.code == 'remember("yellow cube start", "yellow cube")')
    frame = int(np.searchsorted(episode["times"], remember.t_start - 1e-6))
    remembered = episode["objects"][frame, episode["names"].index("yellow cube")]
    for i in idx[::9]:
        call = ds[i]["call"].numpy()
        np.testing.assert_allclose(call[TARGET_POSE], remembered, atol=1e-5)
        assert call[TARGET_PRESENT] == 1.0 and call[TARGET_KIND].argmax() == TARGET_KINDS.index("recall")
        mem = ds[i]["memory"].numpy().reshape(4, 8)
        assert mem[:, 7].tolist() == [1.0, 1.0, 0.0, 0.0]
        np.testing.assert_allclose(mem[0, :7], remembered, atol=1e-5)
    # by then the yellow cube has moved away: the target is memory, not the current scene
    now = episode["objects"][seg.start, episode["names"].index("yellow cube")]
    assert np.linalg.norm(now[:2] - remembered[:2]) > 0.05


def test_free_space_target_is_where_the_object_came_to_rest(swap, episode):
    ds = PolicyDataset([swap])
    seg, idx = _samples_of(ds, 'place("yellow cube", free_space("yellow cube"))')
    rest = episode["objects"][seg.end, episode["names"].index("yellow cube")]
    call = ds[idx[0]]["call"].numpy()
    np.testing.assert_array_equal(call[TARGET_POSE], rest)
    assert call[TARGET_KIND].argmax() == TARGET_KINDS.index("free_space")


def test_flat_mode_has_no_call_information(swap, episode):
    ds = PolicyDataset([swap], cond="flat")
    assert len(ds) == episode["frames"] and len(ds.segments) == 1
    item = ds[5]
    assert {"call", "function", "memory"}.isdisjoint(item)
    assert int(item["task"]) == TASK_VOCAB.index("swap")
    assert ds[len(ds) - 1]["done"].tolist() == [0.0] + [1.0] * 15


def test_without_memory_recall_targets_are_zeroed(swap):
    ds = PolicyDataset([swap], memory=False)
    _, idx = _samples_of(ds, 'place("yellow cube", recall("red cube start"))')
    item = ds[idx[3]]
    assert "memory" not in item
    call = item["call"].numpy()
    assert call[TARGET_PRESENT] == 0.0 and not call[TARGET_POSE].any()
    assert call[TARGET_KIND].argmax() == TARGET_KINDS.index("recall")
    _, free = _samples_of(ds, 'place("yellow cube", free_space("yellow cube"))')
    assert ds[free[0]]["call"][TARGET_POSE].any()  # free_space is not memory


def test_edited_labels_change_the_conditioning(swap, episode, tmp_path):
    copy = tmp_path / "swap_edited.h5"
    shutil.copy(swap, copy)
    labels = [dict(s) for s in episode["labels"]]
    k = next(i for i, s in enumerate(labels) if s["code"] == 'place("red cube", recall("yellow cube start"))')
    labels[k] = {**labels[k], "code": 'place("red cube", "orange zone")', "source": "edited"}
    labels[0] = {**labels[0], "code": 'pick("no such cube")', "source": "edited"}
    write_labels(copy, labels)
    ds = PolicyDataset([copy])
    assert [r for _, r in ds.skipped] and "no such cube" in ds.skipped[0][1]
    assert ds.describe()["edited_segments"] == 1 and len(ds.segments) == len(labels) - 1
    seg, idx = _samples_of(ds, 'place("red cube", "orange zone")')
    assert (seg.start, seg.end, seg.source) == (labels[k]["start"], labels[k]["end"], "edited")
    zone = next(z for z in episode["scene"]["spec"]["zones"] if z["name"] == "orange zone")
    call = ds[idx[0]]["call"].numpy()
    assert call[TARGET_KIND].argmax() == TARGET_KINDS.index("zone")
    np.testing.assert_allclose(call[TARGET_POSE], [*zone["position"], 0, 1, 0, 0, 0], atol=1e-6)
    original = PolicyDataset([swap])
    _, orig_idx = _samples_of(original, episode["labels"][k]["code"])
    assert not np.allclose(original[orig_idx[0]]["call"].numpy(), call)


@pytest.mark.parametrize("frame", ["world", "anchor"])
def test_normalisation_maps_to_unit_range_and_round_trips(swap, tmp_path, frame):
    ds = PolicyDataset([swap])
    stats = ds.norm_stats(frame)
    batch = next(iter(DataLoader(ds, batch_size=len(ds))))
    if frame == "anchor":  # the coordinates the policy normalises
        batch["action"] = action_to_anchor(batch["action"], batch["anchor"])
        batch["obs_state"] = state_to_anchor(batch["obs_state"], batch["object_mask"], batch["anchor"])
    for key in ("action", "obs_state"):
        x = batch[key]
        z = stats.normalize(key, x)
        assert z.min() >= -1 - 1e-5 and z.max() <= 1 + 1e-5
        assert z.flatten(0, -2).min(0).values.min() < -0.99  # some dim reaches -1
        torch.testing.assert_close(stats.unnormalize(key, z), x, atol=1e-5, rtol=0)
        np.testing.assert_allclose(stats.unnormalize(key, stats.normalize(key, x.numpy())), x.numpy(), atol=1e-5)
    padded = stats.normalize("obs_state", batch["obs_state"])[..., 8 + 7 * 3:]  # absent objects: constant
    assert torch.isfinite(padded).all() and not padded.any()
    path = stats.save(tmp_path)
    assert path.name == "norm_stats.json" and NormStats.load(tmp_path) == stats
    with pytest.raises(ValueError):
        NormStats.from_json({"format_version": 99})


def test_unreadable_episodes_are_skipped_with_a_reason(swap, tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an episode")
    (tmp_path / "empty.h5").write_bytes(b"")
    ds = PolicyDataset([junk, tmp_path / "missing.h5", swap, tmp_path / "empty.h5"])
    assert len(ds.paths) == 1 and len(ds) > 0
    assert [p.split("/")[-1] for p, _ in ds.skipped] == ["junk.h5", "missing.h5", "empty.h5"]
    assert all(r for _, r in ds.skipped)
    assert "missing" in PolicyDataset([swap], obs="rgb").skipped[0][1]  # state-only: no cameras


def test_push_and_home_encodings():
    poses = {"red cube": np.arange(7, dtype=np.float32)}
    v = ENC.encode(Call.from_code('push("red cube", "left", 0.1)'), poses)
    assert v[S["direction"]].tolist() == [1, 0, 0, 0] and v[S["distance"]][0] == pytest.approx(0.1)
    np.testing.assert_array_equal(v[OBJ_POSE], poses["red cube"])
    assert v[TARGET_PRESENT] == 0
    home = ENC.encode(Call("home"), {})
    assert home.sum() == 1.0 and home[vocabulary().index("home")] == 1.0
    assert colour_index("red cube 2") == COLOUR_VOCAB.index("red") and colour_index("mystery box") == 0
    with pytest.raises(ValueError, match="no pose"):
        ENC.encode(Call.from_code('pick("blue cube")'), poses)


def test_rgb_windows_through_a_dataloader_with_workers(stack_rgb):
    ds = PolicyDataset([stack_rgb], obs="rgb")
    assert len(ds) > 0 and ds.skipped == []
    with open_episode(stack_rgb) as ep:
        front = ep.stream_data("front_rgb")[:]
    seen = 0
    for batch in DataLoader(ds, batch_size=32, num_workers=2):
        b = batch["front_rgb"].shape[0]
        assert batch["front_rgb"].shape == (b, 2, 3, *front.shape[1:3]) and batch["front_rgb"].dtype == torch.uint8
        assert batch["wrist_rgb"].shape == batch["front_rgb"].shape
        seen += b
    assert seen == len(ds)
    t = ds.samples[10].t
    np.testing.assert_array_equal(ds[10]["front_rgb"][1].permute(1, 2, 0).numpy(), front[t])
    ds.close()


def test_video_coded_cameras_are_decoded_once_and_match_the_lossless_frames(stack_rgb, tmp_path):
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.task_suite import make_instance

    path = tmp_path / "stack_0000.h5"  # the same seed as stack_rgb, its cameras coded as H.264
    record_demo(make_instance("stack", 0), path, RecordOptions(obs="rgb", video_quality="standard"))
    lossless, video = PolicyDataset([stack_rgb], obs="rgb"), PolicyDataset([path], obs="rgb")
    assert len(video) == len(lossless) and set(video._episodes[0].images) == set(CAMERAS)
    assert lossless._episodes[0].images == {}  # raw frames stay on disk, read per item
    for i in (0, len(video) // 2, len(video) - 1):
        for cam in CAMERAS:
            a, b = lossless[i][cam].numpy().astype(int), video[i][cam].numpy().astype(int)
            assert a.shape == b.shape and np.abs(a - b).mean() < 2.0
    batch = next(iter(DataLoader(video, batch_size=8, num_workers=2)))  # workers inherit the decoded frames
    assert batch["front_rgb"].shape[0] == 8
    lossless.close()
    video.close()


def test_anchor_is_the_calls_object_or_target_and_a_grasp_ends_at_it(swap):
    """pick: anchored at the object where it lay when the call began; the TCP position where the
    gripper closes is then about (0, 0, 0) in the anchor frame. place: anchored at its target."""
    ds = PolicyDataset([swap])
    with open_episode(swap) as ep:
        names = list(ep.stream_spec("object_poses").meta["names"])
        poses = np.asarray(ep.stream_data("object_poses")[:ep.frames])
    picks = [s for s in ds.segments if s.call.name == "pick"]
    places = [s for s in ds.segments if s.call.name == "place"]
    assert picks and places
    for seg in picks:
        np.testing.assert_allclose(seg.anchor, poses[seg.start, names.index(seg.call.args[0]), :3], atol=1e-6)
        action = ds._episodes[seg.episode].action[seg.start:seg.end]
        closes = int(np.argmax(action[:, 7] > 0.5))
        rel = action_to_anchor(action[None], seg.anchor)[0]
        assert np.abs(rel[closes, :2]).max() < 0.01 and abs(rel[closes, 2]) < 0.03
    for seg in places:
        item = ds[ds.samples.index(next(p for p in ds.samples if ds.segments[p.segment] is seg))]
        call = item["call"].numpy()
        np.testing.assert_allclose(item["anchor"].numpy(), anchor_of(ds.encoding.encode(
            seg.call, ds._poses(ds._episodes[seg.episode], seg.start), seg.resolved)), atol=1e-6)
        assert call[TARGET_POSE][:3].any()  # a place has a target: the anchor is its position at the start
    home = next(s for s in ds.segments if s.call.name == "home") if any(
        s.call.name == "home" for s in ds.segments) else None
    if home is not None:
        assert not home.anchor.any()


def test_barely_varying_dimensions_are_not_blown_up():
    """A dimension that varies by millimetres in the demonstrations (a top-down gripper's tilt) is
    scaled by MIN_HALF_RANGE, so a small deviation live stays a small input; stats saved before the
    floor keep their old rule (only a dimension below RANGE_EPS is merely centred)."""
    rows = np.array([[0.0, -0.5, 0.002], [1.0, 0.5, -0.002]], np.float32)
    stats = NormStats.from_arrays({"obs_state": rows})
    live = np.array([[0.5, 0.0, 0.06]], np.float32)
    z = stats.normalize("obs_state", live)
    np.testing.assert_allclose(z[0, :2], [0.0, 0.0], atol=1e-6)
    assert abs(z[0, 2] - 0.06 / MIN_HALF_RANGE) < 1e-4  # not 0.06 / 0.002 = 30
    np.testing.assert_allclose(stats.normalize("obs_state", rows)[:, :2], [[-1, -1], [1, 1]], atol=1e-6)
    old = NormStats.from_json({k: v for k, v in stats.to_json().items() if k != "min_half_range"})
    assert old.min_half_range == 0.0 and abs(old.normalize("obs_state", live)[0, 2] - 30.0) < 1e-3
    assert NormStats.from_json(stats.to_json()) == stats


@pytest.mark.parametrize("stream, frame", [("ee_pose", 7), ("action", 30), ("object_poses", 0),
                                           ("gripper_width", 39)])
def test_an_episode_holding_nan_is_skipped_with_the_stream_named(stream, frame, tmp_path):
    from tests.synthetic_episodes import write_pick_place

    good = write_pick_place(tmp_path / "good.h5")
    bad = write_pick_place(tmp_path / "bad.h5", nan_in=stream, nan_frame=frame)
    ds = PolicyDataset([good, bad])
    assert ds.paths == [good] and len(ds) == 40
    assert ds.skipped == [(str(bad), f"stream {stream} holds NaN or inf at frame {frame} (1 frame(s)); "
                                     "the episode is skipped")]
    stats = ds.norm_stats()
    assert all(np.isfinite(v).all() for v in (*stats.mins.values(), *stats.maxs.values()))


def test_norm_stats_that_are_not_finite_are_refused(tmp_path):
    stats = NormStats.from_arrays({"action": np.array([[0.0, 1.0], [1.0, 2.0]])})
    stats.save(tmp_path / "norm_stats.json")
    text = (tmp_path / "norm_stats.json").read_text().replace("2.0", "NaN")
    (tmp_path / "norm_stats.json").write_text(text)
    with pytest.raises(ValueError, match="max of 'action' is not finite in dimension"):
        NormStats.load(tmp_path)
    with pytest.raises(ValueError, match="not finite"):
        NormStats.from_arrays({"action": np.array([[0.0, np.inf]])})
