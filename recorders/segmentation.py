"""Auto-segmentation: logged calls -> labels that tile the control timeline.

Motion calls (pick, place, push, home; also failed or aborted ones, so a user can see them)
become segments over the frames whose time falls inside the call; frames outside any call form
`idle` segments; memory, query and terminal calls take no time and are events, never segments.
Segments always tile [0, n_frames) exactly: no gaps, no overlaps, no empty segments.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from recorders.call_log import CallRecord
from recorders.robot_api_spec import API

IDLE = "idle"
PROVENANCES = ("auto", "edited")


@dataclass(frozen=True)
class Segment:
    start: int  # first frame
    end: int  # one past the last frame
    code: str  # the call's canonical code, or "idle"
    source: str = "auto"  # provenance: auto | edited

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "Segment":
        return Segment(int(d["start"]), int(d["end"]), str(d["code"]), str(d.get("source", "auto")))


def _record(c) -> CallRecord:
    return c if isinstance(c, CallRecord) else CallRecord.from_dict(c)


def _is_motion(rec: CallRecord) -> bool:
    spec = API.get(rec.name)
    return spec is not None and spec.kind == "motion" and rec.t_end is not None


def segment_calls(calls, frame_times) -> list[Segment]:
    """Auto segments for `calls` (CallRecords or dicts) over frames at `frame_times` (seconds)."""
    times = np.asarray(frame_times, dtype=float)
    n = len(times)
    if n == 0:
        return []
    owner = np.full(n, -1)  # index of the call that owns each frame; later calls win overlaps
    motions = [r for r in map(_record, calls) if _is_motion(r)]
    for k, rec in enumerate(motions):
        inside = (times >= rec.t_start) & (times < rec.t_end)
        owner[inside] = k
    segments: list[Segment] = []
    start = 0
    for i in range(1, n + 1):
        if i == n or owner[i] != owner[start]:
            code = IDLE if owner[start] < 0 else motions[owner[start]].code
            segments.append(Segment(start, i, code, "auto"))
            start = i
    return segments


def resegment(calls, frame_times, current: list[Segment]) -> list[Segment]:
    """Fresh auto segments, with the frames of edited segments kept as they were edited."""
    auto = segment_calls(calls, frame_times)
    n = len(frame_times)
    labels: list[tuple[str, str] | None] = [None] * n
    for s in auto:
        for i in range(s.start, s.end):
            labels[i] = (s.code, "auto")
    for s in current:
        if s.source == "edited":
            for i in range(max(0, s.start), min(n, s.end)):
                labels[i] = (s.code, "edited")
    # Keep edited segments whole (two adjacent edited segments with the same code stay two).
    edited_id = [-1] * n
    for k, s in enumerate(current):
        if s.source == "edited":
            for i in range(max(0, s.start), min(n, s.end)):
                edited_id[i] = k
    auto_id = [-1] * n
    for k, s in enumerate(auto):
        for i in range(s.start, s.end):
            auto_id[i] = k
    out: list[Segment] = []
    start = 0
    for i in range(1, n + 1):
        key = lambda j: (labels[j], edited_id[j] if labels[j][1] == "edited" else auto_id[j])  # noqa: E731
        if i == n or key(i) != key(start):
            code, src = labels[start]
            out.append(Segment(start, i, code, src))
            start = i
    return out


def events(calls, frame_times) -> list[tuple[int, CallRecord]]:
    """Instantaneous calls (memory, query, terminal) with the frame at which they happened."""
    times = np.asarray(frame_times, dtype=float)
    out = []
    for rec in map(_record, calls):
        spec = API.get(rec.name)
        if spec is not None and spec.kind != "motion":
            out.append((int(np.searchsorted(times, rec.t_start, side="left")), rec))
    return out


def check_tiling(segments: list[Segment], n_frames: int) -> None:
    """Raise ValueError unless `segments` tile [0, n_frames) exactly."""
    if n_frames == 0:
        if segments:
            raise ValueError("an empty timeline has no segments")
        return
    if not segments or segments[0].start != 0 or segments[-1].end != n_frames:
        raise ValueError(f"segments must cover frames 0..{n_frames}")
    for a, b in zip(segments, segments[1:]):
        if a.end != b.start:
            raise ValueError(f"segments {a.code} and {b.code} leave a gap or overlap at frame {a.end}")
    for s in segments:
        if s.end <= s.start:
            raise ValueError(f"segment {s.code} at frame {s.start} is empty")
        if s.source not in PROVENANCES:
            raise ValueError(f"segment provenance must be auto or edited, got {s.source!r}")
