"""What the Record session publishes: its snapshot (read by the Record workspace on a timer) and its
events (log lines), plain frozen data copied under the session's lock."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.capture_devices import CameraStatus
from app.recording import RecordingStatus
from app.workcell_setup import WorkcellSetup
from app.workcell_tools import CalibrationStatus


@dataclass(frozen=True)
class TickSample:
    t: float  # seconds on the workcell's clock
    ee_xyz: tuple[float, float, float]
    gripper_width: float


@dataclass(frozen=True)
class SessionEvent:
    kind: str  # info | error | call | saved | discarded
    text: str
    path: Path | None = None


@dataclass(frozen=True)
class SessionSnapshot:
    connection: str = "disconnected"
    message: str = "not connected"
    robot: str = "sim"
    task: str = ""
    seed: int = 0
    instruction: str = ""
    tick: int = 0
    images: dict = field(default_factory=dict)  # camera -> (H, W, 3) uint8
    samples: tuple[TickSample, ...] = ()
    objects: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    memory_keys: tuple[str, ...] = ()  # poses stored by remember()
    estop_reason: str | None = None
    running_call: str | None = None  # a robot-API call now executing
    open_call: str | None = None  # a hotkey stretch now open
    recording: RecordingStatus | None = None
    speed_level: int = 1
    late_ticks: int = 0  # ticks that started more than a period late
    teleop_devices: tuple = ()  # TeleopDeviceInfo of every gamepad / SpaceMouse found
    teleop_devices_note: str = "not scanned yet"  # why a kind is missing, or which device is in use
    cameras: tuple[CameraStatus, ...] = ()
    simulated: bool = True  # False: a real arm, whose takes the operator judges
    microphone: str = "off"  # the microphone a take records, or "off"
    realsense: tuple = ()  # CameraInfo of every RealSense camera found by the last scan
    microphones: tuple = ()  # MicrophoneInfo of every microphone found by the last scan
    capture_note: str = "not scanned yet"  # why no camera / microphone was found
    setup: WorkcellSetup | None = None  # how the connected workcell was opened
    taught: tuple[tuple[str, str], ...] = ()  # (name, "object" | "target") the perceived workcell knows
    marks: dict = field(default_factory=dict)  # camera -> ((name, u, v, seen), ...) of tracked objects, targets
    calibration: CalibrationStatus | None = None  # a camera calibration going on (or just solved)
    workspace: tuple | None = None  # (lower xyz, upper xyz) of the safety layer's box
