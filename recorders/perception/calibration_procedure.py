"""The guided hand-eye calibration of one camera on a workcell: plan the arm poses, drive the arm to
each, capture the board, solve. Steppable for the GUI (each call on a worker thread, the arm driven
only from that thread), or all at once for the CLI.

    CalibrationView (camera, mount frame, board, start pose, pivot)
      -> CalibrationProcedure(cell, view).plan()       N TCP poses turned about the pivot (the board),
                                                        inside the workspace box
      -> go_to(i)      the arm through skills.Motion (safety layer, abort) until it stands still
      -> capture()     render -> charuco.detect_board -> (TCP pose, board in camera) kept, or the reason not
      -> solve()       hand_eye.solve_eye_in_hand / solve_eye_to_hand -> calibration.CameraCalibration
    run(progress) does all of it; `sim_views()` says where the simulated workcell's boards are.

A GUI calls plan() once, then go_to(i) and capture() per pose (preview() for a live view without
keeping anything, discard_last() to drop a capture), then solve(); each may raise ArmError (the
safety layer or the arm refused), CalibrationError (a pose not reached, too few or too alike
captures) or, when `should_abort` turns true, recorders.call_log.CallAborted.

Turning the hand about a point on the board keeps that point at the same pixel and distance in the
camera (eye-in-hand) or the board at the same place in a fixed camera's image (eye-to-hand), so
every planned pose sees the board while the hand's rotations vary about different axes, which is
what hand-eye calibration needs. On a real arm the start is where the operator left the arm (camera
looking at the board) and the pivot lies along the tool axis; every pose stays within
`max_tilt_deg` and `max_shift_m` of the start and inside the workspace box.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np

from recorders.cell.camera_geometry import CameraMount
from recorders.cell.scene import CameraSettings, SceneSpec
from recorders.cell.workcell import Workcell
from recorders.perception.calibration import CameraCalibration, now_iso
from recorders.perception.charuco import HAND_BOARD, TABLE_BOARD, BoardDetection, CharucoBoardSpec, detect_board
from recorders.perception.hand_eye import (CornerObservation, HandEyeError, pose_from_matrix, rotation_exp,
                                           solve_eye_in_hand, solve_eye_to_hand)
from recorders.pose import Pose, quat_angle, quat_slerp
from recorders.safety import SafetyLimits

DEFAULT_POSES = 12
MIN_TCP_Z = 0.08  # m above the table: planned poses keep the hand and the fingers clear of it
BOX_MARGIN = 0.02  # m inside the workspace box
MOVE_SPEED = 0.1  # m/s, calibration moves are slow (the operator watches a real arm) and, on a real-time
TURN_SPEED = 0.4  # rad/s  arm, well inside the velocity franky lets a streamed waypoint pass with
REACHED_M = 0.004  # the measured TCP is this close to the planned pose ...
REACHED_RAD = math.radians(1.0)
STILL_M = 0.0002  # ... and moved less than this over one tick (and turned less than STILL_RAD)
STILL_RAD = math.radians(0.02)
MAX_SETTLE_TICKS = 40
MOUNT_FRAME_OF_CAMERA = {"front": "base", "wrist": "hand"}  # the workcell's camera roles
CALIBRATION_CAMERA_SIZE = (640, 480)  # what the simulated cameras render while calibrating

Progress = Callable[[int, int, str], None]  # (done, total, message)


class CalibrationError(RuntimeError):
    """The procedure cannot go on (a pose not reached, too few captures); one line says what to do."""


@dataclass(frozen=True)
class CalibrationView:
    """How one camera is calibrated: which board, from where, turning about which point."""

    camera: str
    mount_frame: str  # "hand": eye-in-hand, board fixed in the cell; "base": eye-to-hand, board on the hand
    board: CharucoBoardSpec
    start: Pose | None = None  # TCP pose where the camera sees the board; None: where the arm is
    pivot_in_tcp: tuple[float, float, float] = (0.0, 0.0, 0.3)  # the point on the board, TCP frame at the start
    max_tilt_deg: float = 20.0
    max_shift_m: float = 0.03

    def __post_init__(self):
        if self.mount_frame not in ("hand", "base"):
            raise ValueError(f"mount_frame is 'hand' or 'base', got {self.mount_frame!r}")


def arm_view(camera: str, board: CharucoBoardSpec | None = None, board_distance_m: float = 0.3) -> CalibrationView:
    """A real arm's view of `camera`, starting where the operator put the arm: the wrist camera looks
    at a board on the table about `board_distance_m` along the tool axis; the front camera looks at a
    board held by the hand close to the TCP. Small tilts only."""
    frame = MOUNT_FRAME_OF_CAMERA.get(camera)
    if frame is None:
        raise ValueError(f"no calibration for camera {camera!r}; cameras: {', '.join(MOUNT_FRAME_OF_CAMERA)}")
    if frame == "hand":
        return CalibrationView(camera, frame, board or TABLE_BOARD, None, (0.0, 0.0, board_distance_m), 15.0, 0.02)
    return CalibrationView(camera, frame, board or HAND_BOARD, None, (0.0, 0.0, 0.0), 15.0, 0.03)


def sim_views() -> dict[str, CalibrationView]:
    """The simulated workcell's views (boards and cameras of recorders/sim/scene.py): the wrist camera
    0.3 m from the table board's centre, the front camera facing the hand board with the TCP 0.17 m
    above the table. The wrist camera's start uses where the scene built it, only to aim it."""
    from recorders.sim.scene import board_pose, board_spec, wrist_camera_in_tcp

    table_centre = board_pose("table").compose(Pose(tuple(board_spec("table").centre))).xyz
    down = Pose.top_down((0.0, 0.0, 0.0))
    wrist = down.compose(wrist_camera_in_tcp())  # the camera of a TCP at the origin, pointing down
    wrist_start = down.with_position(table_centre - 0.3 * wrist.rotation_matrix()[:, 2] - wrist.xyz)
    table_in_tcp = wrist_start.inverse().compose(Pose(tuple(table_centre))).position
    hand_centre = board_pose("hand").compose(Pose(tuple(board_spec("hand").centre))).position  # TCP frame
    return {
        "wrist": CalibrationView("wrist", "hand", board_spec("table"), wrist_start, table_in_tcp, 25.0, 0.03),
        "front": CalibrationView("front", "base", board_spec("hand"), Pose.top_down((0.52, 0.0, 0.17)),
                                 hand_centre, 22.0, 0.04),
    }


