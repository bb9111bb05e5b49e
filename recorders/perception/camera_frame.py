"""One RGB-D camera frame with where the camera was, and the pixel geometry perception needs from it.

Teaching (recorders/perception/teaching.py) and the tracker (recorders/perception/tracker.py) see
the world only through `CameraFrame`s: colour, depth, the camera's intrinsics and its optical-frame
pose in the robot base frame (recorders/cell/camera_geometry.py conventions), whichever camera
(rendered or RealSense) took them. This module turns pixels into base-frame points and colours into
the shading-invariant chromaticity both of them compare:

    workcell.render(cam), camera_intrinsics(cam), camera_pose(cam) -> CameraFrame
    CameraFrame -> pixel_heights() (height of every pixel above the table, one multiply-add per pixel)
                -> points_at(flat pixel indices) -> (N, 3) base-frame points
                -> table_points(pixels) -> (N, 3) where their rays meet a horizontal plane (no depth)
    rgb pixels  -> chromaticity() (r, g) / (r + g + b): about the same for the lit and the shaded faces
How colours are matched lives in recorders/perception/colour_model.py.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from recorders.cell.scene import TABLE_TOP_Z
from recorders.pose import Pose

DEPTH_SCALE_M = 0.001  # a workcell's depth images are in mm (recorders/cell/workcell.py)
MIN_BRIGHTNESS = 60  # r + g + b (0..765) below which a pixel's chromaticity is noise


class CameraFrame(NamedTuple):
    """An RGB-D frame: a plain tuple (rgb, depth, intrinsics, pose, depth_scale_m) with names."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray | None  # (H, W) uint16, 0 where the camera measured nothing
    intrinsics: dict  # fx, fy, cx, cy, width, height
    pose: Pose  # the optical frame (x right, y down, z forward) in the robot base frame
    depth_scale_m: float = DEPTH_SCALE_M  # metres per depth unit

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgb.shape[0], self.rgb.shape[1]

    def depth_m(self, flat: np.ndarray) -> np.ndarray:
        """(N,) depth in m of the pixels at flat indices `flat` (0 where there is none)."""
        return self.depth.reshape(-1)[flat].astype(np.float64) * self.depth_scale_m


def as_frame(frame) -> CameraFrame:
    """A CameraFrame from itself or from a plain (rgb, depth, intrinsics, pose[, depth_scale_m]) tuple."""
    return frame if isinstance(frame, CameraFrame) else CameraFrame(*frame)


def frame_from_workcell(cell, camera: str) -> CameraFrame:
    """Render `camera` of a workcell (recorders/cell/workcell.py) into a CameraFrame."""
    rgb, depth = cell.render(camera)
    return CameraFrame(rgb, depth, cell.camera_intrinsics(camera), cell.camera_pose(camera))


@lru_cache(maxsize=16)
def _normalised_grid(fx: float, fy: float, cx: float, cy: float, width: int, height: int):
    """x/z per column (W,) and y/z per row (H,) of the optical frame: a pixel's ray at unit depth."""
    return (np.arange(width) - cx) / fx, (np.arange(height) - cy) / fy


def _grid(frame: CameraFrame) -> tuple[np.ndarray, np.ndarray]:
    k = frame.intrinsics
    return _normalised_grid(float(k["fx"]), float(k["fy"]), float(k["cx"]), float(k["cy"]),
                            int(k["width"]), int(k["height"]))


def pixel_heights(frame: CameraFrame, table_z: float = TABLE_TOP_Z) -> np.ndarray:
    """(H, W) float32 height in m above the table of what every pixel sees; NaN without depth.

    The base-frame z of a pixel at depth d is t_z + d * (R[2, 0] x/z + R[2, 1] y/z + R[2, 2]), so a
    whole image costs one multiply-add per pixel (the depth is the optical z, not the ray length)."""
    xn, yn = _grid(frame)
    r = frame.pose.rotation_matrix()
    slope = (r[2, 0] * xn[None, :] + r[2, 1] * yn[:, None] + r[2, 2]).astype(np.float32)  # (H, W)
    d = frame.depth.astype(np.float32) * np.float32(frame.depth_scale_m)  # (H, W)
    h = np.float32(frame.pose.position[2] - table_z) + d * slope
    h[frame.depth == 0] = np.nan
    return h


def points_at(frame: CameraFrame, flat: np.ndarray) -> np.ndarray:
    """(N, 3) base-frame points seen by the pixels at flat indices `flat` (all with depth)."""
    xn, yn = _grid(frame)
    width = frame.shape[1]
    v, u = np.divmod(flat, width)
    d = frame.depth_m(flat)
    cam = np.stack([xn[u] * d, yn[v] * d, d], axis=1)  # (N, 3) in the optical frame
    return cam @ frame.pose.rotation_matrix().T + frame.pose.xyz


def table_points(frame: CameraFrame, us, vs, table_z: float = TABLE_TOP_Z) -> np.ndarray:
    """(N, 3) where the rays through pixels (us, vs) meet the plane z = table_z; NaN rows for rays
    that never do (only the intrinsics and the pose of `frame` are used)."""
    k = frame.intrinsics
    us, vs = np.asarray(us, float), np.asarray(vs, float)
    rays = np.stack([(us - k["cx"]) / k["fx"], (vs - k["cy"]) / k["fy"], np.ones_like(us)], axis=1)
    rays = rays @ frame.pose.rotation_matrix().T
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    origin = frame.pose.xyz
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (table_z - origin[2]) / rays[:, 2]
    s = np.where((rays[:, 2] < -1e-6) & (s > 0), s, np.nan)
    return origin + s[:, None] * rays


def ray_table_point(frame: CameraFrame, u: float, v: float, table_z: float = TABLE_TOP_Z) -> np.ndarray | None:
    """Where the ray through pixel (u, v) meets the table plane z = table_z; None if it never does."""
    point = table_points(frame, [u], [v], table_z)[0]
    return point if np.isfinite(point).all() else None


def chromaticity(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 2) float32 (r, g) / (r + g + b) and (...,) brightness r + g + b of uint8 RGB pixels.

    Chromaticity is unchanged when a diffuse surface is lit more or less brightly, so the lit top and
    the shaded sides of a cube share it."""
    c = rgb.astype(np.float32)
    s = c.sum(axis=-1)
    safe = np.maximum(s, 1.0)
    return np.stack([c[..., 0] / safe, c[..., 1] / safe], axis=-1), s


def on_depth_edge(frame: CameraFrame, flat: np.ndarray, jump_m: float) -> np.ndarray:
    """(N,) whether each pixel at flat indices `flat` has a 4-neighbour more than `jump_m` nearer or
    further: the silhouette where a surface in front meets one behind (mixed pixels on a real camera),
    which separates objects that touch in the image."""
    h, w = frame.shape
    d = frame.depth.reshape(-1).astype(np.int32)
    jump = int(jump_m / frame.depth_scale_m)
    edge = np.zeros(len(flat), dtype=bool)
    u = flat % w
    for offset, valid in ((1, u < w - 1), (-1, u > 0), (w, flat < (h - 1) * w), (-w, flat >= w)):
        nb = flat[valid] + offset
        edge[valid] |= np.abs(d[nb] - d[flat[valid]]) > jump
    return edge
