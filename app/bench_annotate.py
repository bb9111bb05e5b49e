"""The annotation benchmark: a 10-minute episode with two cameras, opened and scrubbed.

Writes a synthetic 10-minute, 10 Hz episode with front and wrist RGB streams (128x128, one
Blosc-LZ4 chunk per frame) plus proprioception, then measures the time from "open" to the first
frame of both cameras being decoded, and how many frames per second random scrubbing reaches
(both cameras decoded per frame). `frame_sink`, if given, receives every decoded frame pair (the
GUI benchmark passes a function that draws them), so the figure covers display too.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from recorders.episode_file import EpisodeMeta, StreamSpec, open_episode
from recorders.episode_writer import EpisodeWriter

MINUTES = 10.0
HZ = 10.0
SIZE = 128


def write_long_episode(path: Path, minutes: float = MINUTES) -> Path:
    n = int(minutes * 60 * HZ)
    streams = [StreamSpec("action", "array", (8,), "float32", HZ),
               StreamSpec("gripper_width", "array", (1,), "float32", HZ),
               StreamSpec("ee_pose", "array", (7,), "float32", HZ),
               StreamSpec("front_rgb", "rgb", (SIZE, SIZE, 3), "uint8", HZ),
               StreamSpec("wrist_rgb", "rgb", (SIZE, SIZE, 3), "uint8", HZ)]
    meta = EpisodeMeta("stack", "a long synthetic episode", "sim", HZ, clock="sim")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    with EpisodeWriter(path, meta, streams, drop_when_full=False) as w:
        for i in range(n):
            t = i / HZ
            w.append("action", t, np.full(8, np.sin(t), np.float32))
            w.append("gripper_width", t, np.array([0.04 * (i // 50 % 2)], np.float32))
            w.append("ee_pose", t, np.full(7, np.cos(t), np.float32))
            frame = np.roll(base, i, axis=1)
            w.append("front_rgb", t, frame)
            w.append("wrist_rgb", t, frame[::-1])
        return w.finish(True, [{"start": 0, "end": n, "code": "idle", "source": "auto"}])


def bench_annotate(out_dir: Path, frame_sink: Callable[[np.ndarray, np.ndarray], None] | None = None,
                   scrub_frames: int = 600) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    path = write_long_episode(out_dir / "long_episode.h5")
    write_s = time.perf_counter() - t

    t = time.perf_counter()
    ep = open_episode(path)
    front, wrist = ep.stream_data("front_rgb"), ep.stream_data("wrist_rgb")
    times = ep.stream_time("action")
    first = (front[0], wrist[0])
    if frame_sink is not None:
        frame_sink(*first)
    first_frame_s = time.perf_counter() - t

    rng = np.random.default_rng(1)
    order = np.clip(np.cumsum(rng.integers(-30, 31, scrub_frames)) + len(times) // 2, 0, len(times) - 1)
    t = time.perf_counter()
    for i in order:
        pair = (front[int(i)], wrist[int(i)])
        if frame_sink is not None:
            frame_sink(*pair)
    scrub_fps = len(order) / (time.perf_counter() - t)
    frames = ep.frames
    ep.close()
    size_mb = path.stat().st_size / 1e6
    path.unlink()
    return {"episode_minutes": MINUTES, "frames": frames, "file_mb": round(size_mb, 1),
            "write_s": round(write_s, 2), "open_to_first_frame_s": round(first_frame_s, 4),
            "scrub_frames_per_s": round(scrub_fps, 1), "display": frame_sink is not None,
            "goals": {"open_to_first_frame_s": 1.0, "scrub_frames_per_s": 30.0}}