def calibration_scene(width: int = CALIBRATION_CAMERA_SIZE[0], height: int = CALIBRATION_CAMERA_SIZE[1]) -> SceneSpec:
    """A simulated scene for calibrating: both boards, no objects, cameras at a resolution that resolves
    the markers."""
    return SceneSpec((), (), CameraSettings(width, height), boards=("table", "hand"))


def plan_poses(start: Pose, pivot: np.ndarray, n: int, limits: SafetyLimits, seed: int = 0,
               max_tilt_deg: float = 20.0, max_shift_m: float = 0.03) -> list[Pose]:
    """`n` TCP poses: the start, then the start turned about `pivot` (base frame) by up to
    `max_tilt_deg` about axes spread around the circle and shifted by up to `max_shift_m`, each kept
    inside the workspace box (less BOX_MARGIN) and above MIN_TCP_Z (its turn halved until it fits)."""
    rng = np.random.default_rng(seed)
    pivot = np.asarray(pivot, dtype=float)
    lower = np.asarray(limits.workspace_min) + BOX_MARGIN
    lower[2] = max(lower[2], MIN_TCP_Z)
    upper = np.asarray(limits.workspace_max) - BOX_MARGIN
    if not (np.all(start.xyz >= lower - 1e-9) and np.all(start.xyz <= upper + 1e-9)):
        raise CalibrationError(f"the start pose {np.round(start.xyz, 3).tolist()} is outside the workspace box (less "
                               f"{BOX_MARGIN * 100:.0f} cm, and at least {MIN_TCP_Z * 100:.0f} cm above the table)")
    poses = [start]
    start_rot = start.rotation_matrix()
    for k in range(1, n):
        # Axes spread around the circle of the start's x-y plane, with some roll, in golden-angle steps.
        phi = k * math.pi * (3 - math.sqrt(5)) + rng.uniform(-0.3, 0.3)
        local = np.array([math.cos(phi), math.sin(phi), rng.uniform(-0.6, 0.6)])
        axis = start_rot @ (local / np.linalg.norm(local))
        angle = math.radians(max_tilt_deg) * rng.uniform(0.55, 1.0)
        shift = rng.uniform(-1.0, 1.0, 3) * max_shift_m
        for _ in range(4):
            rot = rotation_exp(axis * angle)
            position = pivot + rot @ (start.xyz - pivot) + shift
            if np.all(position >= lower) and np.all(position <= upper):
                poses.append(pose_from_matrix(rot @ start_rot, position))
                break
            angle, shift = angle / 2, shift / 2
    return poses


