"""THE episode file format (DESIGN.md section 5): one HDF5 file per episode, `format_version` 1 or 2.

This module owns the schema; nothing else opens episode files with h5py directly.
```
/ attrs   format_version, task, instruction, robot (sim | franky-sim | franky), control_hz, seed (-1: none),
          split, created (ISO-8601), clock (sim | monotonic), scene (JSON: spec, roles, program and
          provenance, see recorders/episode_meta.py), success (1 | 0 | -1 unknown), recovered (0 | 1),
          labels_edited (0 | 1), memory (JSON, optional)
/streams/<name>/data   (N, *shape); attrs kind (array | rgb | depth | audio), rate_hz (nominal), meta (JSON;
          cameras: intrinsics and mount, recorders/cell/camera_geometry.py)
/streams/<name>/time   (N,) float64 seconds since the episode's start on its one clock (NaN: never written)
/calls    (M,) variable-length UTF-8, one JSON object per logged robot-API call (appendable while recording)
/labels   (K,) variable-length UTF-8, one JSON segment {start, end, code, source} each; frames index `action`
/interventions (I,) variable-length UTF-8, one JSON intervention of a supervised run each (appendable while
          recording; recorders/intervention.py); empty when nobody intervened, absent in older files
/faults   (F,) variable-length UTF-8, one JSON device fault each {t, stream, text} (a camera lost, the
          microphone gone, an arm reflex; appendable while recording); absent in older files
```
Version 2 is version 1 plus video-coded camera streams: a take recorded at a video quality other than
lossless (recorders/video_quality.py) stores its rgb streams as H.264 and its depth streams as FFV1
(lossless, 16 bit) in the layout of recorders/video_stream.py (`packets`, `index`, `time`, attributes
on the stream's group); `stream_data` then returns `VideoFrames`, indexed like a dataset. A file is
written as version 2 only when it has such a stream, so lossless takes stay readable by older readers.

The stream `action` is the control timeline: frame i is its row i. Raw image streams hold one frame per
chunk, compressed with Blosc-LZ4 and byte shuffle (1.4 ms per 640x480 RGB-D pair): two such cameras
at 30 fps record on two cores with no drops, where h5py's built-in lzf (12 ms a pair) took a whole
core and dropped 938 frames in the 60 s `bench recording`.
Files written before calls and labels became string rows (calls as JSON-lines bytes, labels as one
JSON list), and before the scene held a provenance or interventions existed, are still version 1 and
still read. Readers get calls, labels and interventions as frozen records (`CallRecord`, `Segment`,
`Intervention`), never as dicts.

Writing a recording lives in recorders/episode_writer.py (it builds datasets with `create_stream` and
`create_rows` below) and recovering a killed one in recorders/episode_recovery.py (through the helpers
below); this module reads, summarises, rewrites labels and a
take's instruction and success, and raises only `EpisodeError` subclasses with one-line messages that name the file.
"""
from __future__ import annotations

import functools
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import hdf5plugin  # registers the Blosc filter of image streams
import numpy as np

from recorders.call_log import CallRecord
from recorders.episode_meta import EpisodeMeta
from recorders.intervention import Intervention
from recorders.segmentation import IDLE, PROVENANCES, Segment
from recorders import video_stream
from recorders.video_quality import describe as describe_encoding
from recorders.video_stream import VideoFrames

FORMAT_VERSION = 2  # the newest this module reads; 1 when a file has no video-coded stream
CONTROL_STREAM = "action"
PARTIAL_SUFFIX = ".partial"
KIND_DTYPES = {"array": ("float32", "float64"), "rgb": ("uint8",), "depth": ("uint16",), "audio": ("int16",)}
KIND_NDIMS = {"rgb": 3, "depth": 2, "audio": 1}
_LABELS_TMP = "labels.new"  # write_labels' staging name; read if a crash left it alone
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
READ_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)
STRING = h5py.string_dtype("utf-8")


class EpisodeError(Exception):
    """An episode file cannot be used; the message is one line naming the file."""


class NotAnEpisodeError(EpisodeError):
    """Not HDF5, or HDF5 without a Code2Act format_version."""


class EmptyEpisodeError(EpisodeError):
    """A zero-byte file, or an episode without frames."""


class TruncatedEpisodeError(EpisodeError):
    """Cut off, damaged, or an unfinished recording that cannot be read."""


