"""A workcell's calibration: where each camera is (its mount, from hand-eye calibration), how well
the captures agreed, and the workspace box the safety layer keeps the arm in. One file per
workcell, `calibration.json` in the folder the caller chooses; each episode gets a copy
(`to_json` / `from_json`).

    calibration_procedure.solve() -> CameraCalibration --Calibration.with_camera--> Calibration
    save_calibration(folder, cal)  ->  folder/calibration.json (atomic: temporary file + os.replace)
    load_calibration(folder)       ->  Calibration | None (no file) | CalibrationFileError (damaged)
    Calibration.mounts()           ->  {camera: CameraMount}, for the cameras (recorders/cell/camera_geometry.py)
    Calibration.workspace.limits() ->  SafetyLimits with the stored box (recorders/safety.py)

The format carries `format_version`; a file from a newer version, or one that does not parse, is
refused with one line that names the file and says to calibrate again.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from recorders.cell.camera_geometry import CameraMount
from recorders.perception.charuco import CharucoBoardSpec
from recorders.pose import Pose, quat_angle
from recorders.safety import SafetyLimits

CALIBRATION_FILE = "calibration.json"
FORMAT_VERSION = 1


class CalibrationFileError(ValueError):
    """A calibration file that cannot be read; the one-line message names it and the fix."""


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second, as stored in `made_at`."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class WorkspaceBox:
    """The box (robot base frame, metres) the safety layer keeps the end effector in."""

    lower: tuple[float, float, float]
    upper: tuple[float, float, float]

    def __post_init__(self):
        if len(self.lower) != 3 or len(self.upper) != 3:
            raise ValueError(f"a workspace box needs 3 lower and 3 upper values, got {self.lower} and {self.upper}")
        for lo, hi, axis in zip(self.lower, self.upper, "xyz"):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"workspace {axis} range must be finite with lower < upper, got {lo}..{hi}")

    @staticmethod
    def from_limits(limits: SafetyLimits) -> "WorkspaceBox":
        return WorkspaceBox(tuple(map(float, limits.workspace_min)), tuple(map(float, limits.workspace_max)))

    def limits(self, base: SafetyLimits | None = None) -> SafetyLimits:
        """`base` (default limits when None) with this box as its workspace."""
        return replace(base or SafetyLimits(), workspace_min=self.lower, workspace_max=self.upper)

    def to_dict(self) -> dict:
        return {"lower": list(self.lower), "upper": list(self.upper)}

    @staticmethod
    def from_dict(d: dict) -> "WorkspaceBox":
        return WorkspaceBox(tuple(float(v) for v in d["lower"]), tuple(float(v) for v in d["upper"]))


@dataclass(frozen=True)
class CameraCalibration:
    """One camera's hand-eye result."""

    mount: CameraMount  # "hand": the camera relative to the TCP; "base": the camera in the base frame
    residual_mm: float  # RMS spread of the board pose the captures imply (recorders/perception/hand_eye.py)
    residual_deg: float
    reprojection_px: float  # RMS of the board corners' reprojection with the solved poses (NaN: unknown)
    captures: int
    made_at: str  # ISO 8601, UTC
    board: CharucoBoardSpec | None = None  # the board it was made with
    intrinsics: dict | None = None  # the camera intrinsics it was made with

    def to_dict(self) -> dict:
        return {"mount": self.mount.to_dict(), "residual_mm": self.residual_mm, "residual_deg": self.residual_deg,
                "reprojection_px": None if math.isnan(self.reprojection_px) else self.reprojection_px,
                "captures": self.captures, "made_at": self.made_at,
                "board": None if self.board is None else self.board.to_dict(), "intrinsics": self.intrinsics}

    @staticmethod
    def from_dict(d: dict) -> "CameraCalibration":
        reprojection = d.get("reprojection_px")
        return CameraCalibration(
            mount=CameraMount.from_dict(d["mount"]), residual_mm=float(d["residual_mm"]),
            residual_deg=float(d["residual_deg"]),
            reprojection_px=float("nan") if reprojection is None else float(reprojection),
            captures=int(d["captures"]), made_at=str(d["made_at"]),
            board=None if d.get("board") is None else CharucoBoardSpec.from_dict(d["board"]),
            intrinsics=None if d.get("intrinsics") is None else dict(d["intrinsics"]))


