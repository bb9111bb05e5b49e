"""Hand-eye calibration: the ChArUco board (image, files, detection), the hand-eye solvers on synthetic
poses, the calibration file, the boards in the simulated scene, the guided procedure in the simulator
against its true camera poses, `calibrate --json`, and the procedure on franky-sim."""
from __future__ import annotations

import json
import math
import struct
import zlib

import numpy as np
import pytest

from app.calibrate_command import parse_calibrate_args, run_calibrate
from app.errors import UserError
from recorders.cell.camera_geometry import CameraMount
from recorders.cell.scene import CameraSettings, SceneSpec
from recorders.perception.calibration import (CALIBRATION_FILE, Calibration, CalibrationFileError,
                                              CameraCalibration, WorkspaceBox, load_calibration, mount_error,
                                              pose_error, save_calibration)
from recorders.perception.calibration_procedure import (CalibrationProcedure, calibration_scene, plan_poses,
                                                        sim_views, true_mount)
from recorders.perception.charuco import (HAND_BOARD, TABLE_BOARD, CharucoBoardSpec, board_image, detect_board,
                                          save_board_image)
from recorders.perception.hand_eye import (CornerObservation, HandEyeError, pose_from_matrix, pose_matrix,
                                           rotation_exp, solve_eye_in_hand, solve_eye_to_hand)
from recorders.pose import Pose
from recorders.safety import SafetyLimits

GOAL_MM, GOAL_DEG = 5.0, 0.5  # the calibration's goal against the simulator's truth
INTRINSICS = {"fx": 600.0, "fy": 600.0, "cx": 319.5, "cy": 239.5, "width": 640, "height": 480}


def random_pose(rng, max_angle: float, scale: float, centre=(0.0, 0.0, 0.0)) -> Pose:
    axis = rng.normal(size=3)
    rot = rotation_exp(axis / np.linalg.norm(axis) * rng.uniform(0.0, max_angle))
    return pose_from_matrix(rot, np.asarray(centre) + rng.normal(size=3) * scale)


def synthetic_view(board: CharucoBoardSpec, board_in_camera: Pose, intrinsics=INTRINSICS) -> np.ndarray:
    """The board seen by a pinhole camera: its image warped by the homography of the pose."""
    import cv2

    pps = 100
    image = board_image(board, pps)
    margin = round(board.margin_squares * pps)
    s = board.square_m / pps
    to_metres = np.array([[s, 0, s * (0.5 - margin)], [0, s, s * (0.5 - margin)], [0, 0, 1.0]])  # pixel -> board
    k = np.array([[intrinsics["fx"], 0, intrinsics["cx"]], [0, intrinsics["fy"], intrinsics["cy"]], [0, 0, 1.0]])
    rt = pose_matrix(board_in_camera)
    homography = k @ np.column_stack([rt[:3, 0], rt[:3, 1], rt[:3, 3]]) @ to_metres
    gray = cv2.warpPerspective(image, homography, (intrinsics["width"], intrinsics["height"]),
                               flags=cv2.INTER_AREA, borderValue=110)
    return np.repeat(gray[:, :, None], 3, axis=2)


# ---- board -------------------------------------------------------------------------------------------
def test_board_spec_validates_and_round_trips():
    assert TABLE_BOARD.n_markers == 17 and HAND_BOARD.marker_ids[0] == 17  # the two boards never share a marker
    assert CharucoBoardSpec.from_dict(HAND_BOARD.to_dict()) == HAND_BOARD
    with pytest.raises(ValueError, match="marker size"):
        CharucoBoardSpec(5, 4, 0.03, 0.03)
    with pytest.raises(ValueError, match="unknown marker dictionary"):
        CharucoBoardSpec(dictionary="DICT_9X9_50")
    with pytest.raises(ValueError, match="do not fit"):
        CharucoBoardSpec(11, 10, dictionary="DICT_4X4_50")
    image = board_image(TABLE_BOARD, 40)
    assert image.shape == (6 * 40, 8 * 40) and image.dtype == np.uint8  # 5x7 squares + half a square each side


