"""Video-coded camera streams: H.264 colour and FFV1 depth written by the episode writer's encoder
process, read back frame by frame in any order, and a dying encoder that costs only its streams."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from recorders.episode_file import EpisodeMeta, StreamSpec, episode_summary, open_episode
from recorders.episode_writer import EpisodeWriter
from recorders.video_quality import encoding_for

H, W, N, HZ = 48, 64, 40, 30.0


def frames(n: int = N, h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    """Smooth moving colour with a little noise, (n, h, w, 3); depth in mm with noise, (n, h, w)."""
    rng = np.random.default_rng(0)
    y, x = np.indices((h, w))
    rgb = np.stack([np.stack([(x * 4 + i * 3) % 256, (y * 5 + i) % 256, (x + y + 2 * i) % 256], -1)
                    for i in range(n)]) + rng.integers(0, 6, (n, h, w, 3))
    depth = 700 + 3 * x[None] + y[None] + rng.integers(0, 9, (n, h, w))
    return rgb.astype(np.uint8), depth.astype(np.uint16)


def specs(h: int = H, w: int = W) -> list[StreamSpec]:
    return [StreamSpec("action", "array", (8,), "float32", HZ),
            StreamSpec("front_rgb", "rgb", (h, w, 3), "uint8", HZ, {"fx": 50.0}),
            StreamSpec("front_depth", "depth", (h, w), "uint16", HZ, {"depth_scale": 0.001})]


def record(path, quality: str, h: int = H, w: int = W, drop_when_full: bool = False):
    rgb, depth = frames(N, h, w)
    writer = EpisodeWriter(path, EpisodeMeta("stack", "stack them", "sim", HZ), specs(h, w),
                           drop_when_full=drop_when_full, video_quality=quality)
    for i in range(N):
        t = i / HZ
        writer.append("action", t, np.full(8, i, np.float32))
        writer.append("front_rgb", t, rgb[i])
        writer.append("front_depth", t, depth[i])
    return writer, rgb, depth


def test_video_round_trip(tmp_path):
    writer, rgb, depth = record(tmp_path / "ep.h5", "standard")
    path = writer.finish(True, [])
    assert writer.dropped == {} or sum(writer.dropped.values()) == 0
    with open_episode(path) as ep:
        assert ep.format_version == 2
        for s in specs():
            assert ep.stream_spec(s.name) == s
            assert np.array_equal(ep.stream_time(s.name), np.arange(N) / HZ)
        summary = episode_summary(ep)["streams"]
        assert summary["front_rgb"]["encoding"] == "h264 crf 23" and summary["front_depth"]["encoding"] == "ffv1 (lossless)"
        assert summary["front_rgb"]["count"] == N and summary["action"]["encoding"] == "raw"
        assert np.array_equal(ep.stream_data("front_depth")[:], depth)  # depth is lossless
        decoded = ep.stream_data("front_rgb")[:]
        assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
        assert np.abs(decoded.astype(int) - rgb).mean() < 7.0
        assert np.abs(decoded[10:].astype(int) - rgb[:-10]).mean() > 15.0  # and frame i is frame i


def test_frames_decode_the_same_in_any_order(tmp_path):
    path = record(tmp_path / "ep.h5", "high")[0].finish(None, [])
    with open_episode(path) as ep:
        video = ep.stream_data("front_rgb")
        sequential = video[:]
        order = np.random.default_rng(3).permutation(N)
    with open_episode(path) as ep:  # a fresh decoder, jumping about
        video = ep.stream_data("front_rgb")
        for i in order:
            assert np.array_equal(video[int(i)], sequential[i])
        assert np.array_equal(video[-1], sequential[-1])
        assert np.array_equal(video[5:20:3], sequential[5:20:3])
        assert np.array_equal(video[[7, 2, 7]], sequential[[7, 2, 7]])
        assert np.array_equal(video[:, 3, 4], sequential[:, 3, 4])
        assert np.array_equal(video[9, 1], sequential[9, 1])
        assert np.array_equal(np.asarray(video), sequential) and len(video) == N
        frame = video[4]
        frame[:] = 0  # the caller's copy: the decoder's cache is untouched
        assert np.array_equal(video[4], sequential[4])
        with pytest.raises(IndexError):
            video[N]


def test_odd_sizes_and_lossless_stay_as_before(tmp_path):
    odd = record(tmp_path / "odd.h5", "small", h=45, w=61)[0].finish(None, [])
    with open_episode(odd) as ep:
        assert ep.stream_encoding("front_rgb")["pix_fmt"] == "yuv444p"  # 4:2:0 needs even sides
        assert ep.stream_data("front_rgb")[:].shape == (N, 45, 61, 3)
    assert encoding_for("rgb", (480, 640, 3), "standard")["pix_fmt"] == "yuv420p"
    assert encoding_for("rgb", (128, 128, 3), "standard")["pix_fmt"] == "yuv444p"
    writer, rgb, depth = record(tmp_path / "raw.h5", "lossless")
    with open_episode(writer.finish(None, [])) as ep:
        assert ep.format_version == 1 and ep.stream_encoding("front_rgb") is None  # older readers still open it
        assert np.array_equal(ep.stream_data("front_rgb")[:], rgb)
    assert encoding_for("array", (8,), "standard") is None
    with pytest.raises(ValueError, match="video quality"):
        encoding_for("rgb", (H, W, 3), "best")


def test_a_dead_encoder_costs_only_its_streams(tmp_path):
    rgb, depth = frames()
    writer = EpisodeWriter(tmp_path / "ep.h5", EpisodeMeta("stack", "stack them", "sim", HZ), specs(),
                           drop_when_full=False, video_quality="standard")
    for i in range(10):
        writer.append("action", i / HZ, np.full(8, i, np.float32))
        writer.append("front_rgb", i / HZ, rgb[i])
        writer.append("front_depth", i / HZ, depth[i])
    encoder = writer._encoder
    while encoder.in_flight():  # what was handed over is back before the process dies
        encoder._closed.wait(0.01)
    os.kill(encoder._process.pid, signal.SIGKILL)
    encoder._closed.wait(30)
    assert encoder.failure is not None
    for i in range(10, N):  # the take goes on: the arrays are kept, the camera frames refused
        writer.append("action", i / HZ, np.full(8, i, np.float32))
        assert writer.append("front_rgb", i / HZ, rgb[i]) is False
    path = writer.finish(None, [])
    with open_episode(path) as ep:
        assert ep.frames == N
        assert ep.stream_count("front_rgb") == 10 and np.array_equal(ep.stream_data("front_depth")[:], depth[:10])
        faults = {f["stream"]: f for f in ep.faults}
        assert set(faults) == {"front_rgb", "front_depth"} and "video encoding stopped" in faults["front_rgb"]["text"]
    assert writer.dropped["front_rgb"] == N - 10
