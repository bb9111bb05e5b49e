"""The one safety layer in front of every arm command (DESIGN.md section 8), real or simulated.

`SafeArm` wraps any `Arm` and is the only way commands reach it (the wrapped arm is private). Each
command is checked, then forwarded:

    ArmCommand -> refuse non-finite values -> clamp into the workspace box -> limit the step from
    the last sent target by the time elapsed since it was sent (translation and rotation) -> cap
    the gripper force -> inner arm's command

Speed is bounded by time, not by counting commands: a step may move the target at most
max_speed * elapsed, where elapsed is read on the arm's own clock (simulated time for stepped
simulations, time.monotonic for real-time arms) and capped at one control period, so a burst of
commands moves the target no faster than the limit and the first command after a pause (or after
a stop, when the step starts from the measured pose) moves it at most one period's step.

A watchdog stops the arm when commands stall while it moves (on the arm's own clock at
`wait_tick` for stepped simulations, on a small daemon thread for real-time arms), and an e-stop,
callable from any thread, stops it at once and refuses every command until `reset_estop()`.

The e-stop never waits for a command in progress. Its guarantee: when `estop()` returns, the inner
arm has been told to stop and no command starts being forwarded any more; a command whose
forwarding overlapped the e-stop is followed by a second stop before its `command()` call returns
(and raises ArmError), so the last thing the arm is told is always "stop". This relies on the inner
arm accepting `stop()` from another thread while `command()` runs (recorders/arms/base.py).
`events` counts how often each limit acted, for the GUI.
"""
from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from recorders.arms.base import Arm, ArmCommand, ArmError, ArmState
from recorders.pose import Pose, quat_angle, quat_slerp

# Keys of `SafeArm.events`.
EVENT_NON_FINITE = "non_finite"
EVENT_WORKSPACE = "workspace"
EVENT_SPEED = "speed"
EVENT_ROTATION = "rotation_speed"
EVENT_GRIPPER_FORCE = "gripper_force"
EVENT_WATCHDOG = "watchdog"
EVENT_ESTOP = "estop"
EVENT_REFUSED_ESTOP = "refused_estopped"

_WATCHDOG_POLL_S = 0.02