def test_board_files_print_at_their_true_size(tmp_path):
    png = save_board_image(tmp_path / "table.png", TABLE_BOARD, dpi=300).read_bytes()
    assert png.startswith(b"\x89PNG")
    width, height = struct.unpack(">II", png[16:24])
    at = png.index(b"pHYs")
    ppm = struct.unpack(">I", png[at + 4:at + 8])[0]
    assert width / ppm == pytest.approx(TABLE_BOARD.outer_size_m[0], rel=0.01)
    assert height / ppm == pytest.approx(TABLE_BOARD.outer_size_m[1], rel=0.01)
    assert zlib.crc32(png[at:at + 13]) == struct.unpack(">I", png[at + 13:at + 17])[0]
    pdf = save_board_image(tmp_path / "hand.pdf", HAND_BOARD, dpi=200).read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    box = [float(v) for v in pdf.split(b"/MediaBox [")[1].split(b"]")[0].split()]
    assert box[2] / 72 * 0.0254 == pytest.approx(HAND_BOARD.outer_size_m[0], rel=0.01)
    with pytest.raises(ValueError, match=".png or .pdf"):
        save_board_image(tmp_path / "board.jpg", HAND_BOARD)


def board_facing(rotation_vector, distance: float, board: CharucoBoardSpec = TABLE_BOARD, offset=(0.0, 0.0)) -> Pose:
    """The board turned by `rotation_vector`, its centre `distance` ahead of the camera (and shifted by `offset`)."""
    rot = rotation_exp(np.asarray(rotation_vector, dtype=float))
    return pose_from_matrix(rot, np.array([*offset, distance]) - rot @ board.centre)


def test_detection_recovers_the_pose_of_a_synthetic_view():
    truth = board_facing([0.35, -0.25, 0.4], 0.45)
    found = detect_board(synthetic_view(TABLE_BOARD, truth), INTRINSICS, TABLE_BOARD)
    assert found.found, found.reason
    assert len(found.corner_ids) == 24 and found.reprojection_px < 0.5
    mm, deg = pose_error(found.pose, truth)
    assert mm < 1.0 and deg < 0.3
    other = detect_board(synthetic_view(TABLE_BOARD, truth), INTRINSICS, HAND_BOARD)  # other marker ids
    assert not other.found and other.reason == "no marker of the board is visible"


def test_detection_says_why_it_found_nothing():
    blank = np.full((480, 640, 3), 128, np.uint8)
    assert detect_board(blank, INTRINSICS, TABLE_BOARD).reason == "no marker of the board is visible"
    mostly_outside = synthetic_view(TABLE_BOARD, board_facing([0.0, 0.0, 0.0], 0.45, offset=(0.36, 0.0)))
    seen = detect_board(mostly_outside, INTRINSICS, TABLE_BOARD)
    assert not seen.found and seen.reason and seen.pose is None


# ---- hand-eye solvers ----------------------------------------------------------------------------------
def synthetic_captures(rng, eye_in_hand: bool, n: int = 12, noise_m: float = 0.0, noise_rad: float = 0.0):
    """Arm poses and the board poses a camera would see, with their truth (camera, board)."""
    if eye_in_hand:
        camera, board = random_pose(rng, 0.3, 0.05), random_pose(rng, 0.3, 0.02, (0.5, 0.0, 0.0))
    else:
        camera, board = random_pose(rng, 0.3, 0.05, (1.2, 0.0, 0.6)), random_pose(rng, 0.3, 0.03)
    tcps, seen = [], []
    for _ in range(n):
        tcp = random_pose(rng, 0.5, 0.08, (0.5, 0.0, 0.3))
        a = pose_matrix(tcp) if eye_in_hand else np.linalg.inv(pose_matrix(tcp))
        b = np.linalg.inv(pose_matrix(camera)) @ np.linalg.inv(a) @ pose_matrix(board)  # A X B = Y
        noisy = rotation_exp(rng.normal(size=3) * noise_rad) @ b[:3, :3]
        tcps.append(tcp)
        seen.append(pose_from_matrix(noisy, b[:3, 3] + rng.normal(size=3) * noise_m))
    return tcps, seen, camera, board


@pytest.mark.parametrize("eye_in_hand", [True, False])
def test_solvers_recover_exact_poses(eye_in_hand):
    tcps, seen, camera, board = synthetic_captures(np.random.default_rng(1), eye_in_hand)
    solve = solve_eye_in_hand if eye_in_hand else solve_eye_to_hand
    result = solve(tcps, seen)
    assert pose_error(result.camera, camera)[0] < 1e-3 and pose_error(result.camera, camera)[1] < 1e-4
    assert pose_error(result.board, board)[0] < 1e-3
    assert result.residual_mm < 1e-3 and result.captures == 12 and math.isnan(result.reprojection_px)


