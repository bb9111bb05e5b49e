"""`export lerobot DIR... --out LEROBOT_DIR`: Code2Act episodes as one LeRobotDataset v3 folder.

This module owns the export (the LeRobot side of DESIGN.md section 5). The layout follows LeRobot's
`lerobot/datasets/utils.py` (`DatasetInfo`, path templates), `dataset_metadata.py` (episode rows,
tasks) and `dataset_writer.py` (videos concatenated per file, located by from/to timestamps):
```
meta/info.json        codebase_version "v3.0", fps, features {dtype, shape, names[, info]}, totals,
                      chunks_size, data_files_size_in_mb, video_files_size_in_mb, data_path, video_path
meta/stats.json       per feature {min, max, mean, std, count, q01, q10, q50, q90, q99}; images per
                      channel in [0, 1], shape (3, 1, 1), from <= 100 frames of each episode
meta/tasks.parquet    task_index, index `task` (the instruction), deduplicated
meta/subtasks.parquet subtask_index, index `subtask` (a call's code, or `idle`)
meta/episodes/chunk-000/file-000.parquet   one row per episode: episode_index, tasks, length,
                      data/{chunk,file}_index, dataset_{from,to}_index, videos/<key>/{chunk_index,
                      file_index, from_timestamp, to_timestamp}, meta/episodes/{chunk,file}_index,
                      stats/<feature>/<stat>
data/chunk-CCC/file-FFF.parquet            one row per control frame, one row group per episode
videos/observation.images.<cam>/chunk-CCC/file-FFF.mp4   H.264 yuv420p, episodes back to back
```
Frames: row i of an episode is control frame i (stream `action`), minus the idle frames an annotator
trimmed off its ends; timestamp = frame_index / fps. `observation.state` (15,) = joint_positions (7)
+ gripper_width (1) + ee_pose (7: x y z qw qx qy qz), so the state covers the action's space;
`action` (8,) is the stored command (ee target pose + gripper) as float32, unchanged. Each camera
`<cam>_rgb` becomes `observation.images.<cam>`: per control frame the newest camera frame at or before
the control time (cameras may run at their own rate), encoded at the control rate. Depth, audio,
velocities and object poses are not exported.

Labels: the episode's instruction is its task. The call labels go two ways, both read in LeRobot's
source: `subtask_index` (int64 per frame) + meta/subtasks.parquet, the subtask support of LeRobot
PR #2860 (`load_subtasks`, `item["subtask"]`), and `language_persistent`, the newer language column
(`lerobot/datasets/language.py`, docs `language_and_recipes.mdx`): one row {role "assistant",
content code, style "subtask", timestamp start, camera null, tool_calls null} per label segment,
broadcast over the episode's frames, so recipes resolve `active_at(t, style=subtask)`;
`language_events` is present and empty. Frames outside calls carry `idle`.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from app.errors import UserError
from recorders.episode_file import CONTROL_STREAM, EpisodeError, open_episode
from recorders.segmentation import IDLE

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILE_MB = 100
VIDEO_FILE_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
STATE, ACTION, IMAGE_PREFIX = "observation.state", "action", "observation.images."
STATE_STREAMS = ("joint_positions", "gripper_width", "ee_pose")
STATE_NAMES = [f"joint_{i}" for i in range(7)] + ["gripper_width", "ee_x", "ee_y", "ee_z",
                                                  "ee_qw", "ee_qx", "ee_qy", "ee_qz"]
ACTION_NAMES = ["x", "y", "z", "qw", "qx", "qy", "qz", "gripper_closed"]
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index", "subtask_index")
CODECS = ("libx264", "libopenh264", "mpeg4")  # the first PyAV can encode with wins
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
STATS_FRAMES, STATS_SIDE = 100, 150  # image stats: frames per episode, longest side after striding
_EPS_S = 1e-6


@dataclass(frozen=True)
class _Source:
    """One episode's arrays, cut to its kept frames (N); camera frames stay on disk."""
    path: Path
    instruction: str
    robot: str
    fps: int
    state: np.ndarray  # (N, 15) float32
    action: np.ndarray  # (N, 8) float32
    subtasks: list[str]  # (N,) a call's code or IDLE
    segments: list[tuple[int, str]]  # (first frame, code) per label segment, frames of the kept range
    cameras: dict[str, np.ndarray]  # feature key -> (N,) camera row per frame


