"""THE episode file format (DESIGN.md section 5): one HDF5 file per episode, `format_version` 1.

This module owns the schema; nothing else opens episode files with h5py directly.
```
/ attrs   format_version, task, instruction, robot, control_hz, seed, split, created, clock,
          scene (JSON), success (1 | 0 | -1 unknown), recovered (0 | 1), labels_edited (0 | 1)
/streams/<name>/data   (N, *shape); attrs kind (array | rgb | depth | audio), rate_hz, meta (JSON)
/streams/<name>/time   (N,) float64, seconds since the episode's start on its one clock
/calls    uint8 bytes of JSON lines, one logged robot-API call per line (appendable while recording)
/labels   scalar UTF-8 JSON list of segments {start, end, code, source}; frames index `action`
```
The stream `action` is the control timeline: frame i is its row i. Image streams hold one frame
per chunk, compressed with Blosc-LZ4 and byte shuffle (fast enough for two 640x480 RGB-D cameras at
30 fps on two cores; h5py's built-in lzf is 5x slower). Writing lives in recorders/episode_writer.py; this module reads, recovers
and rewrites labels, and raises only `EpisodeError` subclasses with one-line messages.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import hdf5plugin  # registers the Blosc filter image streams are compressed with
import numpy as np

FORMAT_VERSION = 1
CONTROL_STREAM = "action"
PARTIAL_SUFFIX = ".partial"
STREAM_KINDS = ("array", "rgb", "depth", "audio")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class EpisodeError(Exception):
    """An episode file cannot be used; the message is one line naming the file."""


class NotAnEpisodeError(EpisodeError):
    pass


class EmptyEpisodeError(EpisodeError):
    pass


class TruncatedEpisodeError(EpisodeError):
    pass


class UnsupportedVersionError(EpisodeError):
    pass


@dataclass(frozen=True)
class StreamSpec:
    name: str
    kind: str  # array | rgb | depth | audio
    shape: tuple[int, ...]  # of one sample
    dtype: str
    rate_hz: float  # nominal
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in STREAM_KINDS:
            raise ValueError(f"stream kind must be one of {', '.join(STREAM_KINDS)}, got {self.kind!r}")


@dataclass(frozen=True)
class EpisodeMeta:
    task: str
    instruction: str
    robot: str
    control_hz: float
    seed: int = -1
    split: str = ""
    clock: str = "monotonic"
    scene: dict = field(default_factory=dict)


def image_compression() -> dict:
    """h5py create_dataset keywords of the filter used for image streams."""
    return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))


def _has_hdf5_signature(path: Path) -> bool:
    with open(path, "rb") as f:
        for offset in (0, 512, 1024, 2048, 4096):  # a user block moves the superblock
            f.seek(offset)
            if f.read(8) == _HDF5_SIGNATURE:
                return True
    return False


def _open_h5(path: Path, swmr_ok: bool = False) -> h5py.File:
    """Open read-only, mapping every failure to a typed one-line error."""
    path = Path(path)
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
        if "already open for write" in str(e):
            if swmr_ok:
                try:
                    return h5py.File(path, "r", swmr=True)
                except OSError:
                    pass
            raise TruncatedEpisodeError(f"{path} is an unfinished recording (its recorder was stopped); "
                                        f"`record` into its folder recovers it") from None
        raise TruncatedEpisodeError(f"{path} is truncated or damaged ({_short(e)})") from None


def _short(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text[:120]


class Episode:
    """Read access to one episode file; stream data stays on disk until indexed."""

    def __init__(self, path: Path, h5: h5py.File):
        self.path = Path(path)
        self.h5 = h5
        attrs = h5.attrs
        if "format_version" not in attrs:
            h5.close()
            raise NotAnEpisodeError(f"{path} is an HDF5 file but not a Code2Act episode (no format_version)")
        version = int(attrs["format_version"])
        if version > FORMAT_VERSION:
            h5.close()
            raise UnsupportedVersionError(f"{path} has format version {version}; this Code2Act reads up to "
                                          f"{FORMAT_VERSION} (update Code2Act)")
        try:
            self.format_version = version
            self.task = str(attrs["task"])
            self.instruction = str(attrs.get("instruction", ""))
            self.robot = str(attrs["robot"])
            self.control_hz = float(attrs["control_hz"])
            self.seed = int(attrs.get("seed", -1))
            self.split = str(attrs.get("split", ""))
            self.clock = str(attrs.get("clock", ""))
            self.created = str(attrs.get("created", ""))
            self.scene = json.loads(str(attrs.get("scene", "{}")))
            s = int(attrs.get("success", -1))
            self.success: bool | None = None if s < 0 else bool(s)
            self.recovered = bool(int(attrs.get("recovered", 0)))
            self.labels_edited = bool(int(attrs.get("labels_edited", 0)))
            self.stream_names = sorted(h5["streams"].keys()) if "streams" in h5 else []
        except (KeyError, ValueError, OSError) as e:
            h5.close()
            raise TruncatedEpisodeError(f"{path} is missing episode fields ({_short(e)})") from None
        if CONTROL_STREAM not in self.stream_names:
            h5.close()
            raise EmptyEpisodeError(f"{path} has no control timeline (stream {CONTROL_STREAM!r})")

    def __enter__(self) -> "Episode":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.h5.close()

    def _read(self, what: str, fn):
        try:
            return fn()
        except (OSError, KeyError, ValueError, RuntimeError) as e:
            raise TruncatedEpisodeError(f"{self.path}: cannot read {what} ({_short(e)})") from None

    def stream_count(self, name: str) -> int:
        g = self.h5["streams"][name]
        return min(g["data"].shape[0], g["time"].shape[0])

    def stream_data(self, name: str) -> h5py.Dataset:
        """The stream's data as an on-disk dataset (index it to read)."""
        return self.h5["streams"][name]["data"]

    def stream_time(self, name: str) -> np.ndarray:
        n = self.stream_count(name)
        return self._read(f"{name} times", lambda: self.h5["streams"][name]["time"][:n])

    def stream_info(self, name: str) -> dict:
        g = self.h5["streams"][name]
        return {"kind": str(g["data"].attrs.get("kind", "array")), "shape": list(g["data"].shape[1:]),
                "count": self.stream_count(name), "rate_hz": float(g["data"].attrs.get("rate_hz", 0.0)),
                "meta": json.loads(str(g["data"].attrs.get("meta", "{}")))}

    @property
    def frames(self) -> int:
        return self.stream_count(CONTROL_STREAM)

    @property
    def duration_s(self) -> float:
        n = self.frames
        if n == 0:
            return 0.0
        t = self.stream_time(CONTROL_STREAM)
        return float(t[-1] - t[0] + 1.0 / self.control_hz)

    @property
    def calls(self) -> list[dict]:
        return self._read("calls", lambda: read_calls(self.h5))

    @property
    def labels(self) -> list[dict]:
        if "labels" not in self.h5:
            return []
        return self._read("labels", lambda: json.loads(self.h5["labels"][()].decode("utf-8")))