@dataclass(frozen=True)
class SafetyLimits:
    """Limits every arm command must respect; positions in the robot base frame (table top z = 0)."""

    workspace_min: tuple[float, float, float] = (0.2, -0.45, 0.005)  # m
    workspace_max: tuple[float, float, float] = (0.8, 0.45, 0.7)  # m
    max_speed: float = 0.5  # m/s of the end effector
    max_rotation_speed: float = 2.0  # rad/s of the end effector
    max_gripper_force: float = 70.0  # N
    watchdog_timeout: float = 0.5  # s without a new command while moving -> stop

    def __post_init__(self):
        if len(self.workspace_min) != 3 or len(self.workspace_max) != 3:
            raise ValueError(f"workspace bounds need 3 values each, got {self.workspace_min} and {self.workspace_max}")
        for lo, hi, axis in zip(self.workspace_min, self.workspace_max, "xyz"):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"workspace {axis} range must be finite with min < max, got {lo}..{hi}")
        for name in ("max_speed", "max_rotation_speed", "max_gripper_force", "watchdog_timeout"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")

    def max_step(self, control_hz: float) -> float:
        """Largest translation (m) of the target between two commands at `control_hz`."""
        return self.max_speed / control_hz

    def max_turn(self, control_hz: float) -> float:
        """Largest rotation (rad) of the target between two commands at `control_hz`."""
        return self.max_rotation_speed / control_hz

    def contains(self, position, tol: float = 0.0) -> bool:
        """Whether `position` lies in the workspace box (grown by `tol`)."""
        p = np.asarray(position, dtype=float)
        lo, hi = np.asarray(self.workspace_min) - tol, np.asarray(self.workspace_max) + tol
        return bool(np.all(p >= lo) and np.all(p <= hi))


def _unit_quaternion(q: np.ndarray) -> np.ndarray | None:
    """`q` normalised without overflow for huge or tiny components; None for a zero quaternion."""
    scale = float(np.max(np.abs(q)))
    if scale == 0.0:
        return None
    q = q / scale
    return q / float(np.linalg.norm(q))


class SafeArm(Arm):
    """An `Arm` that forwards only commands within `limits` to the arm it wraps.

    `stepped` says whether the inner arm's clock only advances in `wait_tick` (a simulation run
    faster than real time); by default the arm's own `info.stepped`.
    """

    def __init__(self, inner: Arm, limits: SafetyLimits | None = None, stepped: bool | None = None):
        self._inner = inner
        self.limits = limits or SafetyLimits()
        self.info = inner.info
        self.stepped = inner.info.stepped if stepped is None else stepped
        self.events: Counter[str] = Counter()  # how often each limit acted, for the GUI
        # Orders commands, stops, the watchdog and resets; the e-stop never takes it (it must not
        # wait behind a slow command), so it has its own small lock, never held while the arm is called.
        self._lock = threading.RLock()
        self._estop_lock = threading.Lock()
        self._estop_reason: str | None = None
        self._estop_generation = 0  # counts e-stops, so a command can tell one overlapped its forwarding
        self._last_sent: Pose | None = None  # None: limit the next step from the measured pose
        self._last_sent_clock: float | None = None  # the arm's clock when _last_sent was limited
        self._moving = False
        self._last_command_clock: float | None = None  # inner arm's clock (stepped arms)
        self._last_command_wall: float | None = None  # time.monotonic (real-time arms)
        self._watchdog_stop: threading.Event | None = None
        self._watchdog: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def connect(self) -> None:
        self._inner.connect()
        if not self.stepped and self._watchdog is None:
            self._watchdog_stop = threading.Event()
            self._watchdog = threading.Thread(target=self._watch_wall_clock, args=(self._watchdog_stop,),
                                              name="arm-watchdog", daemon=True)
            self._watchdog.start()

    def disconnect(self) -> None:
        if self._watchdog_stop is not None:
            self._watchdog_stop.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=2.0)
        self._watchdog = None
        self._watchdog_stop = None
        with self._lock:
            self._moving = False
            self._last_sent = None
        self._inner.disconnect()

    # ---- e-stop --------------------------------------------------------------------------------
    def estop(self, reason: str = "e-stop pressed") -> None:
        """Stop at once and refuse every command until `reset_estop()`. Safe from any thread, and never
        waits for a command in progress (see the module docstring for what is guaranteed)."""
        with self._estop_lock:
            self._estop_reason = reason
            self._estop_generation += 1
            self.events[EVENT_ESTOP] += 1
        self._inner.stop()

    def reset_estop(self) -> None:
        """Accept commands again; the next step is limited from the measured pose."""
        with self._lock:
            with self._estop_lock:
                self._estop_reason = None
            self._last_sent = None
            self._moving = False

    @property
    def estopped(self) -> bool:
        return self._estop_reason is not None

    @property
    def estop_reason(self) -> str | None:
        return self._estop_reason

    # ---- Arm -----------------------------------------------------------------------------------
    def state(self) -> ArmState:
        return self._inner.state()

    def time(self) -> float:
        return self._inner.time()

    def command(self, cmd: ArmCommand) -> ArmCommand:
        """Send `cmd` within every limit; returns the command actually sent (what an episode records)."""
        with self._lock:
            generation = self._refuse_if_estopped()
            now = self._inner.time()
            safe = self.clamp(cmd, now)
            if self._estop_generation != generation:  # pressed while clamping: nothing sent yet
                self._refuse_if_estopped()  # raises: a reset would wait for the lock held here
            self._inner.command(safe)
            with self._estop_lock:
                overtaken = self._estop_generation != generation
            if overtaken:
                # The e-stop's own stop may have reached the arm before this command did: stop again,
                # so the last thing the arm is told is "stop".
                self._inner.stop()
                self._refuse_if_estopped()  # raises, as above
            self._last_sent, self._last_sent_clock = safe.ee_target, now
            self._moving = True
            self._last_command_wall = time.monotonic()
            self._last_command_clock = now if self.stepped else None  # a stepped clock stands still in command
            return safe

    def _refuse_if_estopped(self) -> int:
        """The e-stop generation now; raises ArmError while the e-stop is engaged."""
        with self._estop_lock:
            reason, generation = self._estop_reason, self._estop_generation
            if reason is not None:
                self.events[EVENT_REFUSED_ESTOP] += 1
        if reason is not None:
            raise ArmError(f"e-stop engaged: {reason}; reset the e-stop before moving")
        return generation

    def wait_tick(self) -> None:
        self._inner.wait_tick()
        if self.stepped:  # the watchdog runs on simulated time
            with self._lock:
                stalled = (self._moving and not self.estopped and self._last_command_clock is not None
                           and self._inner.time() - self._last_command_clock >= self.limits.watchdog_timeout - 1e-9)
                if stalled:
                    self._trip_watchdog()

    def stop(self) -> None:
        with self._lock:
            self._moving = False
            self._last_sent = None
            self._inner.stop()

    def recover(self) -> None:
        """Clear the inner arm's errors (franky); the GUI asks the operator before calling this."""
        recover = getattr(self._inner, "recover", None)
        if recover is None:
            raise ArmError(f"a {self.info.kind} arm has no errors to recover from")
        with self._lock:
            self._last_sent = None
            recover()

    # ---- limits --------------------------------------------------------------------------------
    def set_limits(self, limits: SafetyLimits) -> None:
        """New limits from the next command on (the operator set the workcell's box); ArmError when the
        end effector is outside the new box, where every command would drag it to the wall."""
        here = self._inner.state().ee_pose.position
        if not limits.contains(here, tol=1e-3):
            raise ArmError(f"the gripper at ({', '.join(f'{v:.3f}' for v in here)}) m is outside that box; move it "
                           "inside first or choose a box around it")
        with self._lock:
            self.limits = limits

    def clamp(self, cmd: ArmCommand, now: float | None = None) -> ArmCommand:
        """The command moved inside every limit (counted in `events`); refuses non-finite values.

        `now`: the arm's clock at which the command is sent (read from the arm when omitted); the
        step from the last sent target is limited by the time elapsed since that target was sent.
        """
        lim = self.limits
        pos = np.asarray(cmd.ee_target.position, dtype=float)
        quat = np.asarray(cmd.ee_target.quat, dtype=float)
        force = float(cmd.gripper_force)
        if pos.shape != (3,) or quat.shape != (4,):
            self.events[EVENT_NON_FINITE] += 1
            raise ArmError(f"refused a target with position shape {pos.shape} and quaternion shape {quat.shape}")
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat)) and math.isfinite(force)):
            self.events[EVENT_NON_FINITE] += 1
            raise ArmError(f"refused a non-finite command: position {pos.tolist()}, quaternion {quat.tolist()}, "
                           f"gripper force {force}")
        unit = _unit_quaternion(quat)
        if unit is None:
            self.events[EVENT_NON_FINITE] += 1
            raise ArmError("refused a command with a zero quaternion")

        lo, hi = np.asarray(lim.workspace_min), np.asarray(lim.workspace_max)
        boxed = np.clip(pos, lo, hi)
        if np.any(boxed != pos):
            self.events[EVENT_WORKSPACE] += 1

        elapsed = self._elapsed_since_last_sent(self._inner.time() if now is None else now)
        previous = self._last_sent if self._last_sent is not None else self._inner.state().ee_pose
        prev_pos = np.asarray(previous.position, dtype=float)
        prev_quat = np.asarray(previous.quat, dtype=float)
        max_step = lim.max_speed * elapsed
        step = boxed - prev_pos
        dist = float(np.linalg.norm(step))
        if dist > max_step:
            boxed = prev_pos + step * (max_step / dist)
            # Back into the box, grown to hold the previous pose in case the arm started outside it:
            # projecting onto a box that holds prev_pos never lengthens the step.
            boxed = np.clip(boxed, np.minimum(lo, prev_pos), np.maximum(hi, prev_pos))
            self.events[EVENT_SPEED] += 1

        max_turn = lim.max_rotation_speed * elapsed
        angle = quat_angle(prev_quat, unit)
        if angle > max_turn:
            unit = quat_slerp(prev_quat, unit, 0.999 * max_turn / angle)
            self.events[EVENT_ROTATION] += 1

        safe_force = min(max(force, 0.0), lim.max_gripper_force)
        if safe_force != force:
            self.events[EVENT_GRIPPER_FORCE] += 1
        return ArmCommand(Pose(tuple(float(v) for v in boxed), tuple(float(v) for v in unit)),
                          bool(cmd.gripper_closed), float(safe_force))

    def _elapsed_since_last_sent(self, now: float) -> float:
        """Seconds the target may move for: since the last sent target, within [0, one control period].

        The ceiling makes a pause (or a stop, after which the step starts from the measured pose)
        worth one period's step, never a jump; a clock that went backwards allows no motion."""
        period = self.control_period
        if self._last_sent is None or self._last_sent_clock is None:
            return period
        return min(max(now - self._last_sent_clock, 0.0), period)

    # ---- watchdog ------------------------------------------------------------------------------
    def _trip_watchdog(self) -> None:
        with self._lock:
            self._moving = False
            self._last_sent = None
            self.events[EVENT_WATCHDOG] += 1
            self._inner.stop()

    def _watch_wall_clock(self, stop: threading.Event) -> None:
        while not stop.wait(_WATCHDOG_POLL_S):
            with self._lock:
                stalled = (self._moving and not self.estopped and self._last_command_wall is not None
                           and time.monotonic() - self._last_command_wall > self.limits.watchdog_timeout)
                if stalled:
                    try:
                        self._trip_watchdog()
                    except ArmError:
                        pass  # the arm is already unreachable; the next command reports it
