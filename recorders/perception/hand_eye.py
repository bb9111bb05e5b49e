"""Hand-eye calibration: where a camera is, from arm poses paired with the board poses it saw.

Both set-ups reduce to one equation over the captures i, with X and Y unknown and constant:

    A_i X B_i = Y        B_i: the board in the camera (charuco.detect_board)
    eye-in-hand (camera on the hand, board on the table):
        A_i = TCP in base (the arm's ee_pose),   X = camera relative to the TCP,   Y = board in base
    eye-to-hand (camera fixed, board held by the hand):
        A_i = base in TCP (ee_pose inverted),   X = camera in base,               Y = board relative to the TCP

Solved in closed form first: pairs of captures give A_ij X = X B_ij (A_ij = A_j^-1 A_i, B_ij = B_j B_i^-1),
whose rotation is the Procrustes fit of the pairs' rotation axes (Park & Martin) and whose
translation is linear least squares; Y is then the mean of A_i X B_i. A Levenberg-Marquardt
refinement follows: over the board corners' reprojection when the corner observations are given
(the measurement itself), otherwise over the poses. The residuals say how consistent the captures
are: how far the board pose each capture implies (A_i X B_i) lies from the solved Y, in mm and
degrees, and the corners' reprojection error in pixels. Plain numpy (OpenCV only to undistort the
corners of a camera with lens distortion); `Pose`s in, `Pose`s out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from recorders.pose import Pose

MIN_CAPTURES = 3
MIN_ROTATION_DEG = 2.0  # the captures must turn the hand at least this much between them
_POSE_SIGMA_M = 0.001  # weights of a pose residual (no corner observations): 1 mm ~ 0.11 degrees
_POSE_SIGMA_RAD = 0.002


class HandEyeError(ValueError):
    """The captures cannot determine the camera pose; the message says what to capture instead."""


@dataclass(frozen=True)
class HandEyeResult:
    camera: Pose  # eye-in-hand: camera relative to the TCP; eye-to-hand: camera in the base frame
    board: Pose  # eye-in-hand: board in the base frame; eye-to-hand: board relative to the TCP
    residual_mm: float  # RMS distance of the board pose each capture implies from `board`
    residual_deg: float  # RMS angle between them
    max_residual_mm: float
    max_residual_deg: float
    reprojection_px: float  # RMS of the corners' reprojection; NaN without corner observations
    captures: int


@dataclass(frozen=True)
class CornerObservation:
    """The board corners one capture saw: board-frame points and their pixels."""

    object_points: np.ndarray  # (N, 3) m, board frame
    image_points: np.ndarray  # (N, 2) pixels


# ---- rigid transforms ----------------------------------------------------------------------------------
def pose_matrix(pose: Pose) -> np.ndarray:
    """(4, 4) homogeneous transform of a pose."""
    t = np.eye(4)
    t[:3, :3] = pose.rotation_matrix()
    t[:3, 3] = pose.xyz
    return t


def quat_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(w, x, y, z) unit quaternion of a (3, 3) rotation matrix, w >= 0."""
    m = np.asarray(rot, dtype=float)
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 1e-12))
        q = np.empty(4)
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def pose_from_matrix(rot: np.ndarray, t) -> Pose:
    """A pose from a (3, 3) rotation and a translation."""
    return Pose(tuple(float(v) for v in np.ravel(t)), tuple(float(v) for v in quat_from_matrix(rot)))


def _from_homogeneous(t: np.ndarray) -> Pose:
    return pose_from_matrix(t[:3, :3], t[:3, 3])


