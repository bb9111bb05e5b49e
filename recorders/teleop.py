"""Teleoperation: what an operator asks of the end effector, and how that becomes arm commands.

Input devices (keyboard, gamepad, SpaceMouse; recorders/teleop_devices.py) each produce a
`TeleopIntent`: normalised linear and angular velocities in [-1, 1] and a gripper request. At
every control tick `TeleopIntegrator.step` turns the intent into the next end-effector target at
the operator's speed setting; the safety layer clamps it like any other command.

Frames: linear x points away from the robot, y to its left, z up (the robot base frame, so the
keys do what they say whatever the gripper's orientation); angular is roll, pitch, yaw about the
same axes. The keyboard binding is one table (`KEY_BINDINGS`) that the GUI also shows as help.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from recorders.arms.base import ArmCommand, ArmState
from recorders.pose import Pose, quat_multiply

GRIPPER_REQUESTS = ("open", "close", "toggle")
SPEED_LEVELS_M_S = (0.02, 0.05, 0.1, 0.2)  # end-effector speed settings offered to the operator
DEFAULT_SPEED_LEVEL = 1
TURN_RAD_S_PER_M_S = 6.0  # angular speed per unit of linear speed setting (0.05 m/s -> 0.3 rad/s)
MAX_LEAD_M = 0.05  # the target never runs further than this ahead of the measured pose (franky trails a
# streamed target by ~0.27 s: 5 cm keeps 0.2 m/s teleop at speed, and bounds the run-on after a key is released)


@dataclass(frozen=True)
class TeleopIntent:
    """One device's request for this tick."""

    linear: tuple[float, float, float] = (0.0, 0.0, 0.0)  # x, y, z in [-1, 1]
    angular: tuple[float, float, float] = (0.0, 0.0, 0.0)  # roll, pitch, yaw in [-1, 1]
    gripper: str | None = None  # one of GRIPPER_REQUESTS, or None for no change

    def __post_init__(self):
        for name in ("linear", "angular"):
            v = getattr(self, name)
            if len(v) != 3 or not all(isinstance(c, (int, float)) and math.isfinite(c) for c in v):
                raise ValueError(f"{name} must be three finite numbers, got {v!r}")
            object.__setattr__(self, name, tuple(float(min(1.0, max(-1.0, c))) for c in v))
        if self.gripper is not None and self.gripper not in GRIPPER_REQUESTS:
            raise ValueError(f"gripper must be one of {GRIPPER_REQUESTS} or None, got {self.gripper!r}")

    @property
    def is_idle(self) -> bool:
        return not any(self.linear) and not any(self.angular) and self.gripper is None

    def combined(self, other: "TeleopIntent") -> "TeleopIntent":
        """Two devices at once: velocities add (then clip), the later gripper request wins."""
        return TeleopIntent(tuple(a + b for a, b in zip(self.linear, other.linear)),
                            tuple(a + b for a, b in zip(self.angular, other.angular)),
                            other.gripper or self.gripper)


@dataclass(frozen=True)
class KeyBinding:
    key: str  # the key's name as Qt spells it (QKeySequence text), e.g. "W", "PgUp", "Space"
    action: str  # "linear", "angular" or "gripper"
    axis: int  # 0..2 for linear/angular
    sign: float  # +1 / -1
    help: str


KEY_BINDINGS: tuple[KeyBinding, ...] = (
    KeyBinding("W", "linear", 0, +1, "forward (away from the robot)"),
    KeyBinding("S", "linear", 0, -1, "backward"),
    KeyBinding("A", "linear", 1, +1, "left"),
    KeyBinding("D", "linear", 1, -1, "right"),
    KeyBinding("R", "linear", 2, +1, "up"),
    KeyBinding("F", "linear", 2, -1, "down"),
    KeyBinding("Q", "angular", 2, +1, "turn the gripper left (yaw)"),
    KeyBinding("E", "angular", 2, -1, "turn the gripper right (yaw)"),
    KeyBinding("I", "angular", 1, +1, "tilt forward (pitch)"),
    KeyBinding("K", "angular", 1, -1, "tilt backward (pitch)"),
    KeyBinding("J", "angular", 0, -1, "tilt left (roll)"),
    KeyBinding("L", "angular", 0, +1, "tilt right (roll)"),
    KeyBinding("Space", "gripper", 0, 0, "open / close the gripper"),
)
SPEED_KEYS = {"+": +1, "=": +1, "-": -1}  # faster / slower
_BY_KEY = {b.key: b for b in KEY_BINDINGS}