def _read(path: Path):
    """The episode's arrays and its open file (for camera rows); raises EpisodeError or ValueError."""
    ep = open_episode(path)
    try:
        fps = int(round(ep.control_hz))
        if abs(ep.control_hz - fps) > 1e-6:
            raise ValueError(f"control rate {ep.control_hz} Hz is not a whole number (LeRobot's fps is an int)")
        missing = [s for s in (CONTROL_STREAM, *STATE_STREAMS) if s not in ep.stream_names]
        if missing:
            raise ValueError(f"it has no {', '.join(missing)} stream")
        n = ep.frames
        labels = [s for s in ep.labels if s.end > s.start]
        lo = next((s.end for s in labels[:1] if s.trimmed), 0)
        hi = next((s.start for s in labels[-1:] if s.trimmed and s.start > lo), n)
        if min(ep.stream_count(s) for s in STATE_STREAMS) < hi:
            raise ValueError("its state streams are shorter than its action stream")
        state = np.concatenate([np.asarray(ep.stream_data(s)[lo:hi], np.float32).reshape(hi - lo, -1)
                                for s in STATE_STREAMS], axis=1)  # (N, 15)
        action = np.asarray(ep.stream_data(CONTROL_STREAM)[lo:hi], np.float32)  # (N, 8)
        subtasks, segments = [IDLE] * (hi - lo), []
        for s in labels:
            a, b = max(s.start, lo) - lo, min(s.end, hi) - lo
            if b > a and not s.trimmed:
                subtasks[a:b] = [s.code] * (b - a)
                segments.append((a, s.code))
        control_t = ep.stream_time(CONTROL_STREAM)[lo:hi]
        cameras = {}
        for name in ep.stream_names:
            if name.endswith("_rgb") and ep.stream_spec(name).kind == "rgb" and ep.stream_count(name):
                if any(d % 2 for d in ep.stream_spec(name).shape[:2]):
                    raise ValueError(f"{name} is {ep.stream_spec(name).shape[:2]} pixels; yuv420p video "
                                     f"needs an even height and width")
                cam_t = ep.stream_time(name)  # newest camera frame at or before each control time
                rows = np.searchsorted(cam_t, control_t + _EPS_S, side="right") - 1
                cameras[IMAGE_PREFIX + name[: -len("_rgb")]] = np.clip(rows, 0, len(cam_t) - 1)
        return ep, _Source(Path(path), ep.instruction or ep.task, ep.robot, fps, state, action, subtasks,
                           segments, cameras)
    except BaseException:
        ep.close()
        raise


def _stats(x: np.ndarray, axis) -> dict[str, np.ndarray]:
    x = x.astype(np.float64)
    out = {"min": x.min(axis=axis), "max": x.max(axis=axis), "mean": x.mean(axis=axis),
           "std": x.std(axis=axis), "count": np.array([x.shape[0]])}
    for q in QUANTILES:
        out[f"q{round(q * 100):02d}"] = np.quantile(x, q, axis=axis)
    return out


