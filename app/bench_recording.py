"""The live-recording benchmark (`python main.py bench recording`): two 640x480 RGB-D cameras at 30 fps
plus 100 Hz proprioception, each producer in its own thread paced on the monotonic clock, all written
by one EpisodeWriter as a live take with RealSense cameras would be.

The camera frames are the simulated workcell's renders with sensor-like noise (app/bench_frames.py),
cycled from a baked 60-frame loop. It reports frames written per stream, samples dropped (the writer
never blocks a producer: a full queue drops), the time from "stop" to a finished file that opens and
decodes, the file size with each stream's share, and the size of a 10-minute take at that rate.
Goals (issue 14, 2 cores): 0 dropped, stop to readable <= 0.5 s, <= 4 GB for 10 minutes.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from app.bench_frames import noisy_loop
from recorders.episode_file import EpisodeMeta, StreamSpec, open_episode
from recorders.episode_writer import EpisodeWriter
from recorders.video_quality import DEFAULT_DEVICE_QUALITY

WIDTH, HEIGHT, FPS, PROPRIO_HZ = 640, 480, 30.0, 100.0
CAMERAS = ("front", "wrist")
PROPRIO = {"action": 8, "joint_positions": 7, "joint_velocities": 7, "ee_pose": 7, "gripper_width": 1}
QUEUE_SIZE = 256  # ~0.4 s of all streams; bounds memory to ~250 MB if the disk stalls
LOOP_FRAMES = 60
TEN_MINUTES_S = 600.0


def stream_specs() -> list[StreamSpec]:
    specs = [StreamSpec(name, "array", (n,), "float32", PROPRIO_HZ) for name, n in PROPRIO.items()]
    intrinsics = {"fx": 600.0, "fy": 600.0, "cx": WIDTH / 2, "cy": HEIGHT / 2}
    for cam in CAMERAS:
        specs += [StreamSpec(f"{cam}_rgb", "rgb", (HEIGHT, WIDTH, 3), "uint8", FPS, intrinsics),
                  StreamSpec(f"{cam}_depth", "depth", (HEIGHT, WIDTH), "uint16", FPS,
                             {**intrinsics, "depth_scale": 0.001})]
    return specs


def _ticks(period: float, stop: threading.Event, t0: float):
    """Sample times every `period` s after t0 until `stop`; a late tick is produced late, not skipped."""
    k = 0
    while not stop.is_set():
        due = t0 + k * period
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield due - t0
        k += 1


def bench_recording(out_dir: Path, seconds: float = 60.0, video_quality: str = DEFAULT_DEVICE_QUALITY,
                    progress: Callable[[float], None] | None = None, frames: dict | None = None) -> dict:
    """Record `seconds` into out_dir, measure, delete the file, return the figures. `frames`: the
    noisy loop (`noisy_loop()`), if already made."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loop = frames if frames is not None else noisy_loop(WIDTH, HEIGHT, LOOP_FRAMES)
    specs = stream_specs()
    meta = EpisodeMeta(task="bench", instruction="synthetic recording benchmark", robot="sim",
                       control_hz=PROPRIO_HZ, clock="monotonic")
    path = out_dir / "bench_recording.h5"
    path.unlink(missing_ok=True)
    writer = EpisodeWriter(path, meta, specs, queue_size=QUEUE_SIZE, video_quality=video_quality)
    stop = threading.Event()
    produced = {s.name: 0 for s in specs}  # each key is counted by one thread only
    t0 = time.monotonic() + 0.05

    def camera(cam: str, offset: int) -> None:
        rgbs, depths = loop[cam]
        for i, t in enumerate(_ticks(1.0 / FPS, stop, t0)):
            k = (i + offset) % len(rgbs)
            for name, frame in ((f"{cam}_rgb", rgbs[k]), (f"{cam}_depth", depths[k])):
                writer.append(name, t, frame)
                produced[name] += 1

    def proprio() -> None:
        for t in _ticks(1.0 / PROPRIO_HZ, stop, t0):
            q = np.sin(t + np.arange(8, dtype=np.float32))
            for name, n in PROPRIO.items():
                writer.append(name, t, q[:n])
                produced[name] += 1

    threads = [threading.Thread(target=camera, args=(c, 7 * i), name=f"bench-{c}") for i, c in enumerate(CAMERAS)]
    threads.append(threading.Thread(target=proprio, name="bench-proprio"))
    for th in threads:
        th.start()
    try:
        end = t0 + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(0.5, left))
            if progress is not None:
                progress(min(1.0, (time.monotonic() - t0) / seconds))
    finally:
        stop.set()
        stopped = time.perf_counter()
        for th in threads:
            th.join()
    final = writer.finish(success=None, labels=[])
    with open_episode(final) as ep:
        counts = {name: ep.stream_count(name) for name in ep.stream_names}
        ep.stream_data("front_rgb")[-1]  # the last frame decodes
    stop_to_readable = time.perf_counter() - stopped
    dropped = {s.name: writer.dropped[s.name] for s in specs}
    size_mb = final.stat().st_size / 1e6
    with open_episode(final) as ep:
        per_stream = {name: round(ep.stream_bytes(name) / 1e6, 1) for name in ep.stream_names}
    final.unlink()
    return {
        "seconds": seconds,
        "video_quality": video_quality,
        "file_mb_per_stream": per_stream,
        "gb_per_10_minutes": round(size_mb / 1e3 * TEN_MINUTES_S / seconds, 2),
        "frames_per_stream": counts,
        "produced_per_stream": produced,
        "dropped_frames": sum(dropped.values()),
        "dropped_per_stream": dropped,
        "stop_to_readable_s": round(stop_to_readable, 3),
        "file_mb": round(size_mb, 1),
    }