def _inv(t: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = t[:3, :3].T
    out[:3, 3] = -t[:3, :3].T @ t[:3, 3]
    return out


def rotation_log(rot: np.ndarray) -> np.ndarray:
    """(3,) axis * angle of a rotation matrix (angles below pi)."""
    cos = np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    w = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    if angle < 1e-7:
        return w / 2.0
    return w * angle / (2.0 * np.sin(angle))


def rotation_exp(w: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of an axis * angle vector (Rodrigues' formula)."""
    angle = float(np.linalg.norm(w))
    k = np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])
    if angle < 1e-9:
        return np.eye(3) + k
    return np.eye(3) + np.sin(angle) / angle * k + (1.0 - np.cos(angle)) / angle ** 2 * (k @ k)


def _project_rotation(m: np.ndarray) -> np.ndarray:
    """The rotation nearest to a (3, 3) matrix."""
    u, _, vt = np.linalg.svd(m)
    return u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt


# ---- solvers -------------------------------------------------------------------------------------------
def solve_eye_in_hand(tcp_poses: Sequence[Pose], board_in_camera: Sequence[Pose],
                      observations: Sequence[CornerObservation] | None = None,
                      intrinsics: dict | None = None) -> HandEyeResult:
    """A camera on the hand looking at a fixed board: its pose relative to the TCP (`camera`) and the
    board's pose in the base frame (`board`). Give the corner observations and the intrinsics to
    refine on the corners' reprojection."""
    a = [pose_matrix(p) for p in tcp_poses]
    return _solve(a, board_in_camera, observations, intrinsics)


def solve_eye_to_hand(tcp_poses: Sequence[Pose], board_in_camera: Sequence[Pose],
                      observations: Sequence[CornerObservation] | None = None,
                      intrinsics: dict | None = None) -> HandEyeResult:
    """A fixed camera looking at a board the hand holds: the camera's pose in the base frame
    (`camera`) and the board's pose relative to the TCP (`board`)."""
    a = [_inv(pose_matrix(p)) for p in tcp_poses]
    return _solve(a, board_in_camera, observations, intrinsics)


def _solve(a: list[np.ndarray], board_in_camera: Sequence[Pose], observations, intrinsics) -> HandEyeResult:
    b = [pose_matrix(p) for p in board_in_camera]
    if len(a) != len(b):
        raise HandEyeError(f"{len(a)} arm poses but {len(b)} board poses; they come in pairs")
    if len(a) < MIN_CAPTURES:
        raise HandEyeError(f"{len(a)} capture(s); at least {MIN_CAPTURES} with the hand turned differently are needed")
    x, y = solve_ax_yb(a, b)
    if observations is not None:
        if intrinsics is None or len(observations) != len(a):
            raise HandEyeError("corner observations need the camera intrinsics and one observation per capture")
        x, y = _refine(x, y, a, _reprojection_residuals(a, observations, intrinsics))
    else:
        x, y = _refine(x, y, a, _pose_residuals(a, b))
    implied = [ai @ x @ bi for ai, bi in zip(a, b)]  # the board pose each capture implies
    dist_mm = np.array([1000.0 * np.linalg.norm(t[:3, 3] - y[:3, 3]) for t in implied])
    angle_deg = np.array([np.degrees(np.linalg.norm(rotation_log(y[:3, :3].T @ t[:3, :3]))) for t in implied])
    reprojection = float("nan")
    if observations is not None:
        r = _reprojection_residuals(a, observations, intrinsics)(x, y)
        reprojection = float(np.sqrt(np.mean(r.reshape(-1, 2) ** 2) * 2))
    return HandEyeResult(_from_homogeneous(x), _from_homogeneous(y), float(np.sqrt(np.mean(dist_mm ** 2))),
                         float(np.sqrt(np.mean(angle_deg ** 2))), float(dist_mm.max()), float(angle_deg.max()),
                         reprojection, len(a))


def solve_ax_yb(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form X, Y ((4, 4) each) with A_i X B_i = Y for all i, from (4, 4) transforms."""
    alphas, betas, lhs, pairs = [], [], [], []
    n = len(a)
    for i in range(n):
        for j in range(i + 1, n):
            a_ij = _inv(a[j]) @ a[i]
            b_ij = b[j] @ _inv(b[i])
            alphas.append(rotation_log(a_ij[:3, :3]))
            betas.append(rotation_log(b_ij[:3, :3]))
            pairs.append((a_ij, b_ij))
    alphas, betas = np.array(alphas), np.array(betas)  # (P, 3) each
    largest = np.degrees(np.linalg.norm(alphas, axis=1).max())
    if largest < MIN_ROTATION_DEG:
        raise HandEyeError(f"the hand turned at most {largest:.1f} degrees between captures; tilt it more "
                           f"(at least {MIN_ROTATION_DEG:.0f} degrees, better 15 or more)")
    spread = np.linalg.svd(alphas, compute_uv=False)
    if spread[1] < 1e-3 * spread[0]:
        raise HandEyeError("the captures turn the hand about one axis only; tilt it about different axes")
    u, _, vt = np.linalg.svd(betas.T @ alphas)  # Procrustes: alpha = R_X beta
    r_x = vt.T @ np.diag([1.0, 1.0, np.linalg.det(vt.T @ u.T)]) @ u.T
    for a_ij, b_ij in pairs:
        lhs.append((a_ij[:3, :3] - np.eye(3), r_x @ b_ij[:3, 3] - a_ij[:3, 3]))
    m = np.concatenate([p[0] for p in lhs])  # (3P, 3)
    rhs = np.concatenate([p[1] for p in lhs])  # (3P,)
    t_x = np.linalg.lstsq(m, rhs, rcond=None)[0]
    x = np.eye(4)
    x[:3, :3], x[:3, 3] = r_x, t_x
    implied = [ai @ x @ bi for ai, bi in zip(a, b)]
    y = np.eye(4)
    y[:3, :3] = _project_rotation(sum(t[:3, :3] for t in implied))
    y[:3, 3] = np.mean([t[:3, 3] for t in implied], axis=0)
    return x, y


# ---- refinement ----------------------------------------------------------------------------------------
def _perturbed(x0: np.ndarray, y0: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """X, Y moved by p = (rotation X, translation X, rotation Y, translation Y) (12,), rotations on the left."""
    x, y = x0.copy(), y0.copy()
    x[:3, :3] = rotation_exp(p[0:3]) @ x0[:3, :3]
    x[:3, 3] = x0[:3, 3] + p[3:6]
    y[:3, :3] = rotation_exp(p[6:9]) @ y0[:3, :3]
    y[:3, 3] = y0[:3, 3] + p[9:12]
    return x, y


def _pose_residuals(a, b):
    def residuals(x, y):
        out = []
        y_inv = _inv(y)
        for ai, bi in zip(a, b):
            e = y_inv @ ai @ x @ bi  # identity when capture i agrees with X and Y
            out.append(e[:3, 3] / _POSE_SIGMA_M)
            out.append(rotation_log(e[:3, :3]) / _POSE_SIGMA_RAD)
        return np.concatenate(out)
    return residuals


def _reprojection_residuals(a, observations: Sequence[CornerObservation], intrinsics: dict):
    """Residuals in pixels (normalised image coordinates scaled by the focal length) of every corner."""
    fx, fy, cx, cy = (float(intrinsics[k]) for k in ("fx", "fy", "cx", "cy"))
    dist = np.asarray(intrinsics.get("distortion") or np.zeros(5), dtype=float)
    normalised = []
    for obs in observations:
        uv = np.asarray(obs.image_points, dtype=float).reshape(-1, 2)
        if np.any(dist != 0):
            import cv2

            k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
            normalised.append(cv2.undistortPoints(uv.reshape(-1, 1, 2), k, dist).reshape(-1, 2))
        else:
            normalised.append(np.stack([(uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy], axis=1))
    points = [np.asarray(obs.object_points, dtype=float).reshape(-1, 3) for obs in observations]

    def residuals(x, y):
        out = []
        x_inv = _inv(x)
        for ai, pts, seen in zip(a, points, normalised):
            board_in_cam = x_inv @ _inv(ai) @ y
            cam = pts @ board_in_cam[:3, :3].T + board_in_cam[:3, 3]  # (N, 3)
            z = np.where(np.abs(cam[:, 2]) > 1e-6, cam[:, 2], 1e-6)
            proj = cam[:, :2] / z[:, None]  # (N, 2)
            out.append(((proj - seen) * (fx, fy)).ravel())
        return np.concatenate(out)
    return residuals


def _refine(x0: np.ndarray, y0: np.ndarray, a, residuals, iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt over the 12 pose parameters of X and Y (numerical Jacobian)."""
    p = np.zeros(12)
    r = residuals(x0, y0)
    cost = float(r @ r)
    damping = 1e-3
    eps = 1e-7
    for _ in range(iterations):
        jac = np.empty((r.size, 12))
        for k in range(12):
            dp = p.copy()
            dp[k] += eps
            jac[:, k] = (residuals(*_perturbed(x0, y0, dp)) - r) / eps
        h = jac.T @ jac
        g = jac.T @ r
        improved = False
        while damping < 1e10:
            step = np.linalg.solve(h + damping * np.diag(np.diag(h) + 1e-12), -g)
            r_new = residuals(*_perturbed(x0, y0, p + step))
            cost_new = float(r_new @ r_new)
            if cost_new < cost:
                p, r, damping, improved = p + step, r_new, max(damping / 3.0, 1e-9), True
                converged = cost - cost_new < 1e-12 * max(cost, 1e-12)
                cost = cost_new
                break
            damping *= 4.0
        if not improved or converged or np.linalg.norm(step) < 1e-12:
            break
    return _perturbed(x0, y0, p)