class UnsupportedVersionError(EpisodeError):
    """Written by a newer Code2Act."""


class EpisodeWriteError(EpisodeError):
    """Writing a recording failed (disk full, file removed under the writer, ...)."""


class EpisodeExistsError(EpisodeWriteError):
    """A recording would replace a finished episode or an unfinished one (its `.partial`)."""


@dataclass(frozen=True)
class StreamSpec:
    name: str
    kind: str  # array | rgb | depth | audio
    shape: tuple[int, ...]  # of one sample: rgb (H, W, 3), depth (H, W), audio (channels,)
    dtype: str  # array float32 | float64, rgb uint8, depth uint16 (millimetres), audio int16
    rate_hz: float  # nominal
    meta: dict = field(default_factory=dict)  # JSON: intrinsics, camera mount, depth_scale, object names, ...

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        if not self.name or "/" in self.name:
            raise ValueError(f"stream name must be non-empty without '/', got {self.name!r}")
        if self.kind not in KIND_DTYPES:
            raise ValueError(f"stream {self.name!r}: kind must be one of {', '.join(KIND_DTYPES)}, got {self.kind!r}")
        if self.dtype not in KIND_DTYPES[self.kind]:
            raise ValueError(f"stream {self.name!r}: a {self.kind} stream holds {' or '.join(KIND_DTYPES[self.kind])}, "
                             f"got {self.dtype}")
        ndim = KIND_NDIMS.get(self.kind)
        if ndim is not None and (len(self.shape) != ndim or (self.kind == "rgb" and self.shape[2] != 3)):
            raise ValueError(f"stream {self.name!r}: bad {self.kind} sample shape {self.shape}")
        if not self.rate_hz > 0:
            raise ValueError(f"stream {self.name!r}: rate_hz must be > 0, got {self.rate_hz}")
        json.dumps(self.meta)  # TypeError now rather than in the writer thread

    @property
    def chunks(self) -> tuple[int, ...]:
        if self.kind in ("rgb", "depth"):
            return (1, *self.shape)  # one frame per chunk: random access while scrubbing
        return (4096 if self.kind == "audio" else 256, *self.shape)


# ---- schema: the writer, recovery and label edits build datasets only through these --------------
def root_attrs(meta: EpisodeMeta, created: str, video: bool = False) -> dict:
    """Root attributes of a new file; `video`: it has video-coded streams (format version 2)."""
    return {"format_version": 2 if video else 1, "task": meta.task, "instruction": meta.instruction,
            "robot": meta.robot, "control_hz": float(meta.control_hz), "seed": int(meta.seed), "split": meta.split,
            "created": created, "clock": meta.clock, "scene": meta.scene_json(), "success": -1,
            "recovered": 0, "labels_edited": 0}


def create_stream(f: h5py.File, spec: StreamSpec) -> tuple[h5py.Dataset, h5py.Dataset]:
    """Empty, resizable /streams/<name>/data and /time; returns (data, time)."""
    g = f.create_group(f"streams/{spec.name}")
    filters = dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)) \
        if spec.kind in ("rgb", "depth") else {}
    data = g.create_dataset("data", shape=(0, *spec.shape), maxshape=(None, *spec.shape), dtype=spec.dtype,
                            chunks=spec.chunks, **filters)
    data.attrs.update({"kind": spec.kind, "rate_hz": float(spec.rate_hz), "meta": json.dumps(spec.meta)})
    time = g.create_dataset("time", shape=(0,), maxshape=(None,), dtype="float64", chunks=(1024,),
                            fillvalue=np.nan)
    return data, time


ROW_LOGS = ("calls", "interventions", "faults")  # datasets of JSON rows appended while recording


def create_rows(f: h5py.File, name: str, rows: list[str] = ()) -> h5py.Dataset:
    """An appendable dataset of JSON rows (`name` in ROW_LOGS), holding `rows`."""
    if name not in ROW_LOGS:
        raise ValueError(f"row log must be one of {', '.join(ROW_LOGS)}, got {name!r}")
    d = f.create_dataset(name, shape=(len(rows),), maxshape=(None,), dtype=STRING, chunks=(64,))
    if rows:
        d[:] = rows
    return d


