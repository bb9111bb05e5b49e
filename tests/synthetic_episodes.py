"""Small episodes written through recorders.episode_writer for training-data tests: a straight
pick of one cube and a place on another, with low-dim streams only, optionally with NaN at one frame
of one stream (a sensor glitch that must not poison training), or as a supervised run in which the
operator took the pick over (`write_supervised`)."""
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


# The supervised run: the policy's pick is aborted at 1 s, the operator teleoperates it (a hotkey
# stretch, labelled with the call it corrected) until `takeover_end`, then the policy places.
SUPERVISED_LABELS = [{"start": 0, "end": 10, "code": 'pick("red cube")', "source": "auto"},
                     {"start": 10, "end": 20, "code": 'pick("red cube")', "source": "auto"},
                     {"start": 20, "end": FRAMES, "code": 'place("red cube", "blue cube")', "source": "auto"}]
LABEL_SOURCES = ("script", "hotkey", "script")


def write_supervised(path, takeover_end: float = 2.0) -> Path:
    """A finished 40-frame stack episode with a takeover of the pick over [1 s, `takeover_end`)
    (frames 10..19 by default) and a skip at 3 s, an instant that covers no frame."""
    from recorders.intervention import Intervention

    return write_pick_place(path, labels=SUPERVISED_LABELS, sources=LABEL_SOURCES, interventions=[
        Intervention("takeover", 'pick("red cube")', 1.0, takeover_end, "the gripper missed the cube"),
        Intervention("skip", 'place("red cube", "blue cube")', 3.0, 3.0)])


def write_pick_place(path, nan_in: str | None = None, nan_frame: int = 7, labels=LABELS,
                     sources=("script", "script"), interventions=()) -> Path:
    """A finished 40-frame stack episode; `nan_in`: the stream whose row `nan_frame` is NaN;
    `labels`, with the logged call of each from `sources`, and `interventions` of a supervised run."""
    meta = EpisodeMeta(task="stack", instruction="stack the red cube on the blue cube", robot="sim", control_hz=HZ,
                       clock="sim")
    with EpisodeWriter(path, meta, STREAMS, drop_when_full=False) as w:
        for i in range(FRAMES):
            for name, row in _rows(i).items():
                if name == nan_in and i == nan_frame:
                    row = np.full_like(row, np.nan)
                w.append(name, i / HZ, row)
        for label, source in zip(labels, sources):
            w.log_call({"code": label["code"], "name": label["code"].split("(")[0], "args": [],
                        "t_start": label["start"] / HZ, "t_end": label["end"] / HZ, "status": "ok",
                        "source": source, "reason": None})
        for intervention in interventions:
            w.log_intervention(intervention.to_dict())
        return w.finish(True, labels)
