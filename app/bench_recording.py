"""The live-recording benchmark: two synthetic 640x480 RGB-D cameras at 30 fps plus 100 Hz
proprioception, each produced by its own thread on the wall clock, written by one EpisodeWriter.

Reports dropped frames (the writer never blocks producers; a full queue drops) and the time from
"stop" to a finished file that opens and reads back.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from recorders.episode_file import EpisodeMeta, StreamSpec, open_episode
from recorders.episode_writer import EpisodeWriter

WIDTH, HEIGHT, FPS, PROPRIO_HZ = 640, 480, 30.0, 100.0
CAMERAS = ("front", "wrist")


def _camera_frames(seed: int):
    """Cheap but changing frames: a fixed textured base rolled by the frame counter."""
    rng = np.random.default_rng(seed)
    base = (np.indices((HEIGHT, WIDTH)).sum(axis=0) % 256).astype(np.uint8)
    noise = rng.integers(0, 24, (HEIGHT, WIDTH), dtype=np.uint8)
    rgb_base = np.stack([base, base[::-1], (base + noise)], axis=-1)
    depth_base = (800 + 4 * base.astype(np.uint16) + noise)
    i = 0
    while True:
        yield np.roll(rgb_base, i * 3, axis=1), np.roll(depth_base, i * 2, axis=0)
        i += 1


def _paced(period: float, stop: threading.Event, t0: float):
    """Yields sample times every `period` seconds until `stop`; late ticks are not skipped."""
    k = 0
    while not stop.is_set():
        due = t0 + k * period
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield due - t0
        k += 1


def bench_recording(out_dir: Path, seconds: float = 60.0, progress=None) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    streams = [StreamSpec(n, "array", (7,), "float32", PROPRIO_HZ) for n in ("joint_positions", "joint_velocities",
                                                                              "ee_pose")]
    streams += [StreamSpec("gripper_width", "array", (1,), "float32", PROPRIO_HZ),
                StreamSpec("action", "array", (8,), "float32", PROPRIO_HZ)]
    for cam in CAMERAS:
        streams += [StreamSpec(f"{cam}_rgb", "rgb", (HEIGHT, WIDTH, 3), "uint8", FPS),
                    StreamSpec(f"{cam}_depth", "depth", (HEIGHT, WIDTH), "uint16", FPS)]
    meta = EpisodeMeta(task="bench", instruction="synthetic recording benchmark", robot="synthetic",
                       control_hz=PROPRIO_HZ, clock="monotonic")
    path = out_dir / "bench_recording.h5"
    writer = EpisodeWriter(path, meta, streams, queue_size=256)
    stop = threading.Event()
    produced = {s.name: 0 for s in streams}
    t0 = time.monotonic() + 0.05

    def camera(cam: str, seed: int):
        frames = _camera_frames(seed)
        for t in _paced(1.0 / FPS, stop, t0):
            rgb, depth = next(frames)
            writer.append(f"{cam}_rgb", t, rgb)
            writer.append(f"{cam}_depth", t, depth)
            produced[f"{cam}_rgb"] += 1
            produced[f"{cam}_depth"] += 1

    def proprio():
        for t in _paced(1.0 / PROPRIO_HZ, stop, t0):
            q = np.sin(t + np.arange(7, dtype=np.float32))
            for name, value in (("joint_positions", q), ("joint_velocities", np.cos(q)), ("ee_pose", q),
                                ("gripper_width", q[:1]), ("action", np.append(q, 0.0))):
                writer.append(name, t, value.astype(np.float32))
                produced[name] += 1

    threads = [threading.Thread(target=camera, args=(c, i), daemon=True) for i, c in enumerate(CAMERAS)]
    threads.append(threading.Thread(target=proprio, daemon=True))
    for th in threads:
        th.start()
    end = t0 + seconds
    while time.monotonic() < end:
        time.sleep(min(0.5, max(0.0, end - time.monotonic())))
        if progress is not None:
            progress(min(1.0, (time.monotonic() - t0) / seconds))
    stop.set()
    for th in threads:
        th.join()
    stopped = time.perf_counter()
    final = writer.finish(success=None, labels=[])
    with open_episode(final) as ep:
        counts = {name: ep.stream_count(name) for name in ep.stream_names}
        ep.stream_data("front_rgb")[-1]  # the last frame decodes
    stop_to_readable = time.perf_counter() - stopped
    dropped = dict(writer.dropped)
    result = {
        "seconds": seconds,
        "frames_per_stream": counts,
        "produced_per_stream": produced,
        "dropped_frames": sum(dropped.values()),
        "dropped_per_stream": dropped,
        "stop_to_readable_s": round(stop_to_readable, 3),
        "file_mb": round(final.stat().st_size / 1e6, 1),
    }
    final.unlink()
    return result
