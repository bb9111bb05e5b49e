"""The labels of one episode under edit: segments, trim range, gripper-event snap targets, undo.

Data flow: a widget asks for an edit (`move_boundary`, `set_code`, ...); the model validates it,
computes the new state with pure functions and pushes ONE `QUndoCommand` holding the state before
and after; redo/undo install a state, assert that the segments tile the episode, and emit
`labels_changed`. Dirtiness is the undo stack's clean state, so undoing back to the saved state is
clean again. `save()` writes through `recorders.episode_file.write_labels` (atomic inside the file).

Trim: the kept range is [trim_start, trim_end). Frames outside it are covered by `idle` segments
with source "edited" that are saved with `Segment.trimmed` set (the row's extra key `"trimmed": true`:
readers that only know {start, end, code, source} see ordinary idle frames; loading restores the
trim range from the flag).
Edits never reach into the trimmed frames; dragging the boundary of a trimmed segment moves the trim.

Merge keeps the first segment's code unless it is idle (then the second's). Delete turns a segment
into idle and merges it with idle neighbours. Any segment whose code or extent an edit changes
gets source "edited".

The take's outcome, its instruction (free text for a real take, whose task id is `FREE_TASK`) and
success (True, False or None: unknown), is part of the same undoable state: `set_instruction` and
`set_success` push one command each and emit `outcome_changed`; `save()` writes it through
`write_outcome` when it differs from what the file holds.

Logged calls are read-only context for the labels: `call_of(k)` is the motion call a segment came
from (same code, overlapping frames; None for idle or a hand-made segment), so the views can show
its status (ok / failed / aborted, with the reason) and source (script / gui / hotkey / planner);
`events` are the instantaneous calls (remember, recall, free_space, done) at their frames. Neither
is ever saved as a label: `to_labels()` holds segments only.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from recorders.call_log import CallRecord
from recorders.episode_file import CONTROL_STREAM, Episode, open_episode, write_labels, write_outcome
from recorders.robot_api_spec import API, Call, InvalidCallError
from recorders.segmentation import IDLE, Segment, check_tiling, resegment, segment_calls
from recorders.segmentation import events as instant_calls
from recorders.take import FREE_INSTRUCTION_TASK, FREE_TASK

SNAP_FRAMES = 3  # a boundary within this many frames of a gripper event lands on it
GRIPPER_COLUMN = 7  # the action stream's gripper command (0 open, 1 closed)
EDITED = "edited"


class AnnotationError(ValueError):
    """An edit that cannot be made; the message says why in one line. Nothing was changed."""


class InvalidCodeError(AnnotationError):
    """A segment code that is not `idle` nor a valid motion call on this episode's objects."""


@dataclass(frozen=True)
class LabelState:
    segments: tuple[Segment, ...]
    trim_start: int
    trim_end: int
    instruction: str = ""
    success: bool | None = None  # None: unknown

    @property
    def outcome(self) -> tuple[str, bool | None]:
        return self.instruction, self.success


@dataclass(frozen=True)
class EpisodeTimeline:
    """What labelling needs from an episode, read once so the file is not held open."""

    path: object
    frames: int
    frame_times: np.ndarray  # (N,) seconds of the control timeline
    calls: tuple[CallRecord, ...]
    objects: tuple[str, ...]  # cube and zone names valid as call arguments
    gripper_events: tuple[int, ...]  # frames at which the gripper command changes
    calls_missing: str | None = None  # why segments cannot be derived from the calls (Episode.calls_missing)
    task: str = ""  # the task id; FREE_TASK or FREE_INSTRUCTION_TASK for a take outside the suite
    instruction: str = ""  # as saved in the file
    success: bool | None = None  # as saved in the file; None: unknown

    @staticmethod
    def from_episode(ep: Episode) -> "EpisodeTimeline":
        scene = ep.meta.scene
        objects = () if scene is None else (*scene.object_names, *scene.zone_names)
        return EpisodeTimeline(ep.path, ep.frames, ep.stream_time(CONTROL_STREAM), ep.calls, tuple(objects),
                               tuple(gripper_events(ep)), ep.calls_missing, ep.task, ep.instruction, ep.success)

    @property
    def free_task(self) -> bool:
        """A take outside the task suite (teleoperation, or a planner on a free instruction): its
        instruction is all that says what it does."""
        return self.task in (FREE_TASK, FREE_INSTRUCTION_TASK)