@pytest.mark.parametrize("eye_in_hand", [True, False])
def test_solvers_average_out_noise(eye_in_hand):
    tcps, seen, camera, _ = synthetic_captures(np.random.default_rng(2), eye_in_hand, n=20, noise_m=0.001,
                                               noise_rad=math.radians(0.1))
    result = (solve_eye_in_hand if eye_in_hand else solve_eye_to_hand)(tcps, seen)
    mm, deg = pose_error(result.camera, camera)
    assert mm < 3.0 and deg < 0.15
    assert 0.3 < result.residual_mm < 5.0  # the noise shows as the captures' disagreement


def test_reprojection_refinement_uses_the_corners():
    rng = np.random.default_rng(3)
    tcps, seen, camera, board = synthetic_captures(rng, True, n=10)
    points = TABLE_BOARD.corner_points()
    observations = []
    for pose in seen:
        cam = points @ pose.rotation_matrix().T + pose.xyz
        uv = cam[:, :2] / cam[:, 2:] * 600.0 + (319.5, 239.5) + rng.normal(size=(len(points), 2)) * 0.2
        observations.append(CornerObservation(points, uv))
    noisy = [Pose(tuple(p.xyz + rng.normal(size=3) * 0.003), p.quat) for p in seen]  # poorer PnP poses
    result = solve_eye_in_hand(tcps, noisy, observations, INTRINSICS)
    mm, deg = pose_error(result.camera, camera)
    assert mm < 1.0 and deg < 0.1
    assert 0.1 < result.reprojection_px < 0.5


def test_solvers_refuse_captures_that_cannot_determine_the_camera():
    tcps, seen, _, _ = synthetic_captures(np.random.default_rng(4), True, n=3)
    with pytest.raises(HandEyeError, match="at least 3"):
        solve_eye_in_hand(tcps[:2], seen[:2])
    with pytest.raises(HandEyeError, match="in pairs"):
        solve_eye_in_hand(tcps, seen[:2])
    one_axis = [Pose.top_down((0.5, 0.0, 0.3), yaw) for yaw in (0.0, 0.3, 0.6, 0.9)]
    with pytest.raises(HandEyeError, match="one axis"):
        solve_eye_in_hand(one_axis, [Pose((0.0, 0.0, 0.3))] * 4)
    still = [Pose.top_down((0.5, 0.0, 0.3 + 0.01 * i)) for i in range(4)]
    with pytest.raises(HandEyeError, match="tilt it more"):
        solve_eye_in_hand(still, [Pose((0.0, 0.0, 0.3))] * 4)


# ---- calibration file ----------------------------------------------------------------------------------
def sample_calibration() -> Calibration:
    wrist = CameraCalibration(CameraMount("hand", Pose((0.065, 0.0, -0.058), (0.7, -0.1, -0.1, 0.7))), 0.2, 0.1,
                              0.08, 12, "2026-01-02T03:04:05+00:00", TABLE_BOARD, dict(INTRINSICS))
    front = CameraCalibration(CameraMount("base", Pose((1.25, 0.0, 0.62), (0.3, -0.6, -0.6, 0.3))), 0.4, 0.3,
                              float("nan"), 9, "2026-01-03T00:00:00+00:00")
    return Calibration("franky", {"wrist": wrist}, WorkspaceBox((0.3, -0.3, 0.01), (0.7, 0.3, 0.5))) \
        .with_camera("front", front)


def test_calibration_round_trips_through_its_file(tmp_path):
    assert load_calibration(tmp_path) is None
    cal = sample_calibration()
    path = save_calibration(tmp_path / "workcells" / "franky", cal)
    assert path.name == CALIBRATION_FILE and [p.name for p in path.parent.iterdir()] == [CALIBRATION_FILE]
    loaded = load_calibration(path.parent)
    assert loaded.robot == "franky" and set(loaded.cameras) == {"wrist", "front"}
    assert loaded.cameras["wrist"] == cal.cameras["wrist"]
    assert math.isnan(loaded.cameras["front"].reprojection_px) and loaded.cameras["front"].board is None
    assert loaded.mounts() == cal.mounts() and loaded.made_at == "2026-01-03T00:00:00+00:00"
    limits = loaded.workspace.limits(SafetyLimits(max_speed=0.2))
    assert limits.workspace_min == (0.3, -0.3, 0.01) and limits.max_speed == 0.2
    assert json.loads(path.read_text())["format_version"] == 1


