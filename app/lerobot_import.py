"""`import lerobot LEROBOT_DIR --out DIR`: a LeRobotDataset v3 folder in as Code2Act episodes.

This module owns the import (the reverse of app/lerobot_export.py, whose docstring gives the v3
layout). Data flow per LeRobot episode (a row of meta/episodes/*/*.parquet):
```
data/chunk-CCC/file-FFF.parquet rows of the episode  -> streams `action` (its own width; the
    control stream, timestamps from `timestamp`) and, when `observation.state` carries the
    exporter's 15 names, joint_positions (7) + gripper_width (1) + ee_pose (7); any other state is
    stored whole as `state` (plus `gripper_width` when exactly one state name mentions a gripper)
videos/<key>/chunk-CCC/file-FFF.mp4 between the episode's from/to timestamps -> `<cam>_rgb`
    (observation.images.front -> front_rgb; other keys by their last dotted part), decoded with PyAV
tasks (the episode row's `tasks`, else meta/tasks.parquet) -> the instruction; task id "instruction"
language_persistent rows of style "subtask" (one per segment: start time, code) -> the labels;
    else runs of subtask_index through meta/subtasks.parquet -> the labels; both as source "auto",
    since they are the labels Code2Act (or the dataset's author) gave
no subtask information -> proposed segments cut at the gripper events Annotate snaps to
    (app.annotation.gripper_events on the written file), all `idle`, for the user to name
```
Proposed labels are stored with source "proposed" (recorders.segmentation.PROVENANCES). Each episode becomes `out/lerobot_{episode_index:04d}.h5`, written through
EpisodeWriter (the one owner of the schema); existing names are refused before anything is written,
and an episode that cannot be read is skipped with one line. Robot kind: info.json's robot_type
when it is one of ours, else "franky" (real data from outside the workcell).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from app.errors import UserError
from app.lerobot_export import ACTION, EPISODES_PATH, STATE, STATE_NAMES, STATE_STREAMS
from recorders.cell.registry import ROBOT_KINDS
from recorders.episode_file import PARTIAL_SUFFIX, EpisodeError, EpisodeMeta, StreamSpec, open_episode, write_labels
from recorders.episode_writer import EpisodeWriter
from recorders.segmentation import AUTO, IDLE, PROPOSED
from recorders.take import FREE_INSTRUCTION_TASK
from recorders.video_quality import DEFAULT_DEVICE_QUALITY

FILE_NAME = "lerobot_{episode:04d}.h5"
DEFAULT_ROBOT = "franky"
_STATE_SPLIT = dict(zip(STATE_STREAMS, ((0, 7), (7, 8), (8, 15))))
_SKIP_ERRORS = (EpisodeError, OSError, KeyError, ValueError, IndexError, TypeError)


def camera_stream(key: str) -> str:
    """observation.images.front -> front_rgb; any other key by its last dotted part."""
    return key.rsplit(".", 1)[-1] + "_rgb"


def _info(root: Path) -> dict:
    try:
        info = json.loads((root / "meta/info.json").read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{root} is not a LeRobotDataset folder (meta/info.json: {e})") from None
    if not str(info.get("codebase_version", "")).startswith("v3"):
        raise UserError(f"{root} is LeRobot {info.get('codebase_version')!r}; only v3 datasets import")
    if ACTION not in info.get("features", {}):
        raise UserError(f"{root} has no {ACTION!r} feature")
    return info


def _text_table(path: Path, name: str) -> dict[int, str]:
    import pyarrow.parquet as pq
    if not path.is_file():
        return {}
    t = pq.read_table(path)
    return dict(zip(t.column(f"{name}_index").to_pylist(), t.column(name).to_pylist()))


def _matrix(table, column: str) -> np.ndarray:
    """A fixed-size-list column as (N, D)."""
    flat = table.column(column).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(table.num_rows, -1)


def _labels_from_language(rows, fps: float, n: int) -> list[dict] | None:
    """One segment per "subtask" row: from its start frame to the next row's (frames before the first: idle)."""
    starts = sorted({(int(round(r["timestamp"] * fps)), r["content"]) for r in rows or ()
                     if r.get("style") == "subtask" and r.get("content") and r.get("timestamp") is not None})
    starts = [(a, code) for a, code in starts if 0 <= a < n]
    if not starts:
        return None
    if starts[0][0] > 0:
        starts.insert(0, (0, IDLE))
    bounds = [a for a, _ in starts[1:]] + [n]
    return [{"start": a, "end": b, "code": code, "source": AUTO}
            for (a, code), b in zip(starts, bounds) if b > a]


