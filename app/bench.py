"""`python main.py bench recording [--json]`: recording speed figures (goals in the README).

- scripted demonstration generation in multiples of real time, state-only and with both cameras;
- two 640x480 RGB-D cameras at 30 fps (renders with sensor-like noise) plus 100 Hz proprioception for
  --seconds at --video-quality: dropped frames, the time from stop to a saved, readable file, and
  the file size (per stream, and projected to a 10-minute take).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from app.errors import print_json

DEMO_TASKS = ("stack", "swap")
DEMO_SEEDS = (0, 1)


def demo_generation_speed(out: Path, obs: str) -> dict:
    """Episode seconds per wall second when recording scripted demonstrations to disk."""
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.task_suite import make_instance

    episode_s = wall_s = 0.0
    for task in DEMO_TASKS:
        for seed in DEMO_SEEDS:
            result = record_demo(make_instance(task, seed), out / f"{obs}_{task}_{seed}.h5", RecordOptions(obs=obs))
            episode_s += result.episode_seconds
            wall_s += result.wall_seconds
    return {"episode_seconds": round(episode_s, 2), "wall_seconds": round(wall_s, 2),
            "x_real_time": round(episode_s / wall_s, 2)}


def run_bench(args) -> int:
    from app.bench_recording import bench_recording

    seconds = 60.0 if args.seconds is None else args.seconds
    quality = getattr(args, "video_quality", None) or "standard"

    with tempfile.TemporaryDirectory(prefix="code2act-bench-") as tmp:
        tmp = Path(tmp)
        print("scripted demos, state only ...", file=sys.stderr)
        state = demo_generation_speed(tmp, "state")
        print("scripted demos, both cameras ...", file=sys.stderr)
        rgb = demo_generation_speed(tmp, "rgb")
        print(f"noisy RGB-D recording for {seconds:g} s at video quality {quality} ...", file=sys.stderr)
        streams = bench_recording(tmp / "synthetic", seconds=seconds, video_quality=quality)
    result = {
        "scripted_demo_x_real_time": {"state": state["x_real_time"], "rgb_both_cameras": rgb["x_real_time"],
                                      "goal": {"state": 20.0, "rgb_both_cameras": 2.0}},
        "scripted_demo_detail": {"state": state, "rgb_both_cameras": rgb},
        "synthetic_rgbd_recording": streams,
        "goals": {"dropped_frames": 0, "stop_to_readable_s": 0.5, "gb_per_10_minutes": 4.0},
    }
    if args.json:
        print_json(result)
    else:
        print(f"scripted demos: {state['x_real_time']}x real time state-only (goal 20x), "
              f"{rgb['x_real_time']}x with both cameras (goal 2x)")
        print(f"noisy RGB-D ({quality}): {streams.get('dropped_frames')} dropped frames (goal 0), "
              f"stop to readable file {streams.get('stop_to_readable_s')} s (goal 0.5 s), "
              f"{streams.get('gb_per_10_minutes')} GB per 10 minutes (goal 4 GB)")
    return 0