@pytest.mark.parametrize("text, message", [
    ("{not json", "is damaged"),
    ('["a list"]', "is damaged"),
    ('{"format_version": 1, "robot": "sim"}', "missing field 'cameras'"),
    ('{"format_version": 1, "robot": "sim", "cameras": {"front": {"mount": {"frame": "elbow"}}}}', "is damaged"),
    ('{"format_version": 7, "robot": "sim", "cameras": {}}', "newer than this Code2Act"),
])
def test_a_damaged_calibration_file_is_one_clear_error(tmp_path, text, message):
    (tmp_path / CALIBRATION_FILE).write_text(text)
    with pytest.raises(CalibrationFileError, match=message) as info:
        load_calibration(tmp_path)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    assert str(tmp_path / CALIBRATION_FILE) in str(info.value)


# ---- the boards in the simulated scene -----------------------------------------------------------------
def test_scenes_without_boards_read_and_write_as_before():
    spec = SceneSpec((), (), CameraSettings(), 3)
    assert "boards" not in json.loads(spec.to_json())
    old = '{"cubes": [], "zones": [], "cameras": {"width": 128, "height": 128, "depth": false}, "seed": 3}'
    assert SceneSpec.from_json(old) == spec
    boards = calibration_scene()
    assert SceneSpec.from_json(boards.to_json()) == boards and boards.boards == ("table", "hand")
    with pytest.raises(ValueError, match="calibration boards"):
        SceneSpec((), (), boards=("ceiling",))


def test_plan_keeps_every_pose_in_the_workspace_box():
    limits = SafetyLimits(workspace_min=(0.3, -0.2, 0.005), workspace_max=(0.6, 0.2, 0.5))
    start = Pose.top_down((0.45, 0.0, 0.3))
    poses = plan_poses(start, start.xyz - (0, 0, 0.3), 15, limits, seed=5, max_tilt_deg=25.0)
    assert poses[0] == start and len(poses) >= 12
    for p in poses:
        assert limits.contains(p.xyz, tol=-0.02) and p.xyz[2] >= 0.08
    tilts = [math.degrees(2 * math.acos(min(1.0, abs(np.dot(p.quat, start.quat))))) for p in poses[1:]]
    assert max(tilts) > 10.0


@pytest.fixture(scope="module")
def sim_cell():
    from recorders.cell.registry import open_workcell

    cell = open_workcell("sim", calibration_scene(), 10.0)
    yield cell
    cell.close()


def test_the_rendered_boards_lie_where_the_scene_puts_them(sim_cell):
    from recorders.sim.scene import board_pose, board_spec, wrist_camera_in_tcp

    assert mount_error(CameraMount("hand", wrist_camera_in_tcp()), sim_cell.camera_mount("wrist"))[0] < 1e-3

    views = sim_views()
    procedure = CalibrationProcedure(sim_cell, views["wrist"], 3)
    procedure.plan()
    procedure.go_to(0)
    seen = procedure.preview()
    assert seen.ok and seen.image.shape == (480, 640, 3) and not procedure.captures
    mm, deg = pose_error(sim_cell.camera_pose("wrist").compose(seen.detection.pose), board_pose("table"))
    assert mm < 1.0 and deg < 0.3
    hand = detect_board(sim_cell.render("wrist")[0], sim_cell.camera_intrinsics("wrist"), board_spec("hand"))
    assert not hand.found  # the hand's board stays out of the wrist camera's view


@pytest.mark.parametrize("camera", ["wrist", "front"])
def test_the_procedure_finds_the_true_camera_pose_in_the_simulator(sim_cell, camera):
    view = sim_views()[camera]
    procedure = CalibrationProcedure(sim_cell, view, 10, seed=2)
    lines = []
    result = procedure.run(lambda done, total, message: lines.append((done, total, message)))
    assert [d for d, _, _ in lines] == list(range(1, len(procedure.poses) + 1))
    assert result.captures >= 8 and result.mount.frame == view.mount_frame
    mm, deg = mount_error(result.mount, true_mount(sim_cell, camera))
    assert mm <= GOAL_MM and deg <= GOAL_DEG, (mm, deg)
    assert result.residual_mm < 2.0 and result.reprojection_px < 0.5