def encode_labels(labels: list[dict]) -> list[str]:
    """Validated JSON rows of /labels; ValueError names the bad segment. Keys beyond start, end,
    code and source (e.g. the annotator's "trimmed") are kept as they are."""
    rows = []
    for i, s in enumerate(labels):
        try:
            seg = {**s, "start": int(s["start"]), "end": int(s["end"]), "code": str(s["code"]),
                   "source": str(s.get("source", "auto"))}
            if not 0 <= seg["start"] <= seg["end"] or seg["source"] not in PROVENANCES:
                raise ValueError
            rows.append(json.dumps(seg))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"segment {i} is invalid (needs integer 0 <= start <= end, a code, source "
                             f"auto|edited|proposed, JSON values): {s!r}") from None
    return rows


def store_labels(f: h5py.File, rows: list[str], name: str = "labels") -> None:
    f.create_dataset(name, shape=(len(rows),), dtype=STRING, data=rows if rows else None)


def create_video_stream(f: h5py.File, spec: StreamSpec, encoding: dict):
    """Empty, resizable datasets of a video-coded stream (recorders/video_stream.py); returns
    (packets, index, time)."""
    if spec.kind not in ("rgb", "depth"):
        raise ValueError(f"stream {spec.name!r}: only rgb and depth streams are video-coded, not {spec.kind}")
    return video_stream.create_video_stream(f, spec, encoding)


def spec_of(name: str, g: h5py.Group) -> StreamSpec:
    if video_stream.is_video(g):
        kind, shape, dtype, rate_hz, meta, _ = video_stream.stream_fields(g)
        return StreamSpec(name, kind, shape, dtype, rate_hz, meta)
    d = g["data"]
    return StreamSpec(name, str(d.attrs.get("kind", "array")), d.shape[1:], d.dtype.name,
                      float(d.attrs.get("rate_hz", 1.0)), json.loads(str(d.attrs.get("meta", "{}"))))


def json_rows(d: h5py.Dataset) -> list:
    """JSON objects of /calls or /labels; a row cut by a crash ends the list."""
    if d.shape == ():  # first v1 labels: one JSON list
        return json.loads(bytes(d[()]).decode("utf-8"))
    if d.dtype == np.uint8:  # first v1 calls: JSON lines as bytes
        lines = d[:].tobytes().decode("utf-8", errors="replace").splitlines()
    else:
        try:
            lines = list(d.asstr()[:])
        except READ_ERRORS:  # read row by row up to the first unreadable one
            lines = []
            for i in range(d.shape[0]):
                try:
                    lines.append(d.asstr()[i])
                except READ_ERRORS:
                    break
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


# ---- reading ---------------------------------------------------------------------------------------
def short_error(e: Exception) -> str:
    return " ".join(str(e).split())[:120]


def _has_hdf5_signature(path: Path) -> bool:
    with open(path, "rb") as f:
        for offset in (0, 512, 1024, 2048, 4096):  # a user block moves the superblock
            f.seek(offset)
            if f.read(8) == _HDF5_SIGNATURE:
                return True
    return False