def _labels_from_subtasks(index: np.ndarray, names: dict[int, str]) -> list[dict]:
    """Runs of equal subtask_index, each one segment."""
    cuts = [0, *(np.flatnonzero(index[1:] != index[:-1]) + 1).tolist(), len(index)]
    return [{"start": a, "end": b, "code": names.get(int(index[a]), IDLE), "source": AUTO}
            for a, b in zip(cuts, cuts[1:])]


def _decode(path: Path, start: float, stop: float, n: int, fps: float):
    """The frames of `path` timed in [start, stop), at most n, as (H, W, 3) uint8 arrays."""
    import av
    tol = 0.5 / fps
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if start > tol:
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.time is None or frame.time < start - tol:
                continue
            if frame.time >= stop - tol or n <= 0:
                return
            n -= 1
            yield frame.to_ndarray(format="rgb24")


class _Dataset:
    """The folder's tables, each read once."""

    def __init__(self, root: Path):
        import pyarrow as pa
        import pyarrow.parquet as pq
        self.root, self.info = root, _info(root)
        files = sorted((root / EPISODES_PATH).parent.parent.glob("*/*.parquet"))
        if not files:
            raise UserError(f"{root} has no episode table (meta/episodes/*/*.parquet)")
        self.episodes = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default").to_pylist()
        self.tasks = _text_table(root / "meta/tasks.parquet", "task")
        self.subtasks = _text_table(root / "meta/subtasks.parquet", "subtask")
        self.fps = float(self.info["fps"])
        self.features = self.info["features"]
        self.videos = [k for k, f in self.features.items() if f.get("dtype") == "video"]
        robot = self.info.get("robot_type")
        self.robot = robot if robot in ROBOT_KINDS else DEFAULT_ROBOT
        self._data: dict[tuple[int, int], object] = {}

    def rows(self, ep: dict):
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        where = (int(ep["data/chunk_index"]), int(ep["data/file_index"]))
        if where not in self._data:
            self._data[where] = pq.read_table(self.root / self.info["data_path"].format(
                chunk_index=where[0], file_index=where[1]))
        t = self._data[where]
        t = t.filter(pc.equal(t.column("episode_index"), int(ep["episode_index"])))
        return t.sort_by("frame_index") if "frame_index" in t.column_names else t

    def video(self, key: str, ep: dict) -> Path:
        p = f"videos/{key}/"
        return self.root / self.info["video_path"].format(video_key=key, chunk_index=int(ep[p + "chunk_index"]),
                                                          file_index=int(ep[p + "file_index"]))


def _arrays(ds: _Dataset, t) -> dict[str, np.ndarray]:
    """Stream name -> (N, *shape) array of the episode's rows."""
    action = _matrix(t, ACTION)
    out = {ACTION: action if action.dtype == np.float64 else action.astype(np.float32)}
    if STATE in t.column_names:
        state = _matrix(t, STATE).astype(np.float32)
        names = list(ds.features.get(STATE, {}).get("names") or [])
        if names == STATE_NAMES:
            out |= {s: state[:, a:b] for s, (a, b) in _STATE_SPLIT.items()}
        else:
            out["state"] = state
            grippers = [i for i, name in enumerate(names) if "gripper" in str(name).lower()]
            if len(grippers) == 1:
                out["gripper_width"] = state[:, grippers]
    return out