@dataclass(frozen=True)
class Capture:
    tcp_pose: Pose  # measured when the image was taken
    detection: BoardDetection  # found: the board in the camera


@dataclass(frozen=True)
class CaptureOutcome:
    ok: bool
    reason: str  # "" when ok
    corners: int  # board corners seen
    detection: BoardDetection | None = None  # for drawing on the image (charuco.draw_detection)
    image: np.ndarray | None = field(default=None, repr=False)  # the RGB frame searched


class CalibrationProcedure:
    """The calibration of `view.camera` on `cell`, one step at a time or all at once (`run`)."""

    def __init__(self, cell: Workcell, view: CalibrationView, n_poses: int = DEFAULT_POSES, seed: int = 0,
                 should_abort: Callable[[], bool] | None = None, before_tick: Callable[[], object] | None = None,
                 on_tick: Callable[[object], None] | None = None):
        if view.camera not in cell.cameras:
            raise CalibrationError(f"the {cell.kind} workcell has no {view.camera!r} camera; cameras: "
                                   f"{', '.join(cell.cameras) or 'none'}")
        if n_poses < 3:
            raise ValueError(f"hand-eye calibration needs at least 3 poses, got {n_poses}")
        self.cell = cell
        self.view = view
        self.n_poses = n_poses
        self.seed = seed
        self.should_abort = should_abort
        self.before_tick, self.on_tick = before_tick, on_tick  # a session's pacing and publishing, per tick
        self.poses: list[Pose] = []
        self.captures: list[Capture] = []

    def plan(self) -> list[Pose]:
        """Plan the poses from the view's start (or where the arm is now)."""
        start = self.view.start or self.cell.arm.state().ee_pose
        pivot = start.compose(Pose(tuple(self.view.pivot_in_tcp))).xyz
        self.poses = plan_poses(start, pivot, self.n_poses, self.cell.arm.limits, self.seed, self.view.max_tilt_deg,
                                self.view.max_shift_m)
        return self.poses

    def go_to(self, index: int) -> Pose:
        """Drive the arm to planned pose `index` and wait until it stands still; the measured TCP pose.
        CalibrationError when it does not get there (e.g. the safety layer held it back)."""
        from recorders.skills import Motion

        if not self.poses:
            self.plan()
        goal = self.poses[index]
        motion = Motion(self.cell, on_tick=self.on_tick, should_abort=self.should_abort, before_tick=self.before_tick)
        start = motion.target
        turn = quat_angle(np.asarray(start.quat), np.asarray(goal.quat))
        dist = float(np.linalg.norm(goal.xyz - start.xyz))
        ticks = max(1, math.ceil(max(dist / MOVE_SPEED, turn / TURN_SPEED) / motion.dt))
        for i in range(1, ticks + 1):
            s = i / ticks
            q = quat_slerp(np.asarray(start.quat, float), np.asarray(goal.quat, float), s)
            motion.target = Pose(tuple(start.xyz + s * (goal.xyz - start.xyz)), tuple(float(v) for v in q))
            motion.step()
        # Still is judged on the TCP, not the joints: franky-sim's joint 7 chatters at its torque limit.
        previous = self.cell.arm.state().ee_pose
        for _ in range(MAX_SETTLE_TICKS):
            motion.step()
            here = self.cell.arm.state().ee_pose
            still = (np.linalg.norm(here.xyz - previous.xyz) < STILL_M
                     and quat_angle(np.asarray(here.quat), np.asarray(previous.quat)) < STILL_RAD)
            previous = here
            if still and np.linalg.norm(here.xyz - goal.xyz) < REACHED_M \
                    and quat_angle(np.asarray(here.quat), np.asarray(goal.quat)) < REACHED_RAD:
                return here
        here = self.cell.arm.state().ee_pose
        raise CalibrationError(f"the arm did not settle at pose {index + 1} (off by "
                               f"{1000 * np.linalg.norm(here.xyz - goal.xyz):.0f} mm); check the workspace box")

    def preview(self) -> CaptureOutcome:
        """Look for the board now without keeping anything (the GUI's live view while the operator
        places the arm); `charuco.draw_detection(outcome.image, outcome.detection, ...)` shows it."""
        return self._look()[0]

    def capture(self) -> CaptureOutcome:
        """Look for the board now; keep the pair (TCP pose, board pose) when it is found."""
        outcome, tcp = self._look()
        if outcome.ok:
            self.captures.append(Capture(tcp, outcome.detection))
        return outcome

    def discard_last(self) -> None:
        """Drop the latest capture (the operator saw something wrong in it)."""
        if self.captures:
            self.captures.pop()

    def _look(self) -> tuple[CaptureOutcome, Pose]:
        tcp = self.cell.arm.state().ee_pose  # the arm stands still (go_to), so this is where the image was taken
        rgb, _ = self.cell.render(self.view.camera)
        detection = detect_board(rgb, self.cell.camera_intrinsics(self.view.camera), self.view.board)
        return CaptureOutcome(detection.found, detection.reason, len(detection.corner_ids), detection, rgb), tcp

    def solve(self) -> CameraCalibration:
        """The camera's mount from the captures so far; CalibrationError when they cannot determine it."""
        intrinsics = _plain_intrinsics(self.cell.camera_intrinsics(self.view.camera))
        solver = solve_eye_in_hand if self.view.mount_frame == "hand" else solve_eye_to_hand
        observations = [CornerObservation(c.detection.object_points, c.detection.image_points) for c in self.captures]
        try:
            result = solver([c.tcp_pose for c in self.captures], [c.detection.pose for c in self.captures],
                            observations, intrinsics)
        except HandEyeError as e:
            raise CalibrationError(f"{self.view.camera} camera: {e}") from None
        return CameraCalibration(CameraMount(self.view.mount_frame, result.camera), result.residual_mm,
                                 result.residual_deg, result.reprojection_px, result.captures, now_iso(),
                                 self.view.board, intrinsics)

    def run(self, progress: Progress | None = None) -> CameraCalibration:
        """Plan, visit and capture every pose, return to the start, solve."""
        poses = self.plan()
        total = len(poses)
        for i in range(total):
            self.go_to(i)
            outcome = self.capture()
            if progress is not None:
                progress(i + 1, total, f"{self.view.camera} pose {i + 1}/{total}: " +
                         (f"{outcome.corners} corners" if outcome.ok else f"skipped, {outcome.reason}"))
        self.go_to(0)
        return self.solve()