@dataclass(frozen=True)
class CallEvent:
    """An instantaneous call (memory, query or terminal: remember, recall, free_space, done) at the
    control frame it happened on; `seconds` counts from the episode's first frame."""

    frame: int
    call: CallRecord
    seconds: float

    @property
    def kind(self) -> str:
        """memory, query or terminal (the robot API's function kind)."""
        return API[self.call.name].kind

    @property
    def label(self) -> str:
        return short_code(self.call)

    @property
    def description(self) -> str:
        return f"{self.call.code}\nframe {self.frame}, {self.seconds:.2f} s · {_outcome(self.call)}"


def short_code(rec: CallRecord) -> str:
    """An event's label: the code cut to its first argument when that is a plain string, `remember("A")` for
    `remember("A", "red cube")`; the whole code otherwise."""
    if rec.args and isinstance(rec.args[0], str):
        return f'{rec.name}("{rec.args[0]}")'
    return rec.code


def describe_call(rec: CallRecord, t0: float = 0.0) -> str:
    """The full code, when (seconds from `t0`), how the call ended and who made it, for a tooltip."""
    end = "running" if rec.t_end is None else f"{rec.t_end - t0:.2f} s"
    return f"{rec.code}\n{rec.t_start - t0:.2f} – {end} · {_outcome(rec)}"


def _outcome(rec: CallRecord) -> str:
    reason = f": {rec.reason}" if rec.reason and rec.status != "ok" else ""
    return f"{rec.status}{reason} · by {rec.source}"


def call_frames(rec: CallRecord, frame_times: np.ndarray) -> tuple[int, int]:
    """The frames [start, end) a call ran over (as auto-segmentation assigns them); a call shorter
    than a frame gets the frame it started on."""
    n = len(frame_times)
    a = int(np.searchsorted(frame_times, rec.t_start, side="left"))
    b = n if rec.t_end is None else int(np.searchsorted(frame_times, rec.t_end, side="left"))
    a = min(a, max(n - 1, 0))
    return a, max(b, a + 1)


def gripper_events(ep: Episode) -> list[int]:
    """Frames where the gripper opens or closes: the commanded action's gripper column changes,
    or (without one) the measured width crosses the middle of its range."""
    n = ep.frames
    action = ep.stream_data(CONTROL_STREAM)
    if action.ndim == 2 and action.shape[1] > GRIPPER_COLUMN:
        state = np.asarray(action[:n, GRIPPER_COLUMN]) > 0.5
    elif "gripper_width" in ep.stream_names:
        width = np.asarray(ep.stream_data("gripper_width")[:n]).reshape(-1)
        state = width < (width.min() + width.max()) / 2 if width.size else width.astype(bool)
    else:
        return []
    return [int(i) for i in np.flatnonzero(state[1:] != state[:-1]) + 1]


def validate_code(code: str, objects) -> str:
    """The canonical form of a segment code; raises InvalidCodeError with the reason."""
    text = code.strip()
    if text == IDLE:
        return IDLE
    try:
        call = Call.from_code(text, objects)
    except InvalidCallError as e:
        raise InvalidCodeError(str(e)) from None
    if API[call.name].kind != "motion":
        raise InvalidCodeError(f"{call.name}() is an instantaneous {API[call.name].kind} call, not a segment; "
                               f"use a motion call (pick, place, push, home) or idle")
    return call.code


def _edited(s: Segment, **changes) -> Segment:
    return replace(s, source=EDITED, **changes)


class _StateCommand(QUndoCommand):
    """One edit: installs `after` on redo and `before` on undo."""

    def __init__(self, model: "AnnotationModel", before: LabelState, after: LabelState, text: str):
        super().__init__(text)
        self._model, self._before, self._after = model, before, after

    def redo(self) -> None:
        self._model._install(self._after)

    def undo(self) -> None:
        self._model._install(self._before)


