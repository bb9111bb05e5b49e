"""Training windows for the low-level diffusion policy, cut from episode files by their labels.

Owns how labelled episodes become samples (`PolicyDataset`) and their normalisation stats
(`norm_stats`, models/norm_stats.py). Data flows: episode files -> `open_episode` -> low-dim
streams (an episode holding NaN or inf is skipped with the stream named), labels AS STORED (edited
ones included) and the call log read once in __init__ (files closed again) -> one `PolicySample`
per frame t of every motion segment -> `__getitem__`: the item of models/policy_layout.py (the
layout the live models/policy_features.py builds too), plus
```
action       (Tp, 8)                   float32  actions t .. t+Tp-1, the segment's last one repeated
done         (Tp,)                     float32  1 where step t+k lies past the segment (t+k >= end)
```
Camera frames (the latest `camera_frames` of the window) of raw (lossless) streams are read lazily
per item, one HDF5 chunk a frame; video-coded streams are decoded once, in __init__, into memory (`_EpisodeArrays.images`): decoding per item would
decode from the last keyframe every time (up to a GOP per frame). DataLoader workers inherit them. Observation frames t-1, t are clamped to the segment
start. Resolved targets: recall(key) is the pose the object had when remember(key, obj) ran (from
the call log); free_space(near) is where the placed object came to rest: its pose at frame `end`
(the observation after the segment's last command), or the last frame when the segment ends the
episode. memory=False zeroes recall targets (the anchor of such a call is then its object's
position) and leaves out `memory`. cond="flat" (the paper's flat baseline) knows only the task and,
with `goal`, what its instruction names (models/policy_layout.goal_vector), so each episode is one
segment over all its frames and `done` marks the episode's end; it has no memory.
A segment is an intervention segment when at least one of its frames lies in a takeover stretch of a
supervised run (recorders/intervention.takeover_frames): the operator drove it, labelled with the call
it corrected. interventions="only" keeps only those segments (the others are counted, not listed
as skipped); training can also draw them more often (models/train_policy.py).
HDF5 files holding images are opened on first use in each process, so DataLoader workers work.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from models.anchor_frame import FRAMES, action_to_anchor, anchor_of, state_to_anchor
from models.call_encoding import (CallEncoding, encode_memory, function_index, memory_at, remembered_poses,
                                  zone_pose)
from models.norm_stats import NormStats
from models.policy_config import INTERVENTIONS
from models.instruction_check import mentioned
from models.policy_layout import (CAMERAS, COND_KINDS, MAX_OBJECTS, OBS_KINDS, PROPRIO_STREAMS, goal_vector,
                                  object_mask, observation_window, policy_item, state_rows, task_index)
from recorders.episode_file import EpisodeError, open_episode
from recorders.intervention import takeover_frames
from recorders.robot_api_spec import Call, InvalidCallError
from recorders.segmentation import IDLE, Segment

_SKIP_ERRORS = (EpisodeError, OSError, KeyError, ValueError, TypeError, IndexError)


@dataclass(frozen=True)
class PolicySample:
    """One training window: frame `t` of segment `segment` (an index into `PolicyDataset.segments`)."""
    segment: int
    t: int


@dataclass(frozen=True)
class PolicySegment:
    episode: int  # index into PolicyDataset.paths
    start: int
    end: int  # exclusive
    code: str  # the label's code ("" for a flat episode)
    source: str  # auto | edited | flat
    call: Call | None
    resolved: np.ndarray | None  # the nested recall/free_space target's pose
    anchor: np.ndarray  # (3,) models/anchor_frame.py's anchor, from the call at the segment's first frame
    intervention: bool = False  # a frame of it lies in a takeover stretch: the operator's correction


@dataclass
class _EpisodeArrays:
    task: int
    times: np.ndarray  # (N,)
    action: np.ndarray  # (N, 8)
    state: np.ndarray  # (N, STATE_DIM)
    object_poses: np.ndarray  # (N, n_objects, 7)
    object_mask: np.ndarray  # (MAX_OBJECTS,)
    names: list[str]
    zones: dict[str, np.ndarray]
    memory: list  # remembered_poses(...)
    named: list[str] = field(default_factory=list)  # what the instruction names, in order (flat's goal)
    images: dict[str, np.ndarray] = field(default_factory=dict)  # video-coded camera -> (N, H, W, 3) decoded


def _finite(stream: str, values: np.ndarray) -> np.ndarray:
    """`values`, or ValueError naming the stream and first frame that hold NaN or inf (one such
    frame would make every weight NaN)."""
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(1)
    if bad.any():
        raise ValueError(f"stream {stream} holds NaN or inf at frame {int(np.argmax(bad))} "
                         f"({int(bad.sum())} frame(s)); the episode is skipped")
    return values


def _targets_recall(call: Call) -> bool:
    return any(isinstance(a, Call) and a.name == "recall" for a in call.args)


class PolicyDataset(Dataset):
    """Windows of labelled episodes (see the module docstring for the item layout); unreadable
    episodes and unusable segments are listed in `skipped`, never raised."""

    def __init__(self, paths, obs: str = "state", cond: str = "call", memory: bool = True,
                 obs_horizon: int = 2, pred_horizon: int = 16, interventions: str = "all",
                 camera_frames: int | None = None, goal: bool | None = None):
        if obs not in OBS_KINDS:
            raise ValueError(f"obs must be one of {', '.join(OBS_KINDS)}, got {obs!r}")
        if cond not in COND_KINDS:
            raise ValueError(f"cond must be one of {', '.join(COND_KINDS)}, got {cond!r}")
        if interventions not in INTERVENTIONS:
            raise ValueError(f"interventions must be one of {', '.join(INTERVENTIONS)}, got {interventions!r}")
        if obs_horizon < 1 or pred_horizon < 1:
            raise ValueError(f"horizons must be >= 1, got obs {obs_horizon}, prediction {pred_horizon}")
        self.obs, self.cond, self.memory = obs, cond, bool(memory) and cond == "call"
        self.goal = cond == "flat" and (goal is None or bool(goal))  # None: as PolicyConfig's default
        self.obs_horizon, self.pred_horizon = int(obs_horizon), int(pred_horizon)
        # camera frames read per item: the latest this many of the window (the policy's camera_frames)
        self.camera_frames = self.obs_horizon if camera_frames is None else max(1, min(int(camera_frames),
                                                                                      self.obs_horizon))
        self.interventions = interventions
        self.left_out = 0  # segments interventions="only" left out: no takeover overlaps them
        self.encoding = CallEncoding()
        self.paths: list[Path] = []
        self.skipped: list[tuple[str, str]] = []  # (path, reason): episodes and single segments
        self.segments: list[PolicySegment] = []
        self._episodes: list[_EpisodeArrays] = []
        for path in map(Path, paths):
            try:
                arrays, segments = self._load(path, len(self.paths))
            except (*_SKIP_ERRORS, InvalidCallError) as e:
                self.skipped.append((str(path), str(e) or type(e).__name__))
                continue
            self.paths.append(path)
            self._episodes.append(arrays)
            if interventions == "only":
                self.left_out += sum(not s.intervention for s in segments)
                segments = [s for s in segments if s.intervention]
            self.segments += segments
        self.samples = [PolicySample(i, t) for i, s in enumerate(self.segments) for t in range(s.start, s.end)]
        self._files: dict = {}
        self._pid = os.getpid()

    # ---- reading episodes (once, in __init__) -----------------------------------------------------
    def _load(self, path: Path, index: int) -> tuple[_EpisodeArrays, list[PolicySegment]]:
        with open_episode(path) as ep:
            n = ep.frames
            needed = list(PROPRIO_STREAMS) + (list(CAMERAS) if self.obs == "rgb" else [])
            for name in needed + ["object_poses"] * ("object_poses" in ep.stream_names):
                if name not in ep.stream_names or ep.stream_count(name) < n:
                    raise ValueError(f"stream {name} is missing or shorter than the {n} control frames")
            read = lambda name: _finite(name, np.asarray(ep.stream_data(name)[:n], np.float32))  # noqa: E731
            action = read("action")
            if "object_poses" in ep.stream_names:
                objects, names = read("object_poses"), list(ep.stream_spec("object_poses").meta.get("names", []))
            else:
                objects, names = np.zeros((n, 0, 7), np.float32), []
            if objects.shape[1] > MAX_OBJECTS or len(names) != objects.shape[1]:
                raise ValueError(f"{objects.shape[1]} objects ({len(names)} names); at most {MAX_OBJECTS} supported")
            state = state_rows(*(read(name) for name in PROPRIO_STREAMS), objects)
            zones = {z.name: zone_pose(z.position) for z in (ep.meta.scene.zones if ep.meta.scene is not None else ())}
            times = ep.stream_time("action")
            taken = takeover_frames(ep.interventions, times[:n])  # (N,)
            arrays = _EpisodeArrays(task_index(ep.task), times, action, state, objects, object_mask(len(names)),
                                    names, zones, remembered_poses(ep.calls, times, objects, names))
            if self.obs == "rgb":  # decode video-coded cameras once, front to back
                arrays.images = {cam: np.asarray(ep.stream_data(cam)[:n]) for cam in CAMERAS
                                 if ep.stream_encoding(cam) is not None}
            if self.cond == "flat":
                arrays.named = mentioned(ep.instruction or "", names, list(zones))
                return arrays, [PolicySegment(index, 0, n, "", "flat", None, None, np.zeros(3, np.float32),
                                              bool(taken.any()))]
            return arrays, self._segments_of(path, index, ep.labels, arrays, taken)

    def _segments_of(self, path: Path, index: int, labels: Sequence[Segment], a: _EpisodeArrays,
                     taken: np.ndarray) -> list[PolicySegment]:
        out, n = [], len(a.times)
        for k, label in enumerate(labels):
            code = label.code
            try:
                start, end = label.start, min(label.end, n)
                if code == IDLE or end <= start:
                    continue
                call = Call.from_code(code)
                if call.spec.kind != "motion":
                    raise ValueError(f"{call.name}() is a {call.spec.kind} call, not a motion")
                resolved = self._resolve(call, start, end, a)
                if not self.memory and _targets_recall(call):
                    resolved = None
                anchor = anchor_of(self.encoding.encode(call, self._poses(a, start), resolved))  # unknown names fail
            except (ValueError, InvalidCallError, KeyError, TypeError) as e:
                self.skipped.append((str(path), f"segment {k} {code!r}: {e}"))
                continue
            out.append(PolicySegment(index, start, end, code, label.source, call, resolved, anchor,
                                     bool(taken[start:end].any())))
        return out

    @staticmethod
    def _resolve(call: Call, start: int, end: int, a: _EpisodeArrays) -> np.ndarray | None:
        target = call.args[1] if call.name == "place" else None
        if not isinstance(target, Call):
            return None
        if target.name == "recall":
            return memory_at(a.memory, float(a.times[start])).get(target.args[0])  # None: never remembered
        held = a.names.index(call.args[0])  # free_space: where the placed object came to rest
        return a.object_poses[min(end, len(a.times) - 1), held].copy()

    @staticmethod
    def _poses(a: _EpisodeArrays, t: int) -> dict[str, np.ndarray]:
        return {**a.zones, **{name: a.object_poses[t, j] for j, name in enumerate(a.names)}}

    # ---- items --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        sample = self.samples[i]
        seg = self.segments[sample.segment]
        a, t = self._episodes[seg.episode], sample.t
        obs_idx = observation_window(t, seg.start, self.obs_horizon)  # (To,)
        steps = np.arange(t, t + self.pred_horizon)  # (Tp,)
        images = {}
        if self.obs == "rgb":
            seen = obs_idx[-self.camera_frames:]
            for cam in CAMERAS:
                if cam in a.images:
                    images[cam] = a.images[cam][seen]  # (frames, H, W, 3)
                    continue
                data = self._episode_file(seg.episode).stream_data(cam)
                images[cam] = np.stack([data[j] for j in seen])  # (frames, H, W, 3): h5py wants unique indices
        if self.cond == "call":
            memory = encode_memory(memory_at(a.memory, float(a.times[t])).values()) if self.memory else None
            item = policy_item(a.state[obs_idx], a.object_mask, seg.anchor, images=images, memory=memory,
                               call=self.encoding.encode(seg.call, self._poses(a, t), seg.resolved),
                               function=function_index(seg.call.name))
        else:
            goal = goal_vector(a.named, self._poses(a, t), self._poses(a, 0)) if self.goal else None
            item = policy_item(a.state[obs_idx], a.object_mask, seg.anchor, images=images, task=a.task, goal=goal)
        item["action"] = torch.from_numpy(a.action[np.minimum(steps, seg.end - 1)])
        item["done"] = torch.from_numpy((steps >= seg.end).astype(np.float32))
        return item

    def _episode_file(self, episode: int):
        """The episode opened in this process (workers get a fresh, empty cache)."""
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        if episode not in self._files:
            self._files[episode] = open_episode(self.paths[episode])
        return self._files[episode]

    def close(self) -> None:
        for ep in self._files.values():
            ep.close()
        self._files = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_files": {}}

    # ---- summaries --------------------------------------------------------------------------------
    def norm_stats(self, frame: str = "anchor") -> NormStats:
        """Min/max of actions and low-dim observations over the training windows (padding only
        repeats frames inside a segment, so the frames the segments cover give the same extremes),
        in the coordinates the policy sees: `frame` "world" or "anchor" (models/anchor_frame.py)."""
        if frame not in FRAMES:
            raise ValueError(f"frame must be one of {', '.join(FRAMES)}, got {frame!r}")
        rows = {"action": [], "obs_state": []}
        for s in self.segments:
            a = self._episodes[s.episode]
            action, state = a.action[s.start:s.end], a.state[s.start:s.end]
            if frame == "anchor":
                action = action_to_anchor(action[None], s.anchor)[0]
                state = state_to_anchor(state[:, None], np.broadcast_to(a.object_mask, (len(state), MAX_OBJECTS)),
                                        np.broadcast_to(s.anchor, (len(state), 3)))[:, 0]
            rows["action"].append(action)
            rows["obs_state"].append(state)
        return NormStats.from_arrays({k: np.concatenate(v) if v else np.zeros((0, 1)) for k, v in rows.items()})

    def describe(self) -> dict:
        """JSON-able summary: episodes, segments per function, samples, skipped reasons, intervention
        segments and the frames (training windows) they cover, and the segments interventions="only"
        left out."""
        per_function = Counter(s.call.name if s.call else "flat" for s in self.segments)
        corrected = [s for s in self.segments if s.intervention]
        return {"episodes": len(self.paths), "skipped": [f"{p}: {r}" for p, r in self.skipped],
                "segments": len(self.segments), "segments_per_function": dict(per_function),
                "edited_segments": sum(s.source == "edited" for s in self.segments), "samples": len(self),
                "interventions": self.interventions, "intervention_segments": len(corrected),
                "intervention_frames": sum(s.end - s.start for s in corrected), "left_out_segments": self.left_out,
                "obs": self.obs, "cond": self.cond, "memory": self.memory, "goal": self.goal,
                "obs_horizon": self.obs_horizon,
                "pred_horizon": self.pred_horizon, "call_dim": self.encoding.dim if self.cond == "call" else 0}