def open_h5(path: Path) -> h5py.File:
    """Open read-only (a killed writer's partial as a SWMR reader), mapping failures to typed errors."""
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    if path.is_dir():
        raise NotAnEpisodeError(f"{path} is a folder, not an episode file")
    if path.stat().st_size == 0:
        raise EmptyEpisodeError(f"{path} is empty (0 bytes)")
    if not _has_hdf5_signature(path):
        raise NotAnEpisodeError(f"{path} is not an HDF5 episode file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        if "already open for write" not in str(e):
            raise TruncatedEpisodeError(f"{path} is truncated or damaged ({short_error(e)})") from None
    try:  # still marked open by a SWMR writer (a recording in progress, or killed)
        return h5py.File(path, "r", swmr=True)
    except OSError as e:
        raise TruncatedEpisodeError(f"{path} is an unfinished recording that cannot be read ({short_error(e)})") from None


def check_version(path: Path, h5: h5py.File) -> int:
    if "format_version" not in h5.attrs:
        raise NotAnEpisodeError(f"{path} is an HDF5 file but not a Code2Act episode (no format_version)")
    version = int(h5.attrs["format_version"])
    if version > FORMAT_VERSION:
        raise UnsupportedVersionError(f"{path} has format version {version}; this Code2Act reads up to "
                                      f"{FORMAT_VERSION} (update Code2Act)")
    return version


class Episode:
    """Read access to one episode file; stream data stays on disk until indexed."""

    def __init__(self, path: Path, h5: h5py.File):
        self.path, self.h5 = Path(path), h5
        try:
            self.format_version = check_version(self.path, h5)
            a = h5.attrs
            self.scene: dict = json.loads(str(a.get("scene", "{}")))  # as stored, for readers that take JSON
            self.meta = EpisodeMeta.from_attrs(a, self.scene)
            self.created = str(a.get("created", ""))
            s = int(a.get("success", -1))
            self.success: bool | None = None if s < 0 else bool(s)
            self.recovered = bool(int(a.get("recovered", 0)))
            self.labels_edited = bool(int(a.get("labels_edited", 0)))
            self.stream_names = sorted(h5["streams"].keys()) if "streams" in h5 else []
            self._video: dict[str, VideoFrames] = {}  # one decoder per video stream, kept while open
            frames = self.stream_count(CONTROL_STREAM) if CONTROL_STREAM in self.stream_names else 0
        except EpisodeError:
            h5.close()
            raise
        except READ_ERRORS as e:
            h5.close()
            raise TruncatedEpisodeError(f"{path} is missing or has damaged episode fields ({short_error(e)})") from None
        if frames == 0:
            h5.close()
            if is_partial(self.path):
                raise EmptyEpisodeError(f"{path} is an unfinished recording ({PARTIAL_SUFFIX}) with no frames: "
                                        f"it was killed before its first flush and holds nothing to recover")
            raise EmptyEpisodeError(f"{path} has no frames (stream {CONTROL_STREAM!r} is empty or missing)")

    task = property(lambda self: self.meta.task)
    instruction = property(lambda self: self.meta.instruction)
    robot = property(lambda self: self.meta.robot)
    control_hz = property(lambda self: self.meta.control_hz)
    seed = property(lambda self: self.meta.seed)
    split = property(lambda self: self.meta.split)
    clock = property(lambda self: self.meta.clock)
    provenance = property(lambda self: self.meta.provenance)

    def __enter__(self) -> "Episode":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.h5.close()

    def _read(self, what: str, fn):
        try:
            return fn()
        except READ_ERRORS as e:
            raise TruncatedEpisodeError(f"{self.path}: cannot read {what} ({short_error(e)})") from None

    def stream_count(self, name: str) -> int:
        g = self.h5["streams"][name]
        if video_stream.is_video(g):
            return video_stream.row_count(g)
        return min(g["data"].shape[0], g["time"].shape[0])

    def stream_data(self, name: str) -> h5py.Dataset | VideoFrames:
        """The stream's data, (N, *shape), still on disk: index it to read. A raw stream is an h5py
        dataset; a video-coded one `VideoFrames`, which decodes what is indexed."""
        g = self.h5["streams"][name]
        if not video_stream.is_video(g):
            return g["data"]
        frames = self._video.get(name)
        if frames is None:
            error = lambda reason: TruncatedEpisodeError(f"{self.path}: {name}: {reason}")  # noqa: E731
            frames = self._read(f"stream {name}", lambda: VideoFrames(g, self.stream_count(name), error))
            self._video[name] = frames
        return frames

    def samples_at(self, rows: dict[str, int]) -> dict[str, np.ndarray]:
        """Row `rows[name]` of each named stream; video-coded ones are decoded side by side (PyAV lets go
        of the GIL while it decodes: two 640x480 cameras scrub 1.4x faster than one after the other)."""
        video = [name for name in rows if name in self.stream_names and video_stream.is_video(self.h5["streams"][name])]
        if len(video) < 2:
            return {name: np.asarray(self.stream_data(name)[row]) for name, row in rows.items()}
        data = {name: self.stream_data(name) for name in rows}  # opened here, on the caller's thread
        futures = {name: _decode_pool().submit(data[name].__getitem__, rows[name]) for name in video}
        out = {name: np.asarray(data[name][row]) for name, row in rows.items() if name not in futures}
        return {**out, **{name: f.result() for name, f in futures.items()}}

    def stream_bytes(self, name: str) -> int:
        """Bytes the stream's samples take in the file (compressed chunks, or a video stream's packets)."""
        g = self.h5["streams"][name]
        return int((g["packets"] if video_stream.is_video(g) else g["data"]).id.get_storage_size())

    def stream_encoding(self, name: str) -> dict | None:
        """The codec settings of a video-coded stream (recorders/video_quality.py), None for a raw one."""
        g = self.h5["streams"][name]
        return video_stream.stream_fields(g)[5] if video_stream.is_video(g) else None

    def stream_time(self, name: str) -> np.ndarray:
        n = self.stream_count(name)
        return self._read(f"{name} times", lambda: self.h5["streams"][name]["time"][:n])  # (N,)

    def stream_spec(self, name: str) -> StreamSpec:
        return self._read(f"stream {name}", lambda: spec_of(name, self.h5["streams"][name]))

    def stream_info(self, name: str) -> dict:
        s = self.stream_spec(name)
        return {"kind": s.kind, "shape": list(s.shape), "count": self.stream_count(name), "rate_hz": s.rate_hz,
                "meta": s.meta, "encoding": describe_encoding(self.stream_encoding(name))}

    @property
    def unfinished(self) -> bool:
        """A `.partial` file: a recording in progress or killed, not yet recovered."""
        return is_partial(self.path)

    @property
    def frames(self) -> int:
        return self.stream_count(CONTROL_STREAM)

    @property
    def duration_s(self) -> float:
        t = self.stream_time(CONTROL_STREAM)
        return float(t[-1] - t[0] + 1.0 / self.control_hz) if len(t) else 0.0

    @property
    def calls_logged(self) -> bool:
        """Whether the file has a call log at all (an imported or foreign file may not)."""
        return "calls" in self.h5

    @property
    def calls_missing(self) -> str | None:
        """Why segments cannot be derived from this episode's calls (None: they can): it has no call
        log, or an empty one although its labels name calls, so the calls were lost, not absent.
        Re-segmenting such an episode would replace its labels with one idle segment."""
        if not self.calls_logged:
            return "it has no call log (/calls), so segments cannot be derived from its calls"
        if not self.calls and any(s.code != IDLE for s in self.labels):
            return "its call log is empty although its labels name calls, so the calls were lost"
        return None

    @property
    def calls(self) -> tuple[CallRecord, ...]:
        """The logged robot-API calls, in the order they ended."""
        if not self.calls_logged:
            return ()
        rows = self._read("calls", lambda: json_rows(self.h5["calls"]))
        return self._parsed("calls", lambda: tuple(CallRecord.from_dict(d) for d in rows))

    @property
    def interventions(self) -> tuple[Intervention, ...]:
        """Where the operator stepped in during a supervised run, in the order the interventions ended."""
        if "interventions" not in self.h5:
            return ()
        rows = self._read("interventions", lambda: json_rows(self.h5["interventions"]))
        return self._parsed("interventions", lambda: tuple(Intervention.from_dict(d) for d in rows))

    @property
    def faults(self) -> tuple[dict, ...]:
        """Device faults during the take, each {t, stream, text}: which stream was affected from when."""
        if "faults" not in self.h5:
            return ()
        return tuple(self._read("faults", lambda: json_rows(self.h5["faults"])))

    @property
    def memory(self) -> dict | None:
        """The robot's memory at the end of the episode (`Memory.to_json()`: key poses, poses captured
        at gripper events, call history), or None when it was not stored."""
        text = self.h5.attrs.get("memory")
        if text is None:
            return None
        try:
            return json.loads(str(text))
        except ValueError:
            raise TruncatedEpisodeError(f"{self.path}: its memory is not readable JSON") from None

    @property
    def labels(self) -> tuple[Segment, ...]:
        for name in ("labels", _LABELS_TMP):
            if name in self.h5:
                rows = self._read("labels", lambda: json_rows(self.h5[name]))
                return self._parsed("labels", lambda: tuple(Segment.from_dict(d) for d in rows))
        return ()

    def _parsed(self, what: str, fn):
        try:
            return fn()
        except (KeyError, TypeError, ValueError) as e:  # CallRecordError and InterventionError are ValueErrors
            raise TruncatedEpisodeError(f"{self.path}: its {what} are malformed ({short_error(e)})") from None


@functools.cache
def _decode_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="episode-decode")