def read_calls(h5: h5py.File) -> list[dict]:
    if "calls" not in h5:
        return []
    raw = bytes(h5["calls"][:].tobytes()).decode("utf-8", errors="replace")
    calls = []
    for line in raw.splitlines():
        try:
            calls.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a crash ends the readable log
    return calls


def open_episode(path) -> Episode:
    """Open a finished episode for reading; raises EpisodeError subclasses (or FileNotFoundError)."""
    path = Path(path)
    if path.name.endswith(PARTIAL_SUFFIX):
        _open_h5(path, swmr_ok=False)  # always raises: partials are recovered, not read
    return Episode(path, _open_h5(path))


def episode_summary(ep: Episode) -> dict:
    """The JSON of `inspect --json` (DESIGN.md section 2)."""
    streams = {}
    for name in ep.stream_names:
        info = ep.stream_info(name)
        streams[name] = {"shape": info["shape"], "count": info["count"], "rate_hz": info["rate_hz"],
                         "kind": info["kind"]}
    calls = [{"code": c.get("code"), "t_start": c.get("t_start"), "t_end": c.get("t_end"),
              "status": c.get("status"), "source": c.get("source"),
              **({"reason": c["reason"]} if c.get("reason") else {})} for c in ep.calls]
    segments = [{"start": s["start"], "end": s["end"], "code": s["code"], "source": s.get("source", "auto")}
                for s in ep.labels]
    return {"task": ep.task, "instruction": ep.instruction, "robot": ep.robot, "frames": ep.frames,
            "duration_s": round(ep.duration_s, 3), "control_hz": ep.control_hz, "streams": streams,
            "calls": calls, "segments": segments, "success": ep.success, "format_version": ep.format_version,
            "recovered": ep.recovered, "seed": ep.seed, "split": ep.split}


