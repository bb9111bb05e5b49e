"""Where a camera is and where a point of the scene lands on its image: camera mounts, the camera pose
at a frame, and pinhole projection. Plain numpy; no simulator, no Qt.

Conventions (shared by every workcell, the episode files and the Run workspace's markers):
- A camera pose is its optical frame, OpenCV style: origin at the projection centre, x right, y down
  and z forward (the viewing direction), as a `Pose` (position in m, unit quaternion w, x, y, z) in
  the robot base frame.
- Intrinsics are the dict a workcell gives and each camera stream stores: fx, fy, cx, cy in pixels
  with pixel centres at integer coordinates ((0, 0) is the centre of the top-left pixel; u grows to
  the right, v downwards), and width, height.
- A mount says how a camera is held. "base": fixed in the base frame, `pose` is the camera pose.
  "hand": fixed on the hand, `pose` is the camera relative to the TCP, whose pose is the arm's
  `ee_pose`; the camera pose at a frame is then ee_pose * pose.

    workcell.camera_mount(cam) -> stream meta["mount"] (recorders/observation.py) -> episode file
    CameraMount.from_meta(meta) + the frame's ee_pose -> camera_pose_at() -> project(points) -> markers
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recorders.pose import Pose

MOUNT_KEY = "mount"  # the camera stream meta key holding CameraMount.to_dict()
MOUNT_FRAMES = ("base", "hand")


@dataclass(frozen=True)
class CameraMount:
    """How a camera is held: fixed in the base frame, or fixed on the hand relative to the TCP."""

    frame: str  # one of MOUNT_FRAMES
    pose: Pose  # "base": the camera pose in the base frame; "hand": the camera pose relative to the TCP

    def __post_init__(self):
        if self.frame not in MOUNT_FRAMES:
            raise ValueError(f"a camera mount frame is one of {', '.join(MOUNT_FRAMES)}, got {self.frame!r}")

    def to_dict(self) -> dict:
        """Plain JSON data: {"frame": ..., "pose": [x, y, z, qw, qx, qy, qz]}."""
        return {"frame": self.frame, "pose": [float(v) for v in self.pose.to_array()]}

    @staticmethod
    def from_dict(d: dict) -> "CameraMount":
        return CameraMount(d["frame"], Pose.from_array(d["pose"]))

    @staticmethod
    def from_meta(stream_meta: dict) -> "CameraMount | None":
        """The mount a camera stream's meta stores; None for files recorded before mounts were stored."""
        d = stream_meta.get(MOUNT_KEY)
        return None if d is None else CameraMount.from_dict(d)


def camera_pose_at(mount: CameraMount, ee_pose: Pose) -> Pose:
    """The camera pose in the base frame at a frame whose end-effector (TCP) pose is `ee_pose`."""
    return mount.pose if mount.frame == "base" else ee_pose.compose(mount.pose)


def project(points_base: np.ndarray, camera_pose: Pose, intrinsics: dict) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of base-frame points on a camera's image.

    Returns (N, 2) u, v (NaN for points at or behind the camera's plane) and an (N,) mask of points
    in front of the camera that land inside the image (within half a pixel of the border pixels' centres).
    """
    pts = np.asarray(points_base, dtype=float).reshape(-1, 3)  # (N, 3)
    rot = camera_pose.rotation_matrix()  # (3, 3) camera axes in the base frame
    cam = (pts - camera_pose.xyz) @ rot  # (N, 3) in the optical frame: rot.T @ (p - t) per row
    z = cam[:, 2]  # (N,)
    in_front = z > 0
    safe_z = np.where(in_front, z, 1.0)
    uv = np.stack([intrinsics["fx"] * cam[:, 0] / safe_z + intrinsics["cx"],
                   intrinsics["fy"] * cam[:, 1] / safe_z + intrinsics["cy"]], axis=1)  # (N, 2)
    uv[~in_front] = np.nan
    inside = ((uv[:, 0] >= -0.5) & (uv[:, 0] < intrinsics["width"] - 0.5)
              & (uv[:, 1] >= -0.5) & (uv[:, 1] < intrinsics["height"] - 0.5))  # NaN rows compare False
    return uv, in_front & inside