def open_episode(path) -> Episode:
    """Open an episode for reading (a `.partial` too, if readable); raises EpisodeError subclasses
    (FileNotFoundError when there is no such file)."""
    path = Path(path)
    return Episode(path, open_h5(path))


def episode_summary(ep: Episode) -> dict:
    """The JSON of `inspect --json` (DESIGN.md section 2); frame indices count rows of `action`."""
    try:
        streams = {}
        for name in ep.stream_names:
            info = ep.stream_info(name)
            streams[name] = {"shape": info["shape"], "count": info["count"], "rate_hz": info["rate_hz"],
                             "kind": info["kind"], "encoding": info["encoding"]}
        calls = [{"code": c.code, "t_start": c.t_start, "t_end": c.t_end, "status": c.status, "source": c.source,
                  **({"reason": c.reason} if c.reason else {})} for c in ep.calls]
        segments = [{"start": s.start, "end": s.end, "code": s.code, "source": s.source} for s in ep.labels]
        return {"task": ep.task, "instruction": ep.instruction, "robot": ep.robot, "frames": ep.frames,
                "duration_s": round(ep.duration_s, 3), "control_hz": ep.control_hz, "streams": streams,
                "calls": calls, "segments": segments, "success": ep.success,
                "format_version": ep.format_version, "recovered": ep.recovered, "unfinished": ep.unfinished,
                "seed": ep.seed, "split": ep.split, "memory": ep.memory,
                "interventions": [i.to_dict() for i in ep.interventions], "faults": list(ep.faults),
                "provenance": None if ep.provenance is None else ep.provenance.to_json()}
    except READ_ERRORS as e:
        raise TruncatedEpisodeError(f"{ep.path} is damaged ({short_error(e)})") from None


