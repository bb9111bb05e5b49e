"""The arm interface every backend implements (in-process sim, franky), and its value types.

Control flows one way: a skill or teleop computes an `ArmCommand` per control tick, the safety
layer (recorders/safety.py) clamps it, the backend tracks it until the next tick. Backends never
block in `command`; `wait_tick` is what advances time (simulated physics, or the wall clock).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from recorders.pose import Pose

DEFAULT_CONTROL_HZ = 10.0
DEFAULT_GRASP_FORCE_N = 20.0
GRIPPER_MAX_WIDTH_M = 0.08


class ArmError(RuntimeError):
    """An arm could not be reached or refused a command; the message says what to do."""


@dataclass(frozen=True)
class ArmState:
    """Proprioception at one instant."""

    time: float  # seconds on the arm's clock (simulated time, or time.monotonic for real arms)
    joint_positions: np.ndarray  # (7,) rad
    joint_velocities: np.ndarray  # (7,) rad/s
    ee_pose: Pose  # tool centre point in the base frame
    gripper_width: float  # m, between the fingers
    gripper_closed: bool  # the last gripper command was close/grasp


@dataclass(frozen=True)
class ArmCommand:
    """What the arm should do until the next control tick."""

    ee_target: Pose
    gripper_closed: bool = False
    gripper_force: float = DEFAULT_GRASP_FORCE_N  # N, squeezing force when closed

    def to_action(self) -> np.ndarray:
        """(8,) action vector as stored in episodes: position, quaternion (w, x, y, z), gripper."""
        return np.concatenate([self.ee_target.to_array(), [1.0 if self.gripper_closed else 0.0]])


@dataclass
class ArmInfo:
    """Static facts about a connected arm, stored in episode files."""

    kind: str  # "sim" | "franky-sim" | "franky"
    control_hz: float = DEFAULT_CONTROL_HZ
    details: dict = field(default_factory=dict)
    stepped: bool = False  # the arm's clock advances only in wait_tick (a simulation faster than real time)


class Arm(ABC):
    """A 7-DoF arm with a parallel gripper, commanded in end-effector space at the control rate."""

    info: ArmInfo

    @abstractmethod
    def connect(self) -> None:
        """Open the connection (or build the simulation). Raises ArmError with a fix on failure."""

    @abstractmethod
    def disconnect(self) -> None:
        """Release the arm; safe to call twice."""

    @abstractmethod
    def state(self) -> ArmState:
        """The latest proprioception."""

    @abstractmethod
    def command(self, cmd: ArmCommand) -> None:
        """Set the target tracked until the next tick. Never blocks."""

    @abstractmethod
    def wait_tick(self) -> None:
        """Block until the next control tick (advances the physics for simulated arms)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop at once and hold the current pose (e-stop, watchdog).

        Must be callable from any thread while `command` runs in another: the e-stop does not wait
        for a command in progress (recorders/safety.py stops again after one that overlapped it)."""

    def time(self) -> float:
        """Seconds on the arm's clock."""
        return self.state().time

    @property
    def control_period(self) -> float:
        return 1.0 / self.info.control_hz

    def __enter__(self) -> "Arm":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()