class AnnotationModel(QObject):
    """The labels of one episode; every edit is one undoable command."""

    labels_changed = Signal()  # the segments or the trim
    outcome_changed = Signal()  # the instruction or success
    dirty_changed = Signal(bool)

    def __init__(self, timeline: EpisodeTimeline, segments: list[Segment], trim: tuple[int, int] | None = None,
                 undo_stack: QUndoStack | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.timeline = timeline
        start, end = trim if trim is not None else (0, timeline.frames)
        self._state = LabelState(tuple(segments), start, end, timeline.instruction, timeline.success)
        self._saved_outcome = self._state.outcome  # what the file holds
        check_tiling(list(segments), timeline.frames)
        self.undo_stack = undo_stack if undo_stack is not None else QUndoStack(self)
        self.undo_stack.clear()
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)
        times = np.asarray(timeline.frame_times, dtype=float)
        t0 = float(times[0]) if len(times) else 0.0
        self.t0 = t0  # the episode's first frame on the calls' clock
        self.events: tuple[CallEvent, ...] = tuple(
            CallEvent(f, rec, rec.t_start - t0) for f, rec in instant_calls(timeline.calls, times))
        self._motion_calls: dict[str, list[tuple[int, int, CallRecord]]] = {}  # code -> (start, end, record)
        for rec in timeline.calls:
            if rec.name in API and API[rec.name].kind == "motion":
                self._motion_calls.setdefault(rec.code, []).append((*call_frames(rec, times), rec))
        self._calls_of: tuple[LabelState, list[CallRecord | None]] | None = None  # cache for one state

    @staticmethod
    def load(path, undo_stack: QUndoStack | None = None, parent: QObject | None = None) -> "AnnotationModel":
        with open_episode(path) as ep:
            return AnnotationModel.from_episode(ep, undo_stack, parent)

    @staticmethod
    def from_episode(ep: Episode, undo_stack: QUndoStack | None = None,
                     parent: QObject | None = None) -> "AnnotationModel":
        timeline = EpisodeTimeline.from_episode(ep)
        labels = ep.labels
        try:
            check_tiling(list(labels), timeline.frames)
        except ValueError:  # no or broken labels: start from the logged calls
            labels = tuple(segment_calls(timeline.calls, timeline.frame_times))
        start, end = 0, timeline.frames
        if labels and labels[0].trimmed:
            start = labels[0].end
        if labels and labels[-1].trimmed and labels[-1].start > start:
            end = labels[-1].start
        segments = [replace(s, trimmed=False) for s in labels]  # the model knows the trim from its range
        return AnnotationModel(timeline, segments, (start, end), undo_stack, parent)

    def detach(self) -> None:
        """Stop listening to the (shared) undo stack before another episode takes it."""
        self.undo_stack.cleanChanged.disconnect(self._on_clean_changed)

    # ---- state -------------------------------------------------------------------------------
    @property
    def segments(self) -> list[Segment]:
        return list(self._state.segments)

    @property
    def frames(self) -> int:
        return self.timeline.frames

    @property
    def trim(self) -> tuple[int, int]:
        return self._state.trim_start, self._state.trim_end

    @property
    def objects(self) -> tuple[str, ...]:
        return self.timeline.objects

    @property
    def gripper_events(self) -> tuple[int, ...]:
        return self.timeline.gripper_events

    @property
    def instruction(self) -> str:
        return self._state.instruction

    @property
    def success(self) -> bool | None:
        return self._state.success

    def is_dirty(self) -> bool:
        return not self.undo_stack.isClean()

    def is_trimmed(self, k: int) -> bool:
        s = self._state.segments[k]
        return s.end <= self._state.trim_start or s.start >= self._state.trim_end

    def segment_at(self, frame: int) -> int:
        for k, s in enumerate(self._state.segments):
            if s.start <= frame < s.end:
                return k
        raise AnnotationError(f"frame {frame} is outside the episode (0..{self.frames - 1})")

    def call_of(self, k: int) -> CallRecord | None:
        """The logged motion call segment k came from: same code, most frames in common with it
        (the first logged on a tie). None for idle, trimmed, or a segment no call matches (made by hand)."""
        state = self._state
        if self._calls_of is None or self._calls_of[0] is not state:
            self._calls_of = (state, [self._match(s) for s in state.segments])
        return None if self.is_trimmed(k) else self._calls_of[1][k]

    def _match(self, s: Segment) -> CallRecord | None:
        best, best_overlap = None, 0
        for a, b, rec in self._motion_calls.get(s.code, ()):
            overlap = min(b, s.end) - max(a, s.start)
            if overlap > best_overlap:
                best, best_overlap = rec, overlap
        return best

    def snap(self, frame: int) -> int:
        """The nearest gripper event within SNAP_FRAMES of `frame`, else `frame`."""
        if not self.gripper_events:
            return frame
        ev = np.asarray(self.gripper_events)
        i = int(np.argmin(np.abs(ev - frame)))
        return int(ev[i]) if abs(int(ev[i]) - frame) <= SNAP_FRAMES else frame

    def to_labels(self) -> list[dict]:
        return [replace(s, trimmed=self.is_trimmed(k)).to_dict() for k, s in enumerate(self._state.segments)]

    # ---- edits -------------------------------------------------------------------------------
    def move_boundary(self, k: int, frame: int, snap: bool = True) -> int:
        """Move the boundary between segment k and k+1 to `frame` (snapped); returns where it went."""
        segs = self._segments_checked(k, k + 1, allow_trimmed=True)
        frame = self.snap(int(round(frame))) if snap else int(round(frame))
        a, b = segs[k], segs[k + 1]
        if self.is_trimmed(k):  # the boundary of the trimmed head is the trim start
            self.trim_start(frame)
            return self.trim[0]
        if self.is_trimmed(k + 1):
            self.trim_end(frame)
            return self.trim[1]
        if not a.start < frame < b.end:
            raise AnnotationError(f"a boundary between frames {a.start} and {b.end} must leave both segments "
                                  f"at least one frame, got {frame}")
        if frame == a.end:
            return frame
        segs[k], segs[k + 1] = _edited(a, end=frame), _edited(b, start=frame)
        self._push(segs, f"move boundary to frame {frame}")
        return frame

    def set_code(self, k: int, code: str) -> None:
        segs = self._segments_checked(k)
        canonical = validate_code(code, self.objects)
        if canonical == segs[k].code and segs[k].source == EDITED:
            return
        segs[k] = _edited(segs[k], code=canonical)
        self._push(segs, f"set code {canonical}")

    def split(self, frame: int) -> None:
        k = self.segment_at(frame)
        segs = self._segments_checked(k)
        s = segs[k]
        if frame == s.start:
            raise AnnotationError(f"frame {frame} is already a segment boundary")
        segs[k:k + 1] = [_edited(s, end=frame), _edited(s, start=frame)]
        self._push(segs, f"split at frame {frame}")

    def merge(self, k: int) -> None:
        """Merge segment k with segment k+1."""
        segs = self._segments_checked(k, k + 1)
        a, b = segs[k], segs[k + 1]
        code = b.code if a.code == IDLE else a.code
        segs[k:k + 2] = [Segment(a.start, b.end, code, EDITED)]
        self._push(segs, "merge segments")

    def insert(self, start: int, end: int, code: str) -> None:
        """A new segment over frames [start, end); segments it overlaps are cut back."""
        t0, t1 = self.trim
        if not t0 <= start < end <= t1:
            raise AnnotationError(f"a new segment needs frames start < end inside {t0}..{t1}, got {start}..{end}")
        canonical = validate_code(code, self.objects)
        segs = [Segment(start, end, canonical, EDITED)]
        for s in self._state.segments:
            if s.end <= start or s.start >= end:
                segs.append(s)
                continue
            if s.start < start:
                segs.append(_edited(s, end=start))
            if s.end > end:
                segs.append(_edited(s, start=end))
        segs.sort(key=lambda s: s.start)
        self._push(segs, f"insert {canonical}")

    def delete(self, k: int) -> None:
        """Segment k becomes idle and joins idle neighbours (trimmed frames stay apart)."""
        segs = self._segments_checked(k)
        lo, hi = k, k + 1
        if k > 0 and segs[k - 1].code == IDLE and not self.is_trimmed(k - 1):
            lo = k - 1
        if k + 1 < len(segs) and segs[k + 1].code == IDLE and not self.is_trimmed(k + 1):
            hi = k + 2
        segs[lo:hi] = [Segment(segs[lo].start, segs[hi - 1].end, IDLE, EDITED)]
        self._push(segs, "delete segment")

    def trim_start(self, frame: int) -> None:
        """Keep frames from `frame` on (0 removes the trim)."""
        self._retrim(int(frame), self.trim[1], f"trim start at frame {frame}")

    def trim_end(self, frame: int) -> None:
        """Keep frames before `frame` (the frame count removes the trim)."""
        self._retrim(self.trim[0], int(frame), f"trim end at frame {frame}")

    def resegment(self, keep_edits: bool = True) -> None:
        """Derive segments from the logged calls again, keeping edited segments (and the trim) or not.
        Refused (AnnotationError) for an episode whose calls are missing: it would lose its labels."""
        t = self.timeline
        if t.calls_missing is not None:
            raise AnnotationError(f"cannot re-segment {Path(t.path).name}: {t.calls_missing}")
        if keep_edits:
            segs = resegment(t.calls, t.frame_times, self.segments)
            trim = self.trim
        else:
            segs = segment_calls(t.calls, t.frame_times)
            trim = (0, t.frames)
        self._push(segs, "re-run auto-segmentation" + (" (kept edits)" if keep_edits else ""), trim)

    def set_instruction(self, text: str) -> None:
        """The take's instruction (one line; surrounding blanks dropped)."""
        text = text.strip()
        if "\n" in text or "\r" in text:
            raise AnnotationError("an instruction is one line of text")
        if text != self.instruction:
            shown = text if len(text) <= 48 else text[:47] + "…"
            self._push_state(replace(self._state, instruction=text), f"set instruction to {shown!r}")

    def set_success(self, success: bool | None) -> None:
        """Whether the take succeeded: True, False or None (unknown)."""
        if success not in (None, True, False):
            raise AnnotationError(f"success is True, False or None (unknown), got {success!r}")
        success = None if success is None else bool(success)
        if success is not self.success:
            word = {True: "succeeded", False: "failed", None: "unknown"}[success]
            self._push_state(replace(self._state, success=success), f"mark the take {word}")

    def save(self) -> None:
        """Write the labels and, when changed, the instruction and success into the episode file."""
        write_labels(self.timeline.path, self.to_labels())
        outcome = self._state.outcome
        if outcome != self._saved_outcome:
            write_outcome(self.timeline.path, *outcome)
            self._saved_outcome = outcome
        self.undo_stack.setClean()

    # ---- internals ---------------------------------------------------------------------------
    def _segments_checked(self, *ks: int, allow_trimmed: bool = False) -> list[Segment]:
        segs = self.segments
        for k in ks:
            if not 0 <= k < len(segs):
                raise AnnotationError(f"no segment {k}; the episode has {len(segs)}")
            if self.is_trimmed(k) and not allow_trimmed:
                raise AnnotationError(f"segment {k} lies in the trimmed frames; change the trim instead")
        return segs

    def _retrim(self, start: int, end: int, text: str) -> None:
        n = self.frames
        if not 0 <= start < end <= n:
            raise AnnotationError(f"the kept range must be start < end inside 0..{n}, got {start}..{end}")
        old_t0, old_t1 = self.trim
        segs: list[Segment] = [Segment(0, start, IDLE, EDITED)] if start > 0 else []
        for k, s in enumerate(self._state.segments):
            lo, hi = max(s.start, start), min(s.end, end)
            if lo >= hi:
                continue
            if self.is_trimmed(k):  # frames given back by a smaller trim become plain idle
                segs.append(Segment(lo, hi, IDLE, EDITED))
            elif (lo, hi) != (s.start, s.end):
                segs.append(_edited(s, start=lo, end=hi))
            else:
                segs.append(s)
        if end < n:
            segs.append(Segment(end, n, IDLE, EDITED))
        if (start, end) == (old_t0, old_t1):
            return
        self._push(segs, text, (start, end))

    def _push(self, segments: list[Segment], text: str, trim: tuple[int, int] | None = None) -> None:
        check_tiling(segments, self.frames)  # refuse before anything is pushed
        start, end = trim if trim is not None else self.trim
        self._push_state(replace(self._state, segments=tuple(segments), trim_start=start, trim_end=end), text)

    def _push_state(self, after: LabelState, text: str) -> None:
        self.undo_stack.push(_StateCommand(self, self._state, after, text))

    def _install(self, state: LabelState) -> None:
        check_tiling(list(state.segments), self.frames)
        before, self._state = self._state, state
        outcome_edit = before.outcome != state.outcome
        if not outcome_edit or replace(before, instruction=state.instruction, success=state.success) != state:
            self.labels_changed.emit()
        if outcome_edit:
            self.outcome_changed.emit()

    def _on_clean_changed(self, clean: bool) -> None:
        self.dirty_changed.emit(not clean)
