"""What the planner sees and says: its prompt, and the training steps drawn from recorded episodes.

One planner step is (base-camera image, task text, past calls, memory keys) -> the next call's code,
the query ClevrSkills' converter builds (PAPER.md), with a `Memory:` line for the keys stored so far.
`episode_steps` turns one episode into its steps: the motion calls come from the episode's labels as
edited (the segments), memory calls (`remember`) from the logged calls, merged in time order, and a
final `done()` when the episode ended with one (or succeeded). Each step's image is the front
camera's frame where that call starts. Withholding memory (`memory=False`) leaves the past calls
and the keys out of the prompt: the planner then sees only the image and the task.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from recorders.call_log import CallRecord
from recorders.cell.scene import SceneSpec
from recorders.episode_file import CONTROL_STREAM, EpisodeError, open_episode
from recorders.robot_api_spec import API, Call, InvalidCallError, is_zone
from recorders.segmentation import IDLE, Segment

IMAGE_STREAM = "front_rgb"
IMAGE_MARK = "<image>"
_EPS_S = 1e-6


@dataclass(frozen=True)
class SceneNames:
    """The names a planner may use in one scene: objects and zones."""
    objects: tuple[str, ...]
    zones: tuple[str, ...]


@dataclass(frozen=True)
class PlannerStep:
    task: str  # the instruction text
    history: tuple[str, ...]  # codes of the calls made so far, oldest first
    memory_keys: tuple[str, ...]  # keys remembered so far, in first-stored order
    target: str  # the next call's canonical code
    image: np.ndarray | None = None  # (H, W, 3) uint8 front-camera frame where the call starts
    names: SceneNames | None = None  # the scene's objects and zones (what the image's facts are read for)
    task_id: str = ""  # the episode's suite task ("" when unknown): rare tasks can be drawn more often


def prompt_text(task: str, history: Sequence[str], memory_keys: Sequence[str], memory: bool = True,
                image_mark: str = IMAGE_MARK, seen: str | None = None) -> str:
    """The planner's query; the answer (the next call's code) follows it directly. `seen`: the facts
    read from the image (models/scene_facts.py), a line after the instruction."""
    lines = [image_mark, task.strip()] + ([seen] if seen is not None else [])
    if memory:
        lines.append("Memory: " + ("; ".join(memory_keys) if memory_keys else "none"))
        lines.append("Past actions:")
        lines.append("; ".join(history) if history else "none")
    lines.append("Next:")
    return "\n".join(lines) + "\n"


def remembered_keys(history: Sequence[str]) -> tuple[str, ...]:
    """Keys stored by remember(...) in `history`, in first-stored order."""
    keys: dict[str, None] = {}
    for code in history:
        call = Call.from_code(code)
        if call.name == "remember":
            keys.setdefault(str(call.args[0]), None)
    return tuple(keys)


def scene_names(scene: SceneSpec | None, codes: Sequence[str] = ()) -> SceneNames:
    """Object and zone names of an episode's scene; without a stored scene (a real arm), the names
    its calls use."""
    objects = list(scene.object_names) if scene is not None else []
    zones = list(scene.zone_names) if scene is not None else []
    if not objects:
        for code in codes:
            for call in _with_nested(Call.from_code(code)):
                for p, a in zip(API[call.name].params, call.args):
                    if isinstance(a, str) and p.type in ("object", "target"):
                        (zones if is_zone(a) else objects).append(a)
    return SceneNames(tuple(dict.fromkeys(objects)), tuple(dict.fromkeys(zones)))


def _with_nested(call: Call) -> list[Call]:
    return [call] + [n for a in call.args if isinstance(a, Call) for n in _with_nested(a)]


def episode_program(labels: Sequence[Segment], calls: Sequence[CallRecord], times: np.ndarray,
                    success: bool | None) -> list[tuple[int, str]]:
    """(start frame, code) of every call the planner should have made, in order.

    Motion calls are the labelled segments (idle ones skipped); memory calls come from the call
    log at the frame where they happened; done() closes the program when it was logged or the
    episode succeeded."""
    steps: list[tuple[int, int, str]] = []  # (frame, order within a frame, code)
    for seg in labels:
        if not seg.code or seg.code == IDLE:
            continue
        steps.append((seg.start, 1, Call.from_code(seg.code).code))
    logged_done = False
    for c in calls:
        try:
            call = Call.from_code(c.code)
        except InvalidCallError:
            continue
        if call.name == "done" and c.status == "ok":
            logged_done = True
        if call.name != "remember" or c.status != "ok":
            continue
        frame = min(int(np.searchsorted(times, c.t_start - _EPS_S, side="left")), len(times) - 1)
        steps.append((frame, 0, call.code))  # memory before the motion that starts on the same frame
    steps.sort(key=lambda s: (s[0], s[1]))
    program = [(f, code) for f, _, code in steps]
    if logged_done or success:
        program.append((len(times) - 1, "done()"))
    return program


def episode_steps(path, with_images: bool = True) -> tuple[list[PlannerStep], SceneNames]:
    """The planner steps of one episode file and its scene's names; ValueError when it has none."""
    with open_episode(path) as ep:
        times = ep.stream_time(CONTROL_STREAM)  # every episode has it (open_episode refuses one without)
        program = episode_program(ep.labels, ep.calls, times, ep.success)
        if not program:
            raise ValueError(f"{path}: no labelled calls")
        if with_images and IMAGE_STREAM not in ep.stream_names:
            raise ValueError(f"{path}: no {IMAGE_STREAM} camera stream (record with --obs rgb)")
        images = _frames_at(ep, times, [f for f, _ in program]) if with_images else [None] * len(program)
        task, task_id = ep.instruction or ep.task, ep.task or ""
        names = scene_names(ep.meta.scene, [c for _, c in program])
    steps, history = [], []
    for (frame, code), image in zip(program, images):
        steps.append(PlannerStep(task, tuple(history), remembered_keys(history), code, image, names, task_id))
        history.append(code)
    return steps, names


def _frames_at(ep, control_t: np.ndarray, control_frames: list[int]) -> list[np.ndarray]:
    """Front-camera frames nearest in time to control frames (cameras may run at their own rate)."""
    cam_t = ep.stream_time(IMAGE_STREAM)
    data = ep.stream_data(IMAGE_STREAM)
    out = []
    for f in control_frames:
        i = min(int(np.searchsorted(cam_t, control_t[min(f, len(control_t) - 1)] - _EPS_S, side="left")),
                len(cam_t) - 1)
        out.append(np.asarray(data[i], np.uint8))
    return out


def load_steps(paths: Sequence[Path], with_images: bool = True) -> tuple[list[PlannerStep], list[str], list[SceneNames]]:
    """Steps of every readable episode, "PATH: reason" for the skipped ones, and each kept scene's names."""
    steps, skipped, scenes = [], [], []
    for p in paths:
        try:
            s, names = episode_steps(p, with_images)
        except (ValueError, OSError, EpisodeError) as e:  # InvalidCallError is a ValueError
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            skipped.append(reason if reason.startswith(str(p)) else f"{p}: {reason}")
            continue
        steps += s
        scenes.append(names)
    return steps, skipped, scenes