@dataclass(frozen=True)
class Calibration:
    """Every calibrated camera of one workcell, and its workspace box."""

    robot: str  # the workcell's robot kind (recorders/cell/registry.py)
    cameras: dict[str, CameraCalibration] = field(default_factory=dict)
    workspace: WorkspaceBox | None = None  # None: the safety layer's defaults

    def mounts(self) -> dict[str, CameraMount]:
        return {name: cam.mount for name, cam in self.cameras.items()}

    def with_camera(self, name: str, camera: CameraCalibration) -> "Calibration":
        """This calibration with one camera's result added or replaced (the others are kept)."""
        return replace(self, cameras={**self.cameras, name: camera})

    def with_workspace(self, workspace: WorkspaceBox | None) -> "Calibration":
        return replace(self, workspace=workspace)

    @property
    def made_at(self) -> str | None:
        """When its latest camera was calibrated."""
        return max((c.made_at for c in self.cameras.values()), default=None)

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "robot": self.robot,
                "cameras": {name: cam.to_dict() for name, cam in self.cameras.items()},
                "workspace": None if self.workspace is None else self.workspace.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @staticmethod
    def from_dict(d: dict) -> "Calibration":
        """Raises CalibrationFileError for another format version, and KeyError / TypeError / ValueError
        for missing or malformed fields (`from_json` turns those into CalibrationFileError)."""
        version = d.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise CalibrationFileError(f"no valid format_version ({version!r})")
        if version > FORMAT_VERSION:
            raise CalibrationFileError(f"format version {version} is newer than this Code2Act reads "
                                       f"(up to {FORMAT_VERSION}); update Code2Act or calibrate again")
        workspace = d.get("workspace")
        return Calibration(robot=str(d["robot"]),
                           cameras={str(name): CameraCalibration.from_dict(c) for name, c in d["cameras"].items()},
                           workspace=None if workspace is None else WorkspaceBox.from_dict(workspace))

    @staticmethod
    def from_json(text: str, source: str = "calibration") -> "Calibration":
        """The calibration in `text`; CalibrationFileError with one line naming `source` otherwise."""
        try:
            d = json.loads(text)
            if not isinstance(d, dict):
                raise TypeError(f"expected a JSON object, got {type(d).__name__}")
            return Calibration.from_dict(d)
        except CalibrationFileError as e:
            raise CalibrationFileError(f"{source}: {e}") from None
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
            what = f"missing field {e}" if isinstance(e, KeyError) else " ".join(str(e).split()) or type(e).__name__
            raise CalibrationFileError(f"{source} is damaged ({what}); calibrate again") from None


def save_calibration(folder: Path, calibration: Calibration) -> Path:
    """Write `folder/calibration.json` atomically (a crash leaves the old file or the new one)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CALIBRATION_FILE
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(calibration.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_calibration(folder: Path) -> Calibration | None:
    """The calibration saved in `folder`; None when there is none; CalibrationFileError when damaged."""
    path = Path(folder) / CALIBRATION_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CalibrationFileError(f"{path} is damaged (not UTF-8 text); calibrate again") from None
    return Calibration.from_json(text, source=str(path))


def mount_error(solved: CameraMount, truth: CameraMount) -> tuple[float, float]:
    """How far a solved mount lies from the true one: translation (mm) and rotation (degrees)."""
    if solved.frame != truth.frame:
        raise ValueError(f"a {solved.frame!r} mount cannot be compared with a {truth.frame!r} one")
    return pose_error(solved.pose, truth.pose)


def pose_error(a: Pose, b: Pose) -> tuple[float, float]:
    """Translation (mm) and rotation (degrees) between two poses."""
    mm = 1000.0 * math.dist(a.position, b.position)
    return mm, math.degrees(quat_angle(a.quat, b.quat))
