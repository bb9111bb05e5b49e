"""The annotation benchmark: a 10-minute episode with two cameras, opened and scrubbed.

Two layouts of the same 10-minute, 10 Hz take (proprioception, front and wrist colour):
  lossless   128x128 frames at the control rate, one Blosc-LZ4 chunk per frame (a simulated take);
  video      640x480 frames at 30 fps, H.264 at the standard quality (a RealSense take), made of the
             simulated workcell's renders with sensor noise (app/bench_frames.py).
For each it measures the time from "open" to the first frame of both cameras being decoded, and how
many control frames per second random scrubbing reaches (both cameras decoded per frame; a step of up
to 30 control frames, 90 video frames, always lands in another GOP). `frame_sink`, if given, receives
every decoded frame pair (the GUI benchmark passes a function that draws them), so the figure covers
display too.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from app.bench_frames import noisy_loop
from recorders.episode_file import EpisodeMeta, StreamSpec, open_episode
from recorders.episode_writer import EpisodeWriter

MINUTES = 10.0
HZ = 10.0
SIZE = 128
VIDEO_W, VIDEO_H, VIDEO_FPS = 640, 480, 30.0
LAYOUTS = ("lossless", "video")


def write_long_episode(path: Path, minutes: float = MINUTES, layout: str = "lossless") -> Path:
    n = int(minutes * 60 * HZ)
    video = layout == "video"
    shape, fps = ((VIDEO_H, VIDEO_W, 3), VIDEO_FPS) if video else ((SIZE, SIZE, 3), HZ)
    streams = [StreamSpec("action", "array", (8,), "float32", HZ),
               StreamSpec("gripper_width", "array", (1,), "float32", HZ),
               StreamSpec("ee_pose", "array", (7,), "float32", HZ),
               StreamSpec("front_rgb", "rgb", shape, "uint8", fps),
               StreamSpec("wrist_rgb", "rgb", shape, "uint8", fps)]
    meta = EpisodeMeta("stack", "a long synthetic episode", "sim", HZ, clock="sim")
    if video:
        loop = noisy_loop(VIDEO_W, VIDEO_H, frames=60)
        front, wrist = loop["front"][0], loop["wrist"][0]
    else:
        base = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        front = wrist = None
    per_tick = int(fps / HZ)
    with EpisodeWriter(path, meta, streams, drop_when_full=False,
                       video_quality="standard" if video else "lossless") as w:
        for i in range(n):
            t = i / HZ
            w.append("action", t, np.full(8, np.sin(t), np.float32))
            w.append("gripper_width", t, np.array([0.04 * (i // 50 % 2)], np.float32))
            w.append("ee_pose", t, np.full(7, np.cos(t), np.float32))
            for k in range(per_tick):
                j = i * per_tick + k
                if video:
                    w.append("front_rgb", j / fps, front[j % len(front)])
                    w.append("wrist_rgb", j / fps, wrist[(j + 7) % len(wrist)])
                else:
                    frame = np.roll(base, i, axis=1)
                    w.append("front_rgb", t, frame)
                    w.append("wrist_rgb", t, frame[::-1])
        return w.finish(True, [{"start": 0, "end": n, "code": "idle", "source": "auto"}])


def scrub_order(frames: int, steps: int, seed: int = 1) -> np.ndarray:
    """A random walk of control frames, steps of up to 30, from the middle."""
    rng = np.random.default_rng(seed)
    return np.clip(np.cumsum(rng.integers(-30, 31, steps)) + frames // 2, 0, frames - 1)


def bench_annotate(out_dir: Path, frame_sink: Callable[[np.ndarray, np.ndarray], None] | None = None,
                   scrub_frames: int = 600, layouts: tuple[str, ...] = LAYOUTS) -> dict:
    """Figures of each layout, headless: decoding only (plus `frame_sink`)."""
    return {layout: _bench_layout(Path(out_dir), layout, frame_sink, scrub_frames) for layout in layouts}


def _bench_layout(out_dir: Path, layout: str, frame_sink, scrub_frames: int) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    path = write_long_episode(out_dir / f"long_{layout}.h5", layout=layout)
    write_s = time.perf_counter() - t

    t = time.perf_counter()
    ep = open_episode(path)
    front, wrist = ep.stream_data("front_rgb"), ep.stream_data("wrist_rgb")
    control_t, camera_t = ep.stream_time("action"), ep.stream_time("front_rgb")
    rows = np.clip(np.searchsorted(camera_t, control_t + 1e-6, side="right") - 1, 0, len(camera_t) - 1)
    first = (front[0], wrist[0])
    if frame_sink is not None:
        frame_sink(*first)
    first_frame_s = time.perf_counter() - t

    order = scrub_order(len(control_t), scrub_frames)
    t = time.perf_counter()
    for i in order:
        pair = (front[int(rows[i])], wrist[int(rows[i])])
        if frame_sink is not None:
            frame_sink(*pair)
    scrub_fps = len(order) / (time.perf_counter() - t)
    frames, shape = ep.frames, front.shape
    ep.close()
    size_mb = path.stat().st_size / 1e6
    path.unlink()
    return {"episode_minutes": MINUTES, "frames": frames, "camera_frames": int(shape[0]),
            "camera_size": f"{shape[2]}x{shape[1]}", "file_mb": round(size_mb, 1),
            "write_s": round(write_s, 2), "open_to_first_frame_s": round(first_frame_s, 4),
            "scrub_frames_per_s": round(scrub_fps, 1), "display": frame_sink is not None,
            "goals": {"open_to_first_frame_s": 1.0, "scrub_frames_per_s": 30.0}}
