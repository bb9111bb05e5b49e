"""Camera geometry without a simulator: pinhole projection, camera mounts, poses at a frame, rigid poses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recorders.cell.camera_geometry import MOUNT_KEY, CameraMount, camera_pose_at, project
from recorders.pose import Pose, quat_angle, quat_from_yaw, quat_multiply

INTRINSICS = {"fx": 100.0, "fy": 120.0, "cx": 63.5, "cy": 47.5, "width": 128, "height": 96}
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Looking along base +x, upright: optical x = base -y, optical y = base -z, optical z = base +x.
LOOKING_ALONG_X = Pose((0.0, 0.0, 0.5), (0.5, -0.5, 0.5, -0.5))


def test_a_point_straight_ahead_lands_on_the_principal_point():
    uv, visible = project(np.array([[0.0, 0.0, 2.0]]), Pose((0.0, 0.0, 0.0)), INTRINSICS)
    assert uv.shape == (1, 2) and visible.shape == (1,)
    np.testing.assert_allclose(uv[0], (63.5, 47.5))
    assert visible[0]


def test_offsets_scale_with_focal_length_over_depth():
    uv, visible = project(np.array([[0.1, -0.05, 1.0], [0.2, 0.1, 2.0]]), Pose((0.0, 0.0, 0.0)), INTRINSICS)
    np.testing.assert_allclose(uv, [[73.5, 41.5], [73.5, 53.5]])
    assert visible.all()


def test_points_behind_the_camera_or_off_the_image_are_not_visible():
    pts = np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, -0.5, 1.0], [0.0, 0.0, 1.0]])
    uv, visible = project(pts, Pose((0.0, 0.0, 0.0)), INTRINSICS)
    assert visible.tolist() == [False, False, False, False, True]
    assert np.isnan(uv[:2]).all()  # behind: no pixel at all
    assert uv[2, 0] > INTRINSICS["width"] and uv[3, 1] < 0  # in front, but off the image


def test_projection_uses_the_camera_pose():
    cam = LOOKING_ALONG_X
    np.testing.assert_allclose(cam.rotation_matrix(), [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)
    # 1 m ahead, 0.1 m to the camera's left (base +y) and 0.1 m up: left of and above the centre.
    uv, visible = project(np.array([[1.0, 0.1, 0.6], [-1.0, 0.0, 0.5]]), cam, INTRINSICS)
    np.testing.assert_allclose(uv[0], (53.5, 35.5))
    assert visible.tolist() == [True, False]


def test_pose_compose_and_inverse_are_rigid_transforms():
    a = Pose((0.3, -0.2, 0.5), tuple(quat_multiply(quat_from_yaw(0.7), np.array([0.0, 1.0, 0.0, 0.0]))))
    b = Pose((0.05, 0.01, -0.1), tuple(quat_from_yaw(-0.4)))
    ab = a.compose(b)
    np.testing.assert_allclose(ab.xyz, a.xyz + a.rotation_matrix() @ b.xyz)
    np.testing.assert_allclose(ab.rotation_matrix(), a.rotation_matrix() @ b.rotation_matrix(), atol=1e-12)
    identity = a.compose(a.inverse())
    np.testing.assert_allclose(identity.xyz, 0.0, atol=1e-12)
    assert quat_angle(np.asarray(identity.quat), np.array([1.0, 0, 0, 0])) < 1e-7
    back = a.inverse().compose(ab)
    np.testing.assert_allclose(back.to_array(), b.to_array(), atol=1e-12)


def test_a_base_mount_is_the_camera_pose_and_a_hand_mount_follows_the_tcp():
    front = CameraMount("base", LOOKING_ALONG_X)
    assert camera_pose_at(front, Pose.top_down((0.4, 0.1, 0.2), 0.5)) == LOOKING_ALONG_X
    wrist = CameraMount("hand", Pose((0.06, 0.0, -0.05), tuple(quat_from_yaw(np.pi / 2))))
    ee = Pose.top_down((0.4, 0.1, 0.2))  # tool z along base -z, tool x along base x, tool y along base -y
    cam = camera_pose_at(wrist, ee)
    np.testing.assert_allclose(cam.xyz, (0.46, 0.1, 0.25), atol=1e-12)
    np.testing.assert_allclose(cam.rotation_matrix() @ [0, 0, 1], [0, 0, -1], atol=1e-12)  # looks down
    np.testing.assert_allclose(cam.rotation_matrix() @ [1, 0, 0], [0, -1, 0], atol=1e-12)


def test_mounts_round_trip_through_stream_meta_and_old_files_have_none():
    from recorders.episode_file import open_episode

    mount = CameraMount("hand", Pose((0.065, 0.0, -0.058), (0.7, -0.1, -0.1, 0.7)))
    meta = {"intrinsics": INTRINSICS, MOUNT_KEY: mount.to_dict()}
    assert CameraMount.from_meta(meta) == mount
    assert CameraMount.from_meta({"intrinsics": INTRINSICS}) is None
    for fixture in ("episode_v1.h5", "episode_v1_jsonlines.h5"):
        with open_episode(FIXTURES / fixture) as ep:
            assert CameraMount.from_meta(ep.stream_spec("front_rgb").meta) is None
    with pytest.raises(ValueError, match="one of base, hand, got 'tool'"):
        CameraMount("tool", Pose((0.0, 0.0, 0.0)))
