"""Recovery of killed recordings: a `.partial` episode file turned into a finished one.

Part of the episode file format (recorders/episode_file.py owns the schema and gives the helpers used
here); the writer (recorders/episode_writer.py) leaves a partial file readable after every flush, and
`record` and the Record workspace recover what they find before recording into a folder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from recorders import video_stream
from recorders.call_log import CallRecord
from recorders.episode_file import (
    CONTROL_STREAM, PARTIAL_SUFFIX, READ_ERRORS, EmptyEpisodeError, EpisodeError, TruncatedEpisodeError,
    check_version, create_rows, create_stream, create_video_stream, encode_labels, json_rows, open_h5,
    short_error, spec_of, store_labels,
)
from recorders.segmentation import segment_calls


def find_partials(folder) -> list[Path]:
    """Partial files of recordings that never finished, oldest name first."""
    folder = Path(folder)
    return sorted(folder.glob("*" + PARTIAL_SUFFIX)) if folder.is_dir() else []


def final_path_of(partial: Path) -> Path:
    return partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)])


def _free_name(path: Path) -> Path:
    """`path`, or `<stem>.recovered[N]<suffix>` when an episode already has that name."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}.recovered{'' if n == 1 else n}{path.suffix}")
    return candidate


def _readable_rows(g: h5py.Group) -> int:
    """Rows whose data and time were both flushed: time rows never written read as NaN."""
    if video_stream.is_video(g):
        return video_stream.readable_rows(g)
    n = min(g["data"].shape[0], g["time"].shape[0])
    missing = np.flatnonzero(np.isnan(g["time"][:n]))
    return int(missing[0]) if len(missing) else n


def _copy_rows(src: h5py.Dataset, dst: h5py.Dataset, n: int, block: int) -> int:
    """Copy rows [0, n) in blocks; returns how many were readable (stops at the first bad one)."""
    i = 0
    while i < n:
        j = min(n, i + block)
        try:
            rows = src[i:j]
        except READ_ERRORS:
            if j - i == 1:
                break
            block = 1  # find the first unreadable row
            continue
        dst.resize(j, axis=0)
        dst[i:j] = rows
        i = j
    return i


def recover_partial(partial) -> Path:
    """Turn what a killed recorder had flushed into a finished episode marked `recovered` (success
    unknown, labels derived from the calls) and remove the partial. An episode already at the final
    name is never overwritten: the recovered one gets a `.recovered` name instead."""
    partial = Path(partial)
    src = open_h5(partial)
    final = _free_name(final_path_of(partial))
    tmp = final.with_name(final.name + ".recovering")
    try:
        check_version(partial, src)
        streams = src["streams"] if "streams" in src else {}
        if CONTROL_STREAM not in streams or _readable_rows(streams[CONTROL_STREAM]) == 0:
            raise EmptyEpisodeError(f"{partial} has no frames to recover")
        with h5py.File(tmp, "w", libver="latest") as dst:
            dst.attrs.update(dict(src.attrs))
            dst.attrs.update({"success": -1, "recovered": 1, "labels_edited": 0})
            for name, g in streams.items():
                spec = spec_of(name, g)
                if video_stream.is_video(g):
                    datasets = create_video_stream(dst, spec, video_stream.stream_fields(g)[5])
                    video_stream.copy_rows(g, datasets, _readable_rows(g))
                    continue
                data, time = create_stream(dst, spec)
                block = 32 if spec.kind in ("rgb", "depth") else 4096
                n = _copy_rows(g["data"], data, _readable_rows(g), block)
                data.resize(n, axis=0)
                time.resize((n,))
                time[:] = g["time"][:n]
            calls = json_rows(src["calls"]) if "calls" in src else []
            create_rows(dst, "calls", [json.dumps(c) for c in calls])
            for log in ("interventions", "faults"):
                if log in src:
                    create_rows(dst, log, [json.dumps(i) for i in json_rows(src[log])])
            times = dst["streams"][CONTROL_STREAM]["time"][:]
            try:
                labels = [s.to_dict() for s in segment_calls([CallRecord.from_dict(c) for c in calls], times)]
            except (KeyError, TypeError, ValueError):  # calls from another tool: recover the data unlabelled
                labels = []
            store_labels(dst, encode_labels(labels))
    except EpisodeError:
        tmp.unlink(missing_ok=True)
        raise
    except READ_ERRORS as e:
        tmp.unlink(missing_ok=True)
        raise TruncatedEpisodeError(f"{partial} could not be recovered ({short_error(e)})") from None
    finally:
        src.close()
    os.replace(tmp, final)
    partial.unlink()
    return final