# ---- label edits -------------------------------------------------------------------------------------
def write_labels(path, labels: list[dict], edited: bool | None = None) -> None:
    """Replace the labels of a finished episode in place and set `labels_edited`
    (default: whether any segment's source is "edited").

    The new labels are written under a temporary name and flushed, then the old dataset is unlinked
    and the new one moved to `labels`. A kill between the unlink and the move leaves only the
    temporary dataset, which readers take as the labels, so a kill never loses both. HDF5 has no
    journal, though: power lost while the library rewrites its metadata (a few milliseconds) can
    damage the file; copying a multi-GB episode to swap it atomically would cost far more.
    """
    path = Path(path)
    rows = encode_labels(labels)
    if is_partial(path):
        raise TruncatedEpisodeError(f"{path} is an unfinished recording; recover it before editing labels")
    with open_episode(path):
        pass  # typed errors before anything is written
    if edited is None:
        edited = any(json.loads(r)["source"] == "edited" for r in rows)
    try:
        with h5py.File(path, "r+") as f:
            if _LABELS_TMP in f:
                del f[_LABELS_TMP]
            store_labels(f, rows, _LABELS_TMP)
            f.flush()
            if "labels" in f:
                del f["labels"]
            f.move(_LABELS_TMP, "labels")
            f.attrs["labels_edited"] = int(bool(edited))
    except OSError as e:
        raise TruncatedEpisodeError(f"{path}: cannot write labels ({short_error(e)})") from None


def write_outcome(path, instruction: str, success: bool | None) -> None:
    """Replace the instruction and success (None: unknown) of a finished episode in place: the
    annotator's corrections of a take (a real take's free-text instruction, whether it worked).

    Both are root attributes every version-1 file has, so nothing is versioned anew. They are set
    in one open of the file and reach the disk together when it closes (HDF5 writes the changed
    metadata then), so a kill leaves both old or both new; the same caveat about power loss as
    `write_labels` applies. ValueError (before anything is written) for an instruction of more than one line.
    """
    path = Path(path)
    text = instruction.strip() if isinstance(instruction, str) else None
    if text is None or "\n" in text or "\r" in text:
        raise ValueError(f"an instruction is one line of text, got {instruction!r}")
    if success not in (None, True, False):
        raise ValueError(f"success is True, False or None (unknown), got {success!r}")
    if is_partial(path):
        raise TruncatedEpisodeError(f"{path} is an unfinished recording; recover it before editing it")
    with open_episode(path):
        pass  # typed errors before anything is written
    try:
        with h5py.File(path, "r+") as f:
            f.attrs.update({"instruction": text, "success": -1 if success is None else int(success)})
    except OSError as e:
        raise TruncatedEpisodeError(f"{path}: cannot write the instruction and success ({short_error(e)})") from None


def is_partial(path: Path) -> bool:
    """A `.partial` file: a recording in progress or killed, not yet recovered."""
    return Path(path).name.endswith(PARTIAL_SUFFIX)