def _import_episode(ds: _Dataset, ep: dict, path: Path, video_quality: str) -> None:
    t = ds.rows(ep)
    n = t.num_rows
    if n == 0:
        raise ValueError("it has no data rows")
    times = t.column("timestamp").to_numpy().astype(np.float64) if "timestamp" in t.column_names \
        else np.arange(n) / ds.fps
    arrays = _arrays(ds, t)
    task_text = (list(ep.get("tasks") or []) or [ds.tasks.get(t.column("task_index")[0].as_py(), "")])[0]
    labels = None
    if "language_persistent" in t.column_names:
        labels = _labels_from_language(t.column("language_persistent")[0].as_py(), ds.fps, n)
    if labels is None and "subtask_index" in t.column_names and ds.subtasks:
        labels = _labels_from_subtasks(t.column("subtask_index").to_numpy(), ds.subtasks)
    specs = [StreamSpec(name, "array", a.shape[1:], a.dtype.name, ds.fps) for name, a in arrays.items()]
    specs += [StreamSpec(camera_stream(k), "rgb", tuple(ds.features[k]["shape"]), "uint8", ds.fps,
                         {"lerobot_key": k}) for k in ds.videos]
    meta = EpisodeMeta(task=FREE_INSTRUCTION_TASK, instruction=str(task_text), robot=ds.robot, control_hz=ds.fps)
    writer = EpisodeWriter(path, meta, specs, drop_when_full=False, video_quality=video_quality)
    try:
        for name, a in arrays.items():
            for k in range(n):
                writer.append(name, times[k], a[k])
        for key in ds.videos:
            p = f"videos/{key}/"
            got = 0
            for got, rgb in enumerate(_decode(ds.video(key, ep), float(ep[p + "from_timestamp"]),
                                              float(ep[p + "to_timestamp"]), n, ds.fps), 1):
                writer.append(camera_stream(key), times[got - 1], rgb)
            if got != n:
                raise ValueError(f"{key} holds {got} frames for its {n} rows")
        writer.finish(None, labels or [])
    except BaseException:
        writer.discard()
        raise
    if labels is None:
        _propose(path, n)


def _propose(path: Path, n: int) -> None:
    """Idle segments cut at the gripper events Annotate snaps to, marked as proposals."""
    from app.annotation import gripper_events  # Annotate's own event rule; QtCore only, loaded when needed
    with open_episode(path) as ep:
        cuts = [0, *[e for e in gripper_events(ep) if 0 < e < n], n]
    write_labels(path, [{"start": a, "end": b, "code": IDLE, "source": PROPOSED}
                        for a, b in zip(cuts, cuts[1:])], edited=False)


def import_lerobot(root: Path, out: Path, progress: Callable[[int, int], None] | None = None,
                   warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
                   video_quality: str = DEFAULT_DEVICE_QUALITY) -> list[Path]:
    """Write each episode of the LeRobotDataset v3 at `root` as `out/lerobot_NNNN.h5`; returns the
    files written. Refuses (UserError) when any of those names is already taken in `out`. Cameras are
    stored at `video_quality` (recorders/video_quality.py): by default as video again, as they came."""
    root, out = Path(root), Path(out)
    ds = _Dataset(root)
    targets = [out / FILE_NAME.format(episode=int(ep["episode_index"])) for ep in ds.episodes]
    taken = [p for p in targets if p.exists() or p.with_name(p.name + PARTIAL_SUFFIX).exists()]
    if taken:
        raise UserError(f"{out} already holds {taken[0].name}" + (f" and {len(taken) - 1} more" if len(taken) > 1
                        else "") + "; import into another folder (episodes are never overwritten)")
    import av
    skip = (*_SKIP_ERRORS, av.error.FFmpegError)
    written = []
    for k, (ep, path) in enumerate(zip(ds.episodes, targets)):
        if progress is not None:
            progress(k, len(targets))
        try:
            _import_episode(ds, ep, path, video_quality)
            written.append(path)
        except skip as e:
            warn(f"skipped LeRobot episode {ep.get('episode_index')}: {' '.join(str(e).split())[:160]}")
    if progress is not None:
        progress(len(targets), len(targets))
    return written


def run_import_lerobot(args) -> int:
    """The CLI command: `args.dir` (a LeRobotDataset v3 folder), `args.out` (a folder of episodes)."""
    written = import_lerobot(Path(args.dir), Path(args.out), lambda done, total: print(
        f"import: {done}/{total} episodes", file=sys.stderr, flush=True),
        video_quality=getattr(args, "video_quality", None) or DEFAULT_DEVICE_QUALITY)
    print(f"imported {len(written)} episodes from {args.dir} to {args.out}")
    return 0 if written else 1