def _image_stats(data, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Per channel in [0, 1], shape (3, 1, 1), from evenly spaced frames strided to <= STATS_SIDE px."""
    picks = rows[np.unique(np.linspace(0, len(rows) - 1, min(STATS_FRAMES, len(rows))).astype(int))]
    step = max(1, -(-max(data.shape[1:3]) // STATS_SIDE))
    frames = np.stack([np.asarray(data[int(r)])[::step, ::step] for r in picks]) / 255.0  # (K, h, w, 3)
    s = _stats(frames.transpose(3, 0, 1, 2).reshape(3, -1).T, axis=0)  # pixels as samples, (3,)
    return {k: v if k == "count" else v.reshape(3, 1, 1) for k, v in s.items()} | {"count": np.array([len(picks)])}


def _aggregate(stats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dataset stats from episode stats, as LeRobot's aggregate_stats: count-weighted means, pooled
    variance, extreme min/max, count-weighted quantiles."""
    w = np.array([s["count"][0] for s in stats], np.float64)
    wb = w.reshape(-1, *[1] * stats[0]["mean"].ndim) / w.sum()
    means = np.stack([s["mean"] for s in stats])
    mean = (wb * means).sum(0)
    var = (wb * (np.stack([s["std"] for s in stats]) ** 2 + (means - mean) ** 2)).sum(0)
    out = {"min": np.min([s["min"] for s in stats], 0), "max": np.max([s["max"] for s in stats], 0),
           "mean": mean, "std": np.sqrt(var), "count": np.array([int(w.sum())])}
    for k in stats[0]:
        if k.startswith("q"):
            out[k] = (wb * np.stack([s[k] for s in stats])).sum(0)
    return out


class _Video:
    """One camera's MP4 files: episodes appended back to back, a new file past VIDEO_FILE_MB."""

    def __init__(self, out: Path, key: str, fps: int, shape: tuple[int, ...]):
        self.out, self.key, self.fps, self.shape = out, key, fps, shape
        self.file_index, self.frames, self.container = -1, 0, None

    def _open(self):
        import av
        self.file_index += 1
        self.path = self.out / VIDEO_PATH.format(video_key=self.key, chunk_index=self.file_index // CHUNKS_SIZE,
                                                 file_index=self.file_index % CHUNKS_SIZE)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container, self.frames = av.open(str(self.path), "w"), 0
        self.stream = self.container.add_stream(video_codec(), rate=Fraction(self.fps))
        self.stream.width, self.stream.height = self.shape[1], self.shape[0]
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.gop_size = 2  # LeRobot's short GOP: cheap random access for training
        if self.stream.codec_context.name == "libx264":
            self.stream.options = {"crf": "20"}
        else:
            self.stream.bit_rate = 8_000_000

    def append(self, frames) -> dict:
        """Encode one episode's frames; returns its episode-table columns."""
        import av
        if self.container is None or self.path.stat().st_size >= VIDEO_FILE_MB * 2 ** 20:
            self.close()
            self._open()
        start = self.frames
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = self.frames  # in the codec's time base, 1 / fps
            self.container.mux(self.stream.encode(frame))
            self.frames += 1
        p = f"videos/{self.key}/"
        return {p + "chunk_index": self.file_index // CHUNKS_SIZE, p + "file_index": self.file_index % CHUNKS_SIZE,
                p + "from_timestamp": start / self.fps, p + "to_timestamp": self.frames / self.fps}

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode(None))
            self.container.close()
            self.container = None


def video_codec() -> str:
    """The first of CODECS this PyAV can encode with (libx264 in a normal install)."""
    import av
    for name in CODECS:
        try:
            av.codec.Codec(name, "w")
            return name
        except (ValueError, av.error.FFmpegError):
            continue
    raise UserError(f"PyAV has none of the video encoders {', '.join(CODECS)}")


def _language_types():
    import pyarrow as pa
    row = [("role", pa.string()), ("content", pa.string()), ("style", pa.string()),
           ("timestamp", pa.float32()), ("camera", pa.string()), ("tool_calls", pa.list_(pa.string()))]
    return pa.list_(pa.struct(row)), pa.list_(pa.struct([f for f in row if f[0] != "timestamp"]))


