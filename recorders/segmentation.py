"""Auto-segmentation: logged calls -> labels that tile the control timeline.

Input: the logged calls (`CallRecord`s, as logged or read back from an episode file) and the time
of every control frame. Motion calls (kind "motion" in the registry, whatever their source,
including failed and aborted ones so a user can see them) become segments over the frames whose
time lies in [t_start, t_end); a call still running covers the rest of the timeline. Frames
outside every call form `idle` segments. Memory, query and terminal calls take no time: they are
`events`, never segments. Where calls overlap, the later-starting call owns its frames from its
start until it ends (the earlier one resumes after it, if still running).

Output: `Segment`s that always tile [0, n_frames) exactly: no gaps, no overlaps, no empty
segments, adjacent idle frames in one segment. `resegment` re-derives the auto segments while
keeping the ones a user edited.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from recorders.call_log import CallRecord
from recorders.robot_api_spec import API

IDLE = "idle"
AUTO, EDITED, PROPOSED = "auto", "edited", "proposed"  # proposed: cut at gripper events, for the user to name
PROVENANCES = (AUTO, EDITED, PROPOSED)


@dataclass(frozen=True)
class Segment:
    start: int  # first frame
    end: int  # one past the last frame
    code: str  # the call's canonical code, or IDLE
    source: str = AUTO  # provenance: auto | edited
    trimmed: bool = False  # idle frames the annotator cut off the episode's ends

    def to_dict(self) -> dict:
        """The /labels row: `trimmed` only where set, so readers that know {start, end, code,
        source} see ordinary idle frames."""
        d = asdict(self)
        if not self.trimmed:
            del d["trimmed"]
        return d

    @staticmethod
    def from_dict(d: dict) -> "Segment":
        """The segment of a /labels row; KeyError, TypeError or ValueError when it is malformed."""
        return Segment(int(d["start"]), int(d["end"]), str(d["code"]), str(d.get("source", AUTO)),
                       bool(d.get("trimmed", False)))


def _kind(rec: CallRecord) -> str | None:
    f = API.get(rec.name)
    return None if f is None else f.kind


def _frame_times(frame_times) -> np.ndarray:
    times = np.asarray(frame_times, dtype=float)
    if times.ndim != 1:
        raise ValueError(f"frame times must be one time per frame (1-D), got shape {times.shape}")
    return times


def _runs(owner: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, value) for each run of equal values in `owner`."""
    n = len(owner)
    if n == 0:
        return []
    cuts = np.flatnonzero(owner[1:] != owner[:-1]) + 1
    bounds = [0, *cuts.tolist(), n]
    return [(a, b, int(owner[a])) for a, b in zip(bounds, bounds[1:])]


def segment_calls(calls, frame_times) -> list[Segment]:
    """Auto segments for `calls` (CallRecords) over frames at `frame_times` (seconds).

    Calls of functions not in the registry are ignored."""
    times = _frame_times(frame_times)
    n = len(times)
    if n == 0:
        return []
    motions = [r for r in calls if _kind(r) == "motion"]
    order = sorted(range(len(motions)), key=lambda k: motions[k].t_start)  # stable: ties keep log order
    owner = np.full(n, -1)  # the motion call owning each frame, -1 for idle
    for k in order:  # later starts paint over earlier ones
        rec = motions[k]
        t_end = np.inf if rec.t_end is None else rec.t_end
        owner[(times >= rec.t_start) & (times < t_end)] = k
    return [Segment(a, b, IDLE if k < 0 else motions[k].code, AUTO) for a, b, k in _runs(owner)]


def resegment(calls, frame_times, current: list[Segment]) -> list[Segment]:
    """Fresh auto segments, with the frames of `current`'s edited segments kept as edited.

    Edited segments win where they overlap auto ones (later edited ones win among themselves) and
    stay whole: two adjacent edited segments with the same code remain two. Edited frames beyond
    the timeline are dropped."""
    auto = segment_calls(calls, frame_times)
    n = len(_frame_times(frame_times))
    pieces: list[Segment] = list(auto)
    owner = np.full(n, -1)
    for k, s in enumerate(auto):
        owner[s.start:s.end] = k
    for s in current:
        lo, hi = max(0, s.start), min(n, s.end)
        if s.source == EDITED and lo < hi:
            owner[lo:hi] = len(pieces)
            pieces.append(s)
    return [Segment(a, b, pieces[k].code, pieces[k].source) for a, b, k in _runs(owner)]


def events(calls, frame_times) -> list[tuple[int, CallRecord]]:
    """Instantaneous calls (memory, query, terminal) with the frame at which they happened: the
    first frame at or after the call's start, clamped to the timeline; sorted by frame.
    `frame_times` must be non-decreasing (a control timeline is)."""
    times = _frame_times(frame_times)
    n = len(times)
    if n == 0:
        return []
    out = []
    for rec in calls:
        if _kind(rec) in ("memory", "query", "terminal"):
            frame = min(int(np.searchsorted(times, rec.t_start, side="left")), n - 1)
            out.append((frame, rec))
    out.sort(key=lambda e: e[0])  # stable: same-frame events keep log order
    return out


def check_tiling(segments: list[Segment], n_frames: int) -> None:
    """Raise ValueError unless `segments` tile [0, n_frames) exactly, in order, none empty."""
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
        if not isinstance(s.code, str) or not s.code.strip():
            raise ValueError(f"segment at frame {s.start} has no code")
