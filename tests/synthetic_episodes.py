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


# ---- a narrated take: the stack episode's motion with the microphone's blocks, optionally cameras ------
AUDIO_RATE, AUDIO_BLOCK_MS = 16000, 50
AUDIO_BLOCK = AUDIO_RATE * AUDIO_BLOCK_MS // 1000  # samples per block (stream row)
AUDIO_BLOCKS = int(FRAMES / HZ * 1000 / AUDIO_BLOCK_MS)  # blocks covering the 4 s take
CAMERA_SHAPE = (48, 64, 3)


def narration(k) -> np.ndarray:
    """Sample k of the take's sound (k counts from the episode's time 0), float32: a buzz in bursts,
    every value a function of k so a test can say which samples it should hear."""
    k = np.asarray(k, np.int64)
    buzz = ((k * 37) % 200 - 100) / 250.0
    loud = np.where((k // 4000) % 3 == 2, 0.2, 1.0)  # quieter every third quarter second
    return (buzz * loud).astype(np.float32)


def _camera(i: int) -> np.ndarray:
    h, w, _ = CAMERA_SHAPE
    image = np.zeros(CAMERA_SHAPE, np.uint8)
    image[..., 0] = np.linspace(40, 120, w, dtype=np.uint8)[None, :]
    image[..., 2] = np.linspace(120, 40, h, dtype=np.uint8)[:, None]
    x = int((w - 12) * i / FRAMES)
    image[h // 2 - 6:h // 2 + 6, x:x + 12] = (230, 60, 60)  # the red cube moving across
    return image


def write_narrated(path, dropped: tuple[int, ...] = (), jitter_s: float = 0.0, task: str | None = None,
                   instruction: str = "pick up the red cube and put it on the blue one", success: bool | None = None,
                   cameras: bool = False) -> Path:
    """A finished 40-frame take with sound: the stack motion of `write_pick_place` and an "audio"
    stream (recorders/audio_input.stream_spec: 50 ms blocks of `narration` at 16 kHz mono, each row
    stamped with its first sample's time, off by up to `jitter_s` as the audio callback's scheduling
    leaves it; the first block's time is exact). Blocks whose index is in `dropped` are missing, as
    when the writer fell behind. `task` None: a real take (the free task id of recorders/take.py).
    `cameras`: small front and wrist images, for screenshots."""
    from recorders.audio_input import AudioRecorder, stream_spec
    from recorders.take import FREE_TASK

    audio = stream_spec("audio", AudioRecorder(samplerate=AUDIO_RATE, channels=1, block_ms=AUDIO_BLOCK_MS))
    streams = list(STREAMS) + [audio]
    if cameras:
        streams += [StreamSpec(name, "rgb", CAMERA_SHAPE, "uint8", HZ) for name in ("front_rgb", "wrist_rgb")]
    meta = EpisodeMeta(task=task or FREE_TASK, instruction=instruction, robot="sim", control_hz=HZ, clock="sim")
    rng = np.random.default_rng(0)
    with EpisodeWriter(path, meta, streams, drop_when_full=False) as w:
        for i in range(FRAMES):
            for name, row in _rows(i).items():
                w.append(name, i / HZ, row)
            if cameras:
                w.append("front_rgb", i / HZ, _camera(i))
                w.append("wrist_rgb", i / HZ, _camera(FRAMES - 1 - i))
        for b in range(AUDIO_BLOCKS):
            if b not in dropped:
                first = b * AUDIO_BLOCK
                t = first / AUDIO_RATE + (float(rng.uniform(-jitter_s, jitter_s)) if b else 0.0)  # 0 anchors the track
                w.append("audio", t, narration(np.arange(first, first + AUDIO_BLOCK))[:, None])
        for label in LABELS:
            w.log_call({"code": label["code"], "name": label["code"].split("(")[0], "args": [],
                        "t_start": label["start"] / HZ, "t_end": label["end"] / HZ, "status": "ok",
                        "source": "hotkey", "reason": None})
        return w.finish(success, LABELS)