def _indexed_table(path: Path, name: str, values: list[str]) -> None:
    """A table keyed by text, as pandas' `DataFrame({f"{name}_index": ...}, index=Index(values, name=name))
    .to_parquet()` writes it (LeRobot reads it with pandas and looks rows up by the text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    pandas_meta = {"index_columns": [name], "column_indexes": [
        {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
         "metadata": {"encoding": "UTF-8"}}], "columns": [
        {"name": f"{name}_index", "field_name": f"{name}_index", "pandas_type": "int64", "numpy_type": "int64",
         "metadata": None},
        {"name": name, "field_name": name, "pandas_type": "unicode", "numpy_type": "object", "metadata": None}],
        "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3"}
    table = pa.table({f"{name}_index": pa.array(range(len(values)), pa.int64()), name: pa.array(values, pa.string())})
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), path)


def _fixed(x: np.ndarray):
    import pyarrow as pa
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


def _episode_files(dirs: list[Path]) -> list[Path]:
    files = []
    for d in map(Path, dirs):
        if d.is_dir():
            found = sorted(d.glob("*.h5"))
            if not found:
                raise UserError(f"no episode files (*.h5) in {d}")
            files += found
        elif d.exists():
            files.append(d)
        else:
            raise UserError(f"no such file or folder: {d}")
    return files


def export_lerobot(episodes: list[Path], out: Path, progress: Callable[[int, int], None] | None = None,
                   warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> dict:
    """Write `episodes` (files) as a LeRobotDataset v3 at `out` (absent or empty); unreadable or
    mismatching episodes are skipped with one `warn` line each. Returns a summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not empty; export into a new folder")
    t0, layout, videos, rows, stats, skipped = time.monotonic(), None, {}, [], [], []
    tasks: dict[str, int] = {}
    subtasks: dict[str, int] = {}
    persistent_t, events_t = _language_types()
    writer, data_file, total = None, -1, 0
    for k, path in enumerate(episodes):
        if progress is not None:
            progress(k, len(episodes))
        try:
            ep, src = _read(path)
        except (EpisodeError, OSError, ValueError) as e:
            skipped.append(f"skipped {path}: {e}")
            warn(skipped[-1])
            continue
        with ep:
            shapes = {key: ep.stream_spec(key[len(IMAGE_PREFIX):] + "_rgb").shape for key in src.cameras}
            if layout is None:
                layout = (src.fps, shapes, src.robot)
                out.mkdir(parents=True, exist_ok=True)
                videos = {key: _Video(out, key, src.fps, shape) for key, shape in shapes.items()}
            elif layout[:2] != (src.fps, shapes):
                skipped.append(f"skipped {path}: {src.fps} Hz with cameras {shapes} differs from the first "
                               f"episode's {layout[0]} Hz with {layout[1]}")
                warn(skipped[-1])
                continue
            n, e = len(src.action), len(rows)
            task_index = tasks.setdefault(src.instruction, len(tasks))
            sub = np.array([subtasks.setdefault(c, len(subtasks)) for c in src.subtasks], np.int64)
            columns = {"timestamp": np.arange(n, dtype=np.float32) / src.fps, "frame_index": np.arange(n),
                       "episode_index": np.full(n, e), "index": total + np.arange(n),
                       "task_index": np.full(n, task_index), "subtask_index": sub}
            ep_stats = {STATE: _stats(src.state, 0), ACTION: _stats(src.action, 0)}
            ep_stats |= {c: _stats(v[:, None], 0) for c, v in columns.items()}
            row = {"episode_index": e, "tasks": [src.instruction], "length": n}
            for key, cam_rows in src.cameras.items():
                data = ep.stream_data(key[len(IMAGE_PREFIX):] + "_rgb")
                row |= videos[key].append(data[int(r)] for r in cam_rows)
                ep_stats[key] = _image_stats(data, cam_rows)
        language = [{"role": "assistant", "content": code, "style": "subtask", "timestamp": a / src.fps,
                     "camera": None, "tool_calls": None} for a, code in src.segments]
        table = pa.table({STATE: _fixed(src.state), ACTION: _fixed(src.action)}
                         | {c: pa.array(v) for c, v in columns.items()}
                         | {"language_persistent": pa.array([language] * n, persistent_t),
                            "language_events": pa.array([[]] * n, events_t)})
        if writer is None or writer.where.stat().st_size >= DATA_FILE_MB * 2 ** 20:
            if writer is not None:
                writer.close()
            data_file += 1
            where = out / DATA_PATH.format(chunk_index=data_file // CHUNKS_SIZE, file_index=data_file % CHUNKS_SIZE)
            where.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(where, table.schema)
        writer.write_table(table)  # one row group per episode, as LeRobot writes them
        row |= {"data/chunk_index": data_file // CHUNKS_SIZE, "data/file_index": data_file % CHUNKS_SIZE,
                "dataset_from_index": total, "dataset_to_index": total + n,
                "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
        row |= {f"stats/{f}/{s}": v.tolist() for f, fs in ep_stats.items() for s, v in fs.items()}
        rows.append(row)
        stats.append(ep_stats)
        total += n
    if progress is not None:
        progress(len(episodes), len(episodes))
    if writer is not None:
        writer.close()
    for v in videos.values():
        v.close()
    if not rows:
        raise UserError(f"none of the {len(episodes)} episode files could be exported")
    fps, shapes, robot = layout
    (out / EPISODES_PATH).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), out / EPISODES_PATH)
    _indexed_table(out / "meta/tasks.parquet", "task", list(tasks))
    _indexed_table(out / "meta/subtasks.parquet", "subtask", list(subtasks))
    scalar = {"dtype": "int64", "shape": [1], "names": None}
    codec = {"libx264": "h264", "libopenh264": "h264"}.get(video_codec(), "mpeg4")
    features = {STATE: {"dtype": "float32", "shape": [len(STATE_NAMES)], "names": STATE_NAMES},
                ACTION: {"dtype": "float32", "shape": [len(ACTION_NAMES)], "names": ACTION_NAMES}}
    features |= {key: {"dtype": "video", "shape": list(shape), "names": ["height", "width", "channels"],
                       "info": {"video.height": shape[0], "video.width": shape[1], "video.codec": codec,
                                "video.pix_fmt": "yuv420p", "video.fps": fps, "video.channels": 3,
                                "has_audio": False, "is_depth_map": False}} for key, shape in shapes.items()}
    features |= {"timestamp": {"dtype": "float32", "shape": [1], "names": None}}
    features |= {c: scalar for c in INDEX_COLUMNS[1:]}
    features |= {c: {"dtype": "language", "shape": [1], "names": None}
                 for c in ("language_persistent", "language_events")}
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot, "fps": fps, "features": features,
            "total_episodes": len(rows), "total_frames": total, "total_tasks": len(tasks),
            "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_FILE_MB,
            "video_files_size_in_mb": VIDEO_FILE_MB, "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if shapes else None, "splits": {"train": f"0:{len(rows)}"}}
    (out / "meta/info.json").write_text(json.dumps(info, indent=2))
    dataset_stats = {f: {s: v.tolist() for s, v in _aggregate([st[f] for st in stats]).items()} for f in stats[0]}
    (out / "meta/stats.json").write_text(json.dumps(dataset_stats, indent=2))
    seconds = time.monotonic() - t0
    return {"out": str(out), "episodes": len(rows), "frames": total, "tasks": len(tasks),
            "subtasks": len(subtasks), "cameras": sorted(shapes), "codec": codec, "skipped": skipped,
            "seconds": round(seconds, 2)}


def run_export_lerobot(args) -> int:
    """The CLI command: `args.dirs` (folders or episode files), `args.out`. A tqdm bar on a terminal,
    otherwise one line per episode (logs, the GUI's process view); both on stderr."""
    files = _episode_files(args.dirs)
    if sys.stderr.isatty():
        from tqdm import tqdm
        with tqdm(total=len(files), unit="episode", desc="export", file=sys.stderr) as bar:
            summary = export_lerobot(files, Path(args.out), lambda done, _: bar.update(done - bar.n),
                                     warn=lambda line: bar.write(line, file=sys.stderr))
    else:
        summary = export_lerobot(files, Path(args.out), lambda done, total: print(
            f"export: {done}/{total} episodes", file=sys.stderr, flush=True))
    print(f"exported {summary['episodes']} episodes ({summary['frames']} frames, {summary['tasks']} tasks, "
          f"{summary['subtasks']} subtasks, cameras {', '.join(summary['cameras']) or 'none'}) to {summary['out']} "
          f"in {summary['seconds']} s" + (f"; skipped {len(summary['skipped'])}" if summary["skipped"] else ""))
    return 0
