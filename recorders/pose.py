"""Poses of the end effector and of objects: position (m) + unit quaternion (w, x, y, z).

One small value type shared by arms, skills, memory and episode files, with the few rotation
helpers the workcell needs (top-down grasps rotate about the vertical axis only) and the rigid-body
algebra that places cameras (`compose`, `inverse`, `rotation_matrix`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The end effector points down (tool z axis along world -z): a rotation of pi about world x.
_DOWN = np.array([0.0, 1.0, 0.0, 0.0])


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (w, x, y, z) quaternions."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ])


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """The inverse rotation of a unit (w, x, y, z) quaternion."""
    w, x, y, z = q
    return np.array([w, -x, -y, -z])


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix of a (w, x, y, z) quaternion (normalised first); columns are the rotated axes."""
    w, x, y, z = np.asarray(q, dtype=float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def quat_from_yaw(yaw: float) -> np.ndarray:
    """Rotation by yaw (rad) about world z."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def quat_yaw(q: np.ndarray) -> float:
    """Yaw (rad) of the quaternion's x axis projected onto the world xy plane."""
    w, x, y, z = q
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def quat_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (rad) of the rotation that takes a to b."""
    d = abs(float(np.dot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(2 * np.arccos(min(1.0, d)))


def quat_slerp(a: np.ndarray, b: np.ndarray, s: float) -> np.ndarray:
    """Spherical interpolation from a (s=0) to b (s=1) along the shorter arc."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    d = float(np.dot(a, b))
    if d < 0:
        b, d = -b, -d
    if d > 0.9995:
        q = a + s * (b - a)
        return q / np.linalg.norm(q)
    theta = np.arccos(d)
    return (np.sin((1 - s) * theta) * a + np.sin(s * theta) * b) / np.sin(theta)


@dataclass(frozen=True)
class Pose:
    """A rigid pose in the robot base frame."""

    position: tuple[float, float, float]
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)

    @staticmethod
    def top_down(position, yaw: float = 0.0) -> "Pose":
        """A gripper pose pointing down, rotated by yaw about the vertical."""
        q = quat_multiply(quat_from_yaw(yaw), _DOWN)
        return Pose(tuple(float(v) for v in position), tuple(float(v) for v in q))

    @staticmethod
    def from_array(a) -> "Pose":
        a = np.asarray(a, dtype=float)
        return Pose(tuple(a[:3]), tuple(a[3:7]))

    def to_array(self) -> np.ndarray:
        """(7,) position then quaternion (w, x, y, z)."""
        return np.array([*self.position, *self.quat], dtype=float)

    @property
    def xyz(self) -> np.ndarray:
        return np.asarray(self.position, dtype=float)

    def moved(self, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> "Pose":
        p = self.xyz + (dx, dy, dz)
        return Pose(tuple(float(v) for v in p), self.quat)

    def with_position(self, position) -> "Pose":
        return Pose(tuple(float(v) for v in position), self.quat)

    def rotation_matrix(self) -> np.ndarray:
        """(3, 3) rotation of this frame's axes into the parent frame."""
        return quat_to_matrix(np.asarray(self.quat, dtype=float))

    def compose(self, local: "Pose") -> "Pose":
        """`local` (a pose relative to this frame) expressed in this pose's parent frame: self * local."""
        p = self.xyz + self.rotation_matrix() @ local.xyz
        q = quat_multiply(np.asarray(self.quat, dtype=float), np.asarray(local.quat, dtype=float))
        return Pose(tuple(float(v) for v in p), tuple(float(v) for v in q / np.linalg.norm(q)))

    def inverse(self) -> "Pose":
        """The parent frame relative to this one: self.compose(self.inverse()) is the identity."""
        q = quat_conjugate(np.asarray(self.quat, dtype=float) / np.linalg.norm(self.quat))
        p = -(quat_to_matrix(q) @ self.xyz)
        return Pose(tuple(float(v) for v in p), tuple(float(v) for v in q))
