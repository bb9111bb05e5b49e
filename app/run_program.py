"""What the Run workspace shows of a run, as immutable values: the program so far, the memory, and
the session's state (app/run_session.py publishes a new `RunSnapshot` whenever one of them changes).

    RunSession worker --CallRow per top-level call (running -> ok | failed | aborted)--> RunSnapshot.program
                      --MemoryView after every call and tick-------------------------> RunSnapshot.memory
                      --camera images + CameraMarks (pixels) per tick----------------> RunSnapshot.images, .marks
                      --PolicyView per tick of a learned policy's motion call----------> RunSnapshot.policy_view

Everything the views draw is already in pixels or seconds: the worker projects the memory's key poses
and the predicted end-effector path onto each camera (recorders/cell/camera_geometry.py), so the
widgets only draw.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np

from recorders.memory import Memory
from recorders.pose import Pose

STATES = ("idle", "running", "waiting_approval", "paused", "taken_over", "finished", "failed")
ACTIVE_STATES = ("running", "waiting_approval", "paused", "taken_over")  # a run is going on
MODES = ("auto", "step")
PLANNER_ALTERNATIVES = 3  # a learned planner's best next calls shown with each proposal (as models/planner.py)
ORACLE = "oracle"  # the planner that hands over the task's own program, and the scripted skills as policy
SCRIPTED = "scripted"  # the policy: the robot API's scripted skills


@dataclass(frozen=True)
class CallRow:
    """One call of the program as it ran: who wrote it, when it ran and how it ended."""

    code: str
    status: str  # running | ok | failed | aborted
    source: str  # script (the oracle program) | planner
    t_start: float  # seconds on the take's clock
    t_end: float | None = None  # None while running
    reason: str | None = None  # why it failed or was aborted

    def elapsed(self, now: float) -> float:
        """Seconds it ran (so far, at `now` on the take's clock, while running)."""
        return (now if self.t_end is None else self.t_end) - self.t_start


@dataclass(frozen=True)
class Alternative:
    """One of the learned planner's best next calls, with its share of their probability."""

    code: str
    probability: float


@dataclass(frozen=True)
class MemoryView:
    """The robot's memory at one moment: key poses stored by remember(), and the calls made so far."""

    poses: Mapping[str, Pose] = field(default_factory=lambda: MappingProxyType({}))
    history: tuple[str, ...] = ()

    @staticmethod
    def of(memory: Memory) -> "MemoryView":
        return MemoryView(MappingProxyType({k: kp.pose for k, kp in memory.poses.items()}), tuple(memory.history))


@dataclass(frozen=True)
class CameraMarks:
    """What the Run workspace draws over one camera's image, in pixels (u right, v down; see
    recorders/cell/camera_geometry.py)."""

    memory: tuple[tuple[str, float, float], ...] = ()  # remembered key poses on the image: (key, u, v)
    path: np.ndarray | None = None  # (N, 2) u, v of the predicted end-effector path still to run; NaN rows
    # are points off the image or behind the camera


@dataclass(frozen=True)
class PolicyView:
    """A learned policy at work: its termination head over time and its timing (its predicted path is
    drawn from CameraMarks.path)."""

    done_trace: tuple[tuple[float, float], ...] = ()  # (t on the take's clock, P(finished)) per tick, recent
    threshold: float = 0.5  # P(finished) above which the running call ends
    call: str | None = None  # the motion call the policy is executing (None between calls)
    chunks: int = 0  # chunks predicted in this run
    last_latency_ms: float | None = None  # inference time of the latest chunk
    mean_latency_ms: float | None = None
    max_latency_ms: float | None = None
    stalls: int = 0  # chunks not ready when the arm needed them
    stall_ms: float = 0.0  # total time the arm waited (or, on a stepped simulator, would have)


@dataclass(frozen=True)
class RunEvent:
    kind: str  # info | error | refused (an invalid edit) | call (one ended) | saved
    text: str
    path: Path | None = None


@dataclass(frozen=True)
class RunSnapshot:
    state: str = "idle"  # one of STATES
    mode: str = "auto"  # one of MODES
    instruction: str = ""
    planner: str = ORACLE  # ORACLE or the planner run / checkpoint as given
    policy: str = SCRIPTED
    robot: str = "sim"
    objects: tuple[str, ...] = ()  # the run's scene: what calls may name
    zones: tuple[str, ...] = ()
    program: tuple[CallRow, ...] = ()  # top-level calls in the order they ran
    proposed: str | None = None  # the call awaiting approve / edit / skip (step mode)
    alternatives: tuple[Alternative, ...] = ()  # a learned planner's best calls at its last proposal, best first
    memory: MemoryView = MemoryView()
    clock: float = 0.0  # seconds on the take's clock at the last tick
    speed_level: int = 1  # teleop speed while taken over: an index of recorders/teleop.py SPEED_LEVELS_M_S
    late_ticks: int = 0  # control ticks of this run that started more than a period late
    episode: Path | None = None  # where the run was saved, once it was
    error: str | None = None  # why the run failed, or the last refused request
    estop_reason: str | None = None
    images: Mapping[str, np.ndarray] = field(default_factory=lambda: MappingProxyType({}))  # camera -> (H, W, 3)
    marks: Mapping[str, CameraMarks] = field(default_factory=lambda: MappingProxyType({}))  # camera -> overlays
    policy_view: PolicyView | None = None  # None: the scripted skills run the calls

    @property
    def running_call(self) -> CallRow | None:
        return next((r for r in reversed(self.program) if r.status == "running"), None)
