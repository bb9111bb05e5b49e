"""The one safety layer in front of every arm command (DESIGN.md section 8), real or simulated.

`SafeArm` wraps any `Arm` and is the only way commands reach it: targets are clamped into the
workspace box, each tick's step is limited in translation and rotation (so speed is bounded),
gripper force is capped, non-finite commands are refused, a watchdog stops the arm when commands
stall, and an e-stop (from any thread) stops it at once and refuses everything until reset.
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


@dataclass(frozen=True)
class SafetyLimits:
    workspace_min: tuple[float, float, float] = (0.2, -0.45, 0.005)  # m, robot base frame
    workspace_max: tuple[float, float, float] = (0.8, 0.45, 0.7)
    max_speed: float = 0.5  # m/s of the end effector
    max_rotation_speed: float = 2.0  # rad/s
    max_gripper_force: float = 70.0  # N
    watchdog_timeout: float = 0.5  # s without a new command while moving -> stop

    def __post_init__(self):
        for lo, hi, axis in zip(self.workspace_min, self.workspace_max, "xyz"):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"workspace {axis} range must be finite with min < max, got {lo}..{hi}")
        for name in ("max_speed", "max_rotation_speed", "max_gripper_force", "watchdog_timeout"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v}")


class SafeArm(Arm):
    """An `Arm` that forwards only commands within `limits` to `inner`."""

    def __init__(self, inner: Arm, limits: SafetyLimits = SafetyLimits()):
        self.inner = inner
        self.limits = limits
        self.info = inner.info
        self.events: Counter[str] = Counter()  # how often each limit acted, for the GUI
        self._lock = threading.RLock()
        self._estop_reason: str | None = None
        self._last_sent: ArmCommand | None = None
        self._last_command_time: float | None = None  # on the arm's clock
        self._last_command_wall: float | None = None
        self._moving = False
        self._stop_watchdog = threading.Event()
        self._watchdog: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def connect(self) -> None:
        self.inner.connect()
        if self.inner.info.kind != "sim" and self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch_wall_clock, name="arm-watchdog", daemon=True)
            self._watchdog.start()

    def disconnect(self) -> None:
        self._stop_watchdog.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=2)
        self._watchdog = None
        self.inner.disconnect()

    # ---- e-stop --------------------------------------------------------------------------------
    def estop(self, reason: str = "e-stop pressed") -> None:
        """Stop at once and refuse every command until `reset_estop()`. Safe from any thread."""
        with self._lock:
            self._estop_reason = reason
            self._moving = False
            self.events["estop"] += 1
        self.inner.stop()

    def reset_estop(self) -> None:
        with self._lock:
            self._estop_reason = None
            self._last_sent = None  # the next step is limited from the measured pose again

    @property
    def estopped(self) -> bool:
        return self._estop_reason is not None

    # ---- Arm -----------------------------------------------------------------------------------
    def state(self) -> ArmState:
        return self.inner.state()

    def command(self, cmd: ArmCommand) -> None:
        with self._lock:
            if self._estop_reason is not None:
                raise ArmError(f"e-stop engaged: {self._estop_reason}; reset it before moving")
            safe = self.clamp(cmd)
            self._last_sent = safe
            self._moving = True
            self._last_command_time = self.inner.time()
            self._last_command_wall = time.monotonic()
        self.inner.command(safe)

    def wait_tick(self) -> None:
        self.inner.wait_tick()
        if self.inner.info.kind == "sim":  # stepped arms: the watchdog runs on simulated time
            with self._lock:
                stalled = (self._moving and self._last_command_time is not None
                           and self.inner.time() - self._last_command_time > self.limits.watchdog_timeout)
            if stalled:
                self._trip_watchdog()

    def stop(self) -> None:
        with self._lock:
            self._moving = False
        self.inner.stop()

    # ---- limits --------------------------------------------------------------------------------
    def clamp(self, cmd: ArmCommand) -> ArmCommand:
        """The command moved inside every limit (counted in `events`); refuses non-finite values."""
        lim = self.limits
        pos = np.asarray(cmd.ee_target.position, dtype=float)
        quat = np.asarray(cmd.ee_target.quat, dtype=float)
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat)) and math.isfinite(cmd.gripper_force)):
            self.events["non_finite"] += 1
            raise ArmError("refused a command with a non-finite target or force")
        norm = float(np.linalg.norm(quat))
        if norm < 1e-6:
            self.events["non_finite"] += 1
            raise ArmError("refused a command with a zero quaternion")
        quat = quat / norm

        boxed = np.clip(pos, lim.workspace_min, lim.workspace_max)
        if not np.allclose(boxed, pos):
            self.events["workspace"] += 1
        previous = self._last_sent.ee_target if self._last_sent is not None else self.inner.state().ee_pose
        prev_pos = np.asarray(previous.position, dtype=float)
        prev_quat = np.asarray(previous.quat, dtype=float)
        period = 1.0 / self.info.control_hz
        max_step = lim.max_speed * period
        step = boxed - prev_pos
        dist = float(np.linalg.norm(step))
        if dist > max_step:
            boxed = prev_pos + step * (max_step / dist)
            boxed = np.clip(boxed, lim.workspace_min, lim.workspace_max)
            self.events["speed"] += 1
        max_turn = lim.max_rotation_speed * period
        angle = quat_angle(prev_quat, quat)
        if angle > max_turn:
            quat = quat_slerp(prev_quat, quat, max_turn / angle * 0.999)
            self.events["rotation_speed"] += 1
        force = min(max(cmd.gripper_force, 0.0), lim.max_gripper_force)
        if force != cmd.gripper_force:
            self.events["gripper_force"] += 1
        return ArmCommand(Pose(tuple(float(v) for v in boxed), tuple(float(v) for v in quat)),
                          bool(cmd.gripper_closed), float(force))

    # ---- watchdog ------------------------------------------------------------------------------
    def _trip_watchdog(self) -> None:
        with self._lock:
            self._moving = False
            self.events["watchdog"] += 1
        self.inner.stop()

    def _watch_wall_clock(self) -> None:
        while not self._stop_watchdog.wait(0.05):
            with self._lock:
                stalled = (self._moving and self._last_command_wall is not None
                           and time.monotonic() - self._last_command_wall > self.limits.watchdog_timeout)
            if stalled:
                self._trip_watchdog()
