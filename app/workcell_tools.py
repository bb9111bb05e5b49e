"""What the Record session does to set a workcell up: teach objects and targets by clicking them in a
camera view, calibrate a camera step by step, and set the workspace box. Worker thread only (the
session's worker owns the workcell); what the operator sees goes out as snapshot fields.

    teach(camera, u, v, name, kind)   the frame of `camera` now -> recorders/perception/teaching.py
                                      -> the perceived workcell's taught scene (saved with a real arm)
    marks()                           every tracked object and target projected onto each camera
    calibration: start -> step (go to the next pose, capture) ... -> finish (solve, save, apply)
    set_workspace(lower, upper)       the safety layer's box, saved with the calibration

A simulated workcell is taught afresh with every scene (auto_teach, app/workcell_setup.py), so what is
taught there lives with the scene; a real arm's taught scene is saved in its folder and reloads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.workcell_setup import is_simulated

TEACH_KINDS = ("object", "target")


@dataclass(frozen=True)
class CalibrationStatus:
    camera: str
    pose: int  # poses visited so far
    poses: int  # planned
    captures: int  # kept
    message: str  # the last step's outcome, or what to do next
    image: np.ndarray | None = field(default=None, repr=False, compare=False)  # the last capture, board drawn
    residual_mm: float | None = None  # once solved
    residual_deg: float | None = None
    saved: str | None = None  # where the solved calibration was saved


class WorkcellTools:
    def __init__(self, folder: Path | None):
        self.folder = folder  # the workcell's folder (app/workcell_setup.py), None: nothing saved
        self._procedure = None
        self._status: CalibrationStatus | None = None

    # ---- teaching -----------------------------------------------------------------------------------
    def teach(self, cell, camera: str, u: float, v: float, name: str, kind: str) -> str:
        """Teach the object (or target) under pixel (u, v) of `camera`; the line to tell the operator.
        ValueError (one line) when the workcell does not perceive objects or the click shows nothing."""
        from recorders.perception.camera_frame import frame_from_workcell
        from recorders.perception.teaching import teach_object, teach_target

        if kind not in TEACH_KINDS:
            raise ValueError(f"teach an object or a target, not {kind!r}")
        taught = _taught(cell)
        frame = frame_from_workcell(cell, camera)
        if kind == "object":
            taught = taught.with_object(teach_object(name, frame, u, v, taken=taught.names))
        else:
            taught = taught.with_target(teach_target(name, frame, u, v, taken=taught.names))
        cell.set_taught(taught)
        saved = self._save_taught(cell, taught)
        return f"taught the {kind} {name!r} from the {camera} camera" + (f"; saved in {saved}" if saved else "")

    def forget(self, cell, name: str) -> str:
        taught = _taught(cell).without(name)
        cell.set_taught(taught)
        self._save_taught(cell, taught)
        return f"forgot {name!r}"

    def taught_names(self, cell) -> tuple[tuple[str, str], ...]:
        """(name, "object" | "target") of everything the workcell was taught."""
        taught = getattr(cell, "taught", None)
        if taught is None:
            return ()
        return tuple((o.name, "object") for o in taught.objects) + tuple((t.name, "target") for t in taught.targets)

    def marks(self, cell) -> dict[str, tuple]:
        """{camera: ((name, u, v, seen), ...)} of the tracked objects and taught targets in each image."""
        from recorders.cell.camera_geometry import project

        tracked = getattr(cell, "tracked", None)
        taught = getattr(cell, "taught", None)
        if tracked is None or taught is None:
            return {}
        names = list(tracked) + [t.name for t in taught.targets]
        if not names:
            return {}
        points = np.array([tracked[n].pose.xyz for n in tracked] + [t.position for t in taught.targets], float)
        seen = [bool(tracked[n].seen) for n in tracked] + [True] * len(taught.targets)
        out = {}
        for cam in cell.cameras:
            try:
                uv, inside = project(points, cell.camera_pose(cam), cell.camera_intrinsics(cam))
            except ValueError:
                continue  # a camera not calibrated yet cannot place anything
            out[cam] = tuple((n, float(p[0]), float(p[1]), s) for n, p, ok, s in zip(names, uv, inside, seen) if ok)
        return out

    def _save_taught(self, cell, taught) -> Path | None:
        if self.folder is None or is_simulated(cell.kind):
            return None
        from recorders.perception.taught_scene import save_taught_scene

        return save_taught_scene(self.folder, taught)

    # ---- calibration --------------------------------------------------------------------------------
    @property
    def calibrating(self) -> bool:
        return self._procedure is not None

    def start_calibration(self, cell, camera: str, poses: int, hooks: dict) -> CalibrationStatus:
        from recorders.perception.calibration_procedure import CalibrationProcedure, arm_view, sim_views

        view = sim_views()[camera] if is_simulated(cell.kind) else arm_view(camera)
        self._procedure = CalibrationProcedure(cell, view, poses, **hooks)
        planned = self._procedure.plan()
        where = ("the board on the table" if view.mount_frame == "hand" else "the board held by the hand")
        self._status = CalibrationStatus(camera, 0, len(planned), 0, f"{len(planned)} poses planned around {where}; "
                                         "press Next pose to move there and capture")
        return self._status

    def calibration_step(self) -> CalibrationStatus:
        """Move to the next planned pose and capture the board there."""
        from recorders.perception.charuco import draw_detection

        proc, st = self._require()
        if st.pose >= st.poses:
            raise ValueError("every planned pose is done: press Solve")
        proc.go_to(st.pose)
        outcome = proc.capture()
        image = outcome.image
        if outcome.detection is not None and image is not None:
            image = draw_detection(image, outcome.detection, proc.cell.camera_intrinsics(st.camera), proc.view.board)
        message = (f"pose {st.pose + 1}/{st.poses}: {outcome.corners} corners" if outcome.ok else
                   f"pose {st.pose + 1}/{st.poses}: not kept, {outcome.reason}")
        self._status = CalibrationStatus(st.camera, st.pose + 1, st.poses, len(proc.captures), message, image)
        return self._status

    def finish_calibration(self, cell) -> CalibrationStatus:
        """Solve, save into the workcell's calibration (other cameras kept) and use the new mount."""
        from recorders.perception.calibration import Calibration, WorkspaceBox, load_calibration, save_calibration

        proc, st = self._require()
        result = proc.solve()
        saved = None
        if self.folder is not None:
            previous = load_calibration(self.folder) or Calibration(cell.kind)
            calibration = previous.with_camera(st.camera, result)
            if calibration.workspace is None:
                calibration = calibration.with_workspace(WorkspaceBox.from_limits(cell.arm.limits))
            saved = str(save_calibration(self.folder, calibration))
        stream = cell.camera(st.camera)
        if hasattr(stream, "set_mount"):
            stream.set_mount(result.mount)  # a device camera places what it sees from now on
        self._procedure = None
        self._status = CalibrationStatus(st.camera, st.pose, st.poses, st.captures,
                                         f"solved from {result.captures} captures: residual {result.residual_mm:.1f} mm, "
                                         f"{result.residual_deg:.2f} deg", st.image, result.residual_mm,
                                         result.residual_deg, saved)
        return self._status

    def cancel_calibration(self) -> None:
        self._procedure, self._status = None, None

    def _require(self):
        if self._procedure is None or self._status is None:
            raise ValueError("no calibration is going on: press Calibrate first")
        return self._procedure, self._status

    # ---- workspace box ------------------------------------------------------------------------------
    def set_workspace(self, cell, lower, upper) -> str:
        """The safety layer's box for this workcell, saved with its calibration; ValueError if invalid."""
        from recorders.perception.calibration import Calibration, WorkspaceBox, load_calibration, save_calibration

        box = WorkspaceBox(tuple(float(v) for v in lower), tuple(float(v) for v in upper))
        cell.arm.set_limits(box.limits(cell.arm.limits))
        if self.folder is None:
            return "workspace box set for this connection"
        previous = load_calibration(self.folder) or Calibration(cell.kind)
        path = save_calibration(self.folder, previous.with_workspace(box))
        return f"workspace box saved in {path}"


def _taught(cell):
    taught = getattr(cell, "taught", None)
    if taught is None or not hasattr(cell, "set_taught"):
        raise ValueError("this workcell takes its objects from the simulator: choose Objects: perceived by the "
                         "cameras (and Apply) to teach objects by clicking them")
    return taught
