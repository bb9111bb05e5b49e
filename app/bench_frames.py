"""Camera frames for the storage benchmarks: the simulated workcell's renders with sensor-like noise.

Rendered frames are clean: flat colours and exact depth, which any codec shrinks to almost nothing.
A RealSense D435 delivers neither, so the benches add what its datasheet and Intel's depth-quality
notes describe before measuring sizes:
- colour: read noise plus shot noise, independent per pixel, channel and frame:
  sigma^2 = READ_SIGMA^2 + SHOT_GAIN * level (about 2 levels in the dark, 3.5 in white);
- depth: stereo matching error. Depth z comes from disparity d = f B / z; the matcher's subpixel error
  (SUBPIXEL_RMS = 0.08 px, spatially correlated over its 3x3 window) gives an RMS depth error of
  z^2 * 0.08 / (f B), ~3.5 mm at 1 m. Depth is quantised to the D435's 1 mm unit; pixels at
  occlusion edges (a steep depth step) and 0.5% at random have no depth (0), as on the real sensor.

`noisy_loop` renders `frames` control ticks of a scripted stack demonstration from both cameras at
the given size (MuJoCo, as the simulated workcell does) and bakes fresh noise into every frame, so a
bench can cycle them at 30 fps without paying for noise while it measures. A loop of 60 frames is
4 colour GOPs long, so no codec reference crosses the loop's seam.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

READ_SIGMA, SHOT_GAIN = 2.0, 0.03  # colour noise, in 8-bit levels
FOCAL_PX, BASELINE_MM, SUBPIXEL_RMS = 385.0, 50.0, 0.08  # D435 depth module at 640x480
EDGE_STEP_MM, DROPOUT = 30.0, 0.005  # no depth across steeper steps, and at random


def noisy_rgb(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 with read and shot noise."""
    level = rgb.astype(np.float32)
    sigma = np.sqrt(READ_SIGMA ** 2 + SHOT_GAIN * level)
    noisy = level + rng.standard_normal(rgb.shape, dtype=np.float32) * sigma
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def noisy_depth(depth_mm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W) uint16 millimetres with stereo-matching noise, holes at occlusion edges and dropouts."""
    z = np.maximum(depth_mm.astype(np.float32), 1.0)
    n = rng.standard_normal(z.shape, dtype=np.float32)
    window = sum(np.roll(np.roll(n, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 3.0  # sigma 1
    disparity = FOCAL_PX * BASELINE_MM / z + SUBPIXEL_RMS * window
    out = np.clip(np.round(FOCAL_PX * BASELINE_MM / np.maximum(disparity, 1e-3)), 0, 65535).astype(np.uint16)
    gy, gx = np.gradient(z)
    out[(np.abs(gx) + np.abs(gy) > EDGE_STEP_MM) | (depth_mm == 0) | (rng.random(z.shape) < DROPOUT)] = 0
    return out


def rendered_frames(width: int, height: int, frames: int, seed: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """camera -> (rgb (F, H, W, 3), depth (F, H, W) mm): the first `frames` ticks of the oracle stacking
    (repeated from the start if the demonstration is shorter), rendered by the simulated workcell."""
    from recorders.cell.scene import CameraSettings
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.episode_file import open_episode
    from recorders.task_suite import make_instance

    with tempfile.TemporaryDirectory(prefix="code2act-frames-") as tmp:
        path = Path(tmp) / "stack.h5"
        inst = make_instance("stack", seed, cameras=CameraSettings(width, height, depth=True))
        record_demo(inst, path, RecordOptions(obs="rgb", video_quality="lossless"))
        with open_episode(path) as ep:
            out = {}
            for cam in ("front", "wrist"):
                rgb, depth = ep.stream_data(f"{cam}_rgb"), ep.stream_data(f"{cam}_depth")
                rows = np.arange(frames) % len(rgb)
                out[cam] = (np.stack([rgb[int(i)] for i in rows]), np.stack([depth[int(i)] for i in rows]))
    return out


def noisy_loop(width: int = 640, height: int = 480, frames: int = 60, seed: int = 0
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """camera -> (rgb, depth) of `rendered_frames` with fresh sensor noise in every frame."""
    rng = np.random.default_rng(seed)
    out = {}
    for cam, (rgb, depth) in rendered_frames(width, height, frames).items():
        out[cam] = (np.stack([noisy_rgb(f, rng) for f in rgb]), np.stack([noisy_depth(f, rng) for f in depth]))
    return out