@pytest.mark.slow
def test_calibrate_json_reports_the_error_against_the_simulator(tmp_path, capsys):
    args = parse_calibrate_args(["--robot", "sim", "--poses", "8", "--seed", "1", "--json", "--out", str(tmp_path)])
    assert run_calibrate(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["cameras"]) == {"front", "wrist"}
    for camera, r in out["cameras"].items():
        assert r["captures"] >= 6 and r["mount"]["frame"] == {"front": "base", "wrist": "hand"}[camera]
        assert r["error"]["translation_mm"] <= GOAL_MM and r["error"]["rotation_deg"] <= GOAL_DEG
    saved = load_calibration(tmp_path)
    assert saved.robot == "sim" and set(saved.mounts()) == {"front", "wrist"}
    assert saved.workspace == WorkspaceBox.from_limits(SafetyLimits())
    from app.calibrate_command import _print_summary

    _print_summary(out["cameras"], None, 1.0)  # what the command prints without --json
    summary = capsys.readouterr().out
    assert "wrist: camera relative to the TCP at (0.06" in summary and "error against the simulator" in summary


def test_calibrate_refuses_bad_input_in_one_line(tmp_path):
    with pytest.raises(UserError, match="needs --robot-ip"):
        run_calibrate(parse_calibrate_args(["--robot", "franky"]))
    with pytest.raises(UserError, match="one camera per run"):
        run_calibrate(parse_calibrate_args(["--robot", "franky", "--robot-ip", "172.16.0.2"]))
    with pytest.raises(UserError, match="at least 3"):
        parse_calibrate_args(["--poses", "2"])
    (tmp_path / CALIBRATION_FILE).write_text("{damaged")
    with pytest.raises(UserError, match="is damaged") as info:
        run_calibrate(parse_calibrate_args(["--robot", "sim", "--out", str(tmp_path)]))
    assert "\n" not in str(info.value)
    save_calibration(tmp_path, sample_calibration())  # a franky calibration
    with pytest.raises(UserError, match="franky workcell"):
        run_calibrate(parse_calibrate_args(["--robot", "sim", "--out", str(tmp_path)]))


# ---- franky-sim ----------------------------------------------------------------------------------------
FRANKY_SIM_HOST = "127.0.0.23"  # its own loopback address: other franky-sim tests serve on 127.0.0.1
MIN_REALTIME_FACTOR_CALIBRATION = 0.7  # below it franky's streamed waypoints may exceed its limits


@pytest.mark.slow
def test_the_procedure_calibrates_both_cameras_on_franky_sim():
    from franky_sim_support import loop_rate, skip_if_below_real_time
    from recorders.arms.base import ArmError
    from recorders.cell.franky_sim_workcell import FrankySimWorkcell
    from recorders.sim.franky_sim_server import FrankySimUnavailable

    try:
        cell = FrankySimWorkcell(calibration_scene(), control_hz=10.0, host=FRANKY_SIM_HOST)
    except FrankySimUnavailable as e:
        pytest.skip(f"franky-sim cannot start here: {e}")
    try:
        before = cell.server.stats()
        for _ in range(5):
            cell.arm.wait_tick()
        skip_if_below_real_time(loop_rate(before, cell.server.stats()), MIN_REALTIME_FACTOR_CALIBRATION,
                                "franky-sim calibration")
        for camera, view in sim_views().items():
            before = cell.server.stats()
            try:
                result = CalibrationProcedure(cell, view, 5, seed=0).run()
            except ArmError:
                skip_if_below_real_time(loop_rate(before, cell.server.stats()), MIN_REALTIME_FACTOR_CALIBRATION,
                                        "franky-sim calibration")
                raise
            mm, deg = mount_error(result.mount, true_mount(cell, camera))
            assert result.captures == 5 and mm <= GOAL_MM and deg <= GOAL_DEG, (camera, mm, deg)
    finally:
        cell.close()
    assert not cell.server.alive
