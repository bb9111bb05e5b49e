"""Small episodes written through recorders.episode_writer for training-data tests: a straight
pick of one cube and a place on another, with low-dim streams only, optionally with NaN at one frame
of one stream (a sensor glitch that must not poison training)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from recorders.episode_file import EpisodeMeta, StreamSpec
from recorders.episode_writer import EpisodeWriter

FRAMES = 40
HZ = 10.0
NAMES = ["red cube", "blue cube"]
STREAMS = [StreamSpec("action", "array", (8,), "float32", HZ), StreamSpec("ee_pose", "array", (7,), "float32", HZ),
           StreamSpec("gripper_width", "array", (1,), "float32", HZ),
           StreamSpec("object_poses", "array", (2, 7), "float32", HZ, {"names": NAMES})]
LABELS = [{"start": 0, "end": 20, "code": 'pick("red cube")', "source": "auto"},
          {"start": 20, "end": FRAMES, "code": 'place("red cube", "blue cube")', "source": "auto"}]


def _rows(i: int) -> dict[str, np.ndarray]:
    s = i / FRAMES
    ee = np.array([0.4 + 0.1 * s, 0.1 * s, 0.2 - 0.1 * s, 0.0, 1.0, 0.0, 0.0], np.float32)
    objects = np.array([[0.45, 0.0, 0.02, 1, 0, 0, 0], [0.5, 0.1, 0.02, 1, 0, 0, 0]], np.float32)
    return {"action": np.concatenate([ee, [0.04 if i < 20 else 0.0]]).astype(np.float32), "ee_pose": ee,
            "gripper_width": np.array([0.04], np.float32), "object_poses": objects}


def write_pick_place(path, nan_in: str | None = None, nan_frame: int = 7) -> Path:
    """A finished 40-frame stack episode; `nan_in`: the stream whose row `nan_frame` is NaN."""
    meta = EpisodeMeta(task="stack", instruction="stack the red cube on the blue cube", robot="sim", control_hz=HZ,
                       clock="sim")
    with EpisodeWriter(path, meta, STREAMS, drop_when_full=False) as w:
        for i in range(FRAMES):
            for name, row in _rows(i).items():
                if name == nan_in and i == nan_frame:
                    row = np.full_like(row, np.nan)
                w.append(name, i / HZ, row)
        for k, label in enumerate(LABELS):
            w.log_call({"code": label["code"], "name": label["code"].split("(")[0], "args": [],
                        "t_start": label["start"] / HZ, "t_end": label["end"] / HZ, "status": "ok",
                        "source": "script", "reason": None})
        return w.finish(True, LABELS)