def _plain_intrinsics(intrinsics: dict) -> dict:
    """The intrinsics as plain JSON numbers (stored with the calibration), distortion kept when given."""
    plain = {k: float(intrinsics[k]) for k in ("fx", "fy", "cx", "cy")}
    plain.update(width=int(intrinsics["width"]), height=int(intrinsics["height"]))
    if intrinsics.get("distortion") is not None:
        plain["distortion"] = [float(v) for v in intrinsics["distortion"]]
    return plain


def true_mount(cell: Workcell, camera: str) -> CameraMount | None:
    """The simulator's own mount of `camera` (None on a real workcell, which has no truth to compare with)."""
    from recorders.cell.registry import workcell_kind

    return cell.camera_mount(camera) if workcell_kind(cell.kind).simulated else None


@lru_cache(maxsize=1)
def _simulated_mounts() -> tuple:
    from recorders.cell.registry import open_workcell

    with open_workcell("sim", calibration_scene()) as cell:  # franky-sim serves the same scene
        return tuple((cam, CalibrationProcedure(cell, view).run().mount) for cam, view in sim_views().items())


def simulated_camera_mounts() -> dict[str, CameraMount]:
    """The simulated workcell's camera mounts as this calibration finds them (about 5 s, once per
    process): what perceived objects in the simulator place the cameras by when no calibration is saved,
    so that no camera pose comes from the simulator's truth."""
    return dict(_simulated_mounts())
