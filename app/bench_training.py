"""`python main.py bench training [--json]`: how fast the policy trains on this machine, and whether
video-coded camera streams slow it down.

It records `EPISODES` scripted stack demonstrations with both 128x128 cameras twice, once lossless
and once as H.264 (`standard`), then for each:
- the dataset: seconds to build it (a video-coded episode is decoded once, here), and samples per
  second through the DataLoader without the model (10 batches of 64);
- a training step of the default rgb policy, data loading included: the median of `STEPS` steps
  after the first two (batch 64, CPU, one data-loading process, as `train policy` runs by default),
  in the order lossless, video, video, lossless, averaged per layout (a second run in a row came out
  up to 10% slower, whichever layout it was).
The state policy's step time is measured the same way, and so is each of `RGB_VARIANTS` (the rgb
policy's image size, crop, encoder and frames: what makes it trainable on a CPU; README, "The rgb
policy") on the lossless demos. Samples per second = batch / step time.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from app.errors import print_json
from models.policy_config import OLDER_DEFAULTS

EPISODES = 4
STEPS = 6
BATCH = 64
LAYOUTS = ("lossless", "standard")
TINY = False  # the default-size policies; True: the tiny ones (the bench's own test)
_BEFORE = {k: OLDER_DEFAULTS[k] for k in ("vision_widths", "vision_depths", "image_size", "crop", "image_frames")}
_LIGHT = dict(vision_widths=(16, 32, 64, 128), vision_depths=(1, 1, 1, 1))
RGB_VARIANTS = {  # name -> train policy options over the defaults
    "128 px, widths 32-256 x2, both frames (the first rgb policy)": _BEFORE,
    "64 px": {**_BEFORE, "image_size": 64},
    "64 px, latest frame": {**_BEFORE, "image_size": 64, "image_frames": 1},
    "128 px, widths 16-128 x1": {**_BEFORE, **_LIGHT},
    "64 px, widths 16-128 x1": {**_BEFORE, **_LIGHT, "image_size": 64},
    "72 px, crop 0.9, widths 16-128 x1, latest frame": {**_LIGHT, "image_size": 72, "crop": 0.9, "image_frames": 1},
}


def _record(folder: Path, quality: str) -> list[Path]:
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.task_suite import make_instance

    paths = []
    for seed in range(EPISODES):
        path = folder / f"stack_{seed:04d}.h5"
        record_demo(make_instance("stack", seed), path, RecordOptions(obs="rgb", video_quality=quality))
        paths.append(path)
    return paths


def _data_path(paths: list[Path]) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from models.policy_dataset import PolicyDataset

    t = time.perf_counter()
    dataset = PolicyDataset(paths, obs="rgb")
    build_s = time.perf_counter() - t
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(0))
    t, seen = time.perf_counter(), 0
    for k, batch in zip(range(10), loader):
        seen += batch["front_rgb"].shape[0]
    rate = seen / (time.perf_counter() - t)
    dataset.close()
    return {"dataset_build_s": round(build_s, 2), "loader_samples_per_s": round(rate)}


def _step_time(data: Path, out: Path, obs: str, **extra) -> float:
    from models.policy_config import TrainOptions
    from models.train_policy import train_policy

    stamps: list[float] = []
    options = TrainOptions(data=(str(data),), out=str(out), obs=obs, steps=STEPS, batch_size=BATCH,
                           checkpoint_every=0, device="cpu", tiny=TINY, **extra)
    train_policy(options, progress=lambda step, total, metrics: stamps.append(time.perf_counter()))
    return statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:]))


def samples_per_s(step_s: float) -> float:
    """Training windows a second at `step_s` seconds a step, to 3 significant figures (a slow step on a
    busy machine keeps its precision: 0.445, not 0.4)."""
    return float(f"{BATCH / step_s:.3g}")


def bench_training() -> dict:
    result = {"episodes": EPISODES, "batch": BATCH, "steps_timed": STEPS - 2, "layouts": {}}
    with tempfile.TemporaryDirectory(prefix="code2act-bench-training-") as tmp:
        tmp = Path(tmp)
        for quality in LAYOUTS:
            print(f"recording {EPISODES} demos with cameras ({quality}) ...", file=sys.stderr)
            paths = _record(tmp / quality, quality)
            size_mb = sum(p.stat().st_size for p in paths) / 1e6
            result["layouts"][quality] = {"episodes_mb": round(size_mb, 1), **_data_path(paths)}
        steps: dict[str, list[float]] = {q: [] for q in LAYOUTS}
        for k, quality in enumerate((*LAYOUTS, *reversed(LAYOUTS))):
            print(f"training the rgb policy on the {quality} demos for {STEPS} steps ...", file=sys.stderr)
            steps[quality].append(_step_time(tmp / quality, tmp / f"run_rgb_{k}", "rgb"))
        for quality, times in steps.items():
            step = statistics.mean(times)
            result["layouts"][quality].update({"rgb_step_s": round(step, 3), "rgb_step_s_runs": [round(t, 3) for t in times],
                                               "rgb_samples_per_s": samples_per_s(step)})
        result["rgb_variants"] = {}
        for k, (name, extra) in enumerate(RGB_VARIANTS.items()):
            print(f"training the rgb policy ({name}) for {STEPS} steps ...", file=sys.stderr)
            step = _step_time(tmp / "lossless", tmp / f"run_variant_{k}", "rgb", **extra)
            result["rgb_variants"][name] = {"step_s": round(step, 3), "samples_per_s": samples_per_s(step)}
        print(f"training the state policy for {STEPS} steps ...", file=sys.stderr)
        step = _step_time(tmp / "lossless", tmp / "run_state", "state")
        result["state_step_s"] = round(step, 3)
        result["state_samples_per_s"] = samples_per_s(step)
    return result


def run_bench_training(args) -> int:
    result = bench_training()
    if args.json:
        print_json(result)
        return 0
    for quality, r in result["layouts"].items():
        print(f"rgb policy on {quality} episodes: {r['rgb_step_s']} s a step ({r['rgb_samples_per_s']} samples/s); "
              f"dataset built in {r['dataset_build_s']} s, loader alone {r['loader_samples_per_s']} samples/s")
    for name, r in result["rgb_variants"].items():
        print(f"rgb policy, {name}: {r['step_s']} s a step ({r['samples_per_s']} samples/s)")
    print(f"state policy: {result['state_step_s']} s a step ({result['state_samples_per_s']} samples/s)")
    return 0