def write_labels(path, labels: list[dict], edited: bool | None = None) -> None:
    """Replace the episode's labels in place.

    The new labels are written under a temporary name and flushed before the old ones are
    unlinked and the new ones moved into place, so a crash leaves either the old or the new
    labels (the window is a single link rename inside the file's metadata).
    """
    path = Path(path)
    with open_episode(path):
        pass  # validates the file before writing anything
    payload = json.dumps(labels).encode("utf-8")
    with h5py.File(path, "r+") as f:
        if "labels.new" in f:
            del f["labels.new"]
        f.create_dataset("labels.new", data=payload)
        f.flush()
        if "labels" in f:
            del f["labels"]
        f.move("labels.new", "labels")
        if edited is None:
            edited = any(s.get("source") == "edited" for s in labels)
        f.attrs["labels_edited"] = int(edited)
        f.flush()


def find_partials(folder) -> list[Path]:
    folder = Path(folder)
    return sorted(folder.glob("*" + PARTIAL_SUFFIX)) if folder.is_dir() else []


def final_path_of(partial: Path) -> Path:
    return partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)])


def recover_partial(partial) -> Path:
    """Copy what a killed recorder had flushed into a finished episode marked recovered."""
    from recorders.segmentation import segment_calls

    partial = Path(partial)
    src = _open_h5(partial, swmr_ok=True)
    final = final_path_of(partial)
    tmp = final.with_name(final.name + ".recovering")
    try:
        with h5py.File(tmp, "w", libver="latest") as dst:
            for k, v in src.attrs.items():
                dst.attrs[k] = v
            if "format_version" not in src.attrs or CONTROL_STREAM not in src.get("streams", {}):
                raise NotAnEpisodeError(f"{partial} is not a Code2Act recording")
            for name, g in src["streams"].items():
                n = min(g["data"].shape[0], g["time"].shape[0])
                _copy_stream(g, dst.create_group(f"streams/{name}"), n)
            calls = read_calls(src)
            raw = "".join(json.dumps(c) + "\n" for c in calls).encode("utf-8")
            dst.create_dataset("calls", data=np.frombuffer(raw, np.uint8), maxshape=(None,), chunks=True)
            times = dst["streams"][CONTROL_STREAM]["time"][:]
            labels = [s.to_dict() for s in segment_calls(calls, times)]
            dst.create_dataset("labels", data=json.dumps(labels).encode("utf-8"))
            dst.attrs["success"] = -1
            dst.attrs["recovered"] = 1
    except EpisodeError:
        tmp.unlink(missing_ok=True)
        raise
    except (OSError, KeyError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        raise TruncatedEpisodeError(f"{partial} could not be recovered ({_short(e)})") from None
    finally:
        src.close()
    os.replace(tmp, final)
    partial.unlink()
    return final


def _copy_stream(src: h5py.Group, dst: h5py.Group, n: int) -> None:
    d = src["data"]
    kind = str(d.attrs.get("kind", "array"))
    filters = image_compression() if kind in ("rgb", "depth") else {}
    out = dst.create_dataset("data", shape=(n, *d.shape[1:]), maxshape=(None, *d.shape[1:]), dtype=d.dtype,
                             chunks=d.chunks, **filters)
    for k, v in d.attrs.items():
        out.attrs[k] = v
    step = d.chunks[0] if d.chunks else 256
    for i in range(0, n, max(step, 64)):
        j = min(n, i + max(step, 64))
        out[i:j] = d[i:j]
    dst.create_dataset("time", data=src["time"][:n], maxshape=(None,), chunks=True)