def intent_from_keys(held: set[str], pressed: set[str] = frozenset()) -> TeleopIntent:
    """The intent of the keys now held down (motion) and those pressed since the last tick (gripper)."""
    linear, angular = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    for key in held:
        b = _BY_KEY.get(key)
        if b is not None and b.action in ("linear", "angular"):
            (linear if b.action == "linear" else angular)[b.axis] += b.sign
    gripper = "toggle" if any(_BY_KEY.get(k) and _BY_KEY[k].action == "gripper" for k in pressed) else None
    return TeleopIntent(tuple(linear), tuple(angular), gripper)


def is_teleop_key(key: str) -> bool:
    return key in _BY_KEY or key in SPEED_KEYS


def _rotation_vector_quat(rv: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rv))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    axis = rv / angle
    return np.array([math.cos(angle / 2), *(math.sin(angle / 2) * axis)])


class TeleopInputs:
    """The operator's teleop inputs, set from any thread and read once per control tick: the keyboard's
    intent (a gripper request is kept until a tick takes it) and the devices (gamepad, SpaceMouse:
    anything with poll() -> TeleopIntent) polled beside it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._keys = TeleopIntent()
        self._gripper_request: str | None = None
        self._devices: tuple = ()

    def set_keys(self, intent: TeleopIntent) -> None:
        with self._lock:
            self._keys = TeleopIntent(intent.linear, intent.angular)
            if intent.gripper is not None:
                self._gripper_request = intent.gripper

    @property
    def devices(self) -> tuple:
        with self._lock:
            return self._devices

    def set_devices(self, devices) -> tuple:
        """Poll these devices from now on; returns the ones polled before."""
        with self._lock:
            old, self._devices = self._devices, tuple(devices)
        return old

    def add_device(self, device) -> None:
        with self._lock:
            self._devices = (*self._devices, device)

    def take(self) -> TeleopIntent:
        """The intent for this tick, the keys' and every device's combined; a key's gripper request is
        handed out once."""
        with self._lock:
            intent, gripper, self._gripper_request = self._keys, self._gripper_request, None
            devices = self._devices
        if gripper is not None:
            intent = TeleopIntent(intent.linear, intent.angular, gripper)
        for device in devices:
            intent = intent.combined(device.poll())
        return intent


class TeleopIntegrator:
    """Turns intents into end-effector targets, one control tick at a time."""

    def __init__(self, control_hz: float, speed_level: int = DEFAULT_SPEED_LEVEL):
        if control_hz <= 0:
            raise ValueError(f"control_hz must be positive, got {control_hz}")
        self.dt = 1.0 / control_hz
        self.speed_level = speed_level
        self.target: Pose | None = None  # None: start from the measured pose at the next step
        self.gripper_closed: bool | None = None

    @property
    def speed_level(self) -> int:
        return self._speed_level

    @speed_level.setter
    def speed_level(self, level: int) -> None:
        self._speed_level = int(min(len(SPEED_LEVELS_M_S) - 1, max(0, level)))

    @property
    def speed(self) -> float:
        """m/s at full deflection."""
        return SPEED_LEVELS_M_S[self._speed_level]

    def resync(self) -> None:
        """Forget the target (after a skill moved the arm, or an e-stop): restart from the measured pose."""
        self.target = None
        self.gripper_closed = None

    def step(self, intent: TeleopIntent, state: ArmState) -> ArmCommand:
        """The command for this tick: the previous target moved by the intent, never far from the arm."""
        if self.target is None:
            self.target = state.ee_pose
        if self.gripper_closed is None:
            self.gripper_closed = state.gripper_closed
        if intent.gripper == "toggle":
            self.gripper_closed = not self.gripper_closed
        elif intent.gripper is not None:
            self.gripper_closed = intent.gripper == "close"
        step = np.asarray(intent.linear) * self.speed * self.dt
        position = self.target.xyz + step
        lead = position - state.ee_pose.xyz  # a blocked arm must not wind the target up
        if np.linalg.norm(lead) > MAX_LEAD_M:
            position = state.ee_pose.xyz + lead * (MAX_LEAD_M / np.linalg.norm(lead))
        turn = np.asarray(intent.angular) * self.speed * TURN_RAD_S_PER_M_S * self.dt
        quat = quat_multiply(_rotation_vector_quat(turn), np.asarray(self.target.quat))  # base-frame rotation
        quat = quat / np.linalg.norm(quat)
        self.target = Pose(tuple(float(v) for v in position), tuple(float(v) for v in quat))
        return ArmCommand(self.target, bool(self.gripper_closed))
