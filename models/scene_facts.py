"""What the planner is told it sees: object-centred facts read from the front camera's image.

A tiny planner trained from scratch on a few dozen demonstrations does not learn from pixels alone
which cubes lie in a zone or which is nearest the robot (README: with the image alone it chose
right as often with another episode's image as with its own). This module reads those facts from
the image, as a perception step, and the planner reads them in its prompt (`Seen: ...`, after the
instruction), so what it does still depends on the image and only on it:

    front image (H, W, 3) uint8 -> palette colour per pixel (models/colour_swaps.palette_labels)
        -> cubes: each colour's shaded faces (a cube's sides are darker than any flat zone)
        -> zones: each colour's largest flat, lit region
        -> each cube: the zone whose region holds it, or the table; its table position from the
           camera's intrinsics and pose (the ray through its pixel meets the plane of cube centres)
        -> "Seen: purple zone: red cube; table: blue cube; nearest: blue cube" (each list nearest first)

A cube the image does not show is not listed. Colours are the simulated workcell's palette
(recorders/cell/scene.COLOURS), like the colour swaps; a real camera needs its taught colours
(recorders/perception/colour_model.py), not done here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from models.colour_swaps import NAMES, palette_labels
from recorders.cell.scene import CUBE_SIZE, TABLE_TOP_Z
from recorders.perception.camera_frame import CameraFrame, table_points
from recorders.pose import Pose

SHADED = 0.8  # brightness (relative to the albedo) under which a palette pixel is a cube's shaded side
FLAT = (0.85, 1.3)  # ... and the range of a flat, lit zone
MIN_CUBE_PIXELS = 3
MIN_ZONE_PIXELS = 12
NEAR_ZONE_PX = 1  # without a camera view: a cube counts as in a zone within this of its pixels' hull


@dataclass(frozen=True)
class CameraView:
    """A fixed camera's intrinsics (fx, fy, cx, cy, width, height) and its pose in the robot's base frame."""
    intrinsics: dict
    pose: tuple[float, ...]  # x, y, z, qw, qx, qy, qz (recorders/pose.Pose.to_array order)

    def to_dict(self) -> dict:
        return {"intrinsics": dict(self.intrinsics), "pose": list(self.pose)}

    @staticmethod
    def from_dict(d: dict) -> "CameraView":
        if not isinstance(d, dict) or not isinstance(d.get("intrinsics"), dict) or len(d.get("pose", ())) != 7:
            raise ValueError("a camera view needs intrinsics and a 7-number pose")
        k = d["intrinsics"]
        missing = [key for key in ("fx", "fy", "cx", "cy", "width", "height") if key not in k]
        if missing:
            raise ValueError(f"a camera view's intrinsics lack {', '.join(missing)}")
        return CameraView({key: float(k[key]) for key in ("fx", "fy", "cx", "cy", "width", "height")},
                          tuple(float(v) for v in d["pose"]))

    @staticmethod
    def from_stream_meta(meta: dict) -> "CameraView | None":
        """The view of a camera fixed in the base frame, from an episode stream's meta; None otherwise."""
        mount = (meta or {}).get("mount") or {}
        if mount.get("frame") != "base" or "intrinsics" not in meta:
            return None
        return CameraView.from_dict({"intrinsics": meta["intrinsics"], "pose": mount.get("pose", ())})

    def table_points(self, us: np.ndarray, vs: np.ndarray, image_shape: tuple[int, int], height: float) -> np.ndarray:
        """(N, 3): where the rays through pixels (us, vs) of an image of `image_shape` meet z = `height`
        (NaN for a ray that never does)."""
        k = self.intrinsics
        sx, sy = k["width"] / image_shape[1], k["height"] / image_shape[0]  # a resized image: scale back
        frame = CameraFrame(None, None, k, Pose.from_array(np.asarray(self.pose)))  # geometry only
        return table_points(frame, (np.asarray(us, float) + 0.5) * sx - 0.5, (np.asarray(vs, float) + 0.5) * sy - 0.5,
                            height)


@dataclass(frozen=True)
class SeenCube:
    name: str  # "red cube"
    zone: str | None  # "purple zone", or None: on the table
    pixel: tuple[float, float]  # u, v
    reach: float  # m from the robot's base in the table plane (inf without a camera view)


def _largest_region(mask: np.ndarray) -> np.ndarray | None:
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == best if stats[best, cv2.CC_STAT_AREA] >= MIN_ZONE_PIXELS else None


def _zone_test(region: np.ndarray, view: CameraView | None):
    """A test (u, v, table point) -> bool of whether a cube there lies in the zone whose visible flat
    pixels are `region`: within the zone's extent on the table with a view, else within the convex
    hull of its pixels (a cube hides the part of a zone it stands on)."""
    vs, us = np.nonzero(region)
    if view is not None:
        points = view.table_points(us, vs, region.shape, TABLE_TOP_Z)[:, :2]
        points = points[np.isfinite(points).all(1)]
        if len(points):
            low, high = points.min(0), points.max(0)
            return lambda u, v, p: p is not None and bool(np.all(p[:2] >= low) and np.all(p[:2] <= high))
    import cv2

    hull = cv2.convexHull(np.stack([us, vs], 1).astype(np.int32))
    return lambda u, v, p: cv2.pointPolygonTest(hull, (float(u), float(v)), True) >= -NEAR_ZONE_PX


def _behind_face(point: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """The cube's centre from a point on its shaded faces (those facing the camera): half a cube
    further from the camera, in the table plane."""
    away = point[:2] - camera[:2]
    norm = np.linalg.norm(away)
    return point if norm < 1e-9 else np.array([*(point[:2] + away / norm * CUBE_SIZE / 2), point[2]])


def seen_cubes(image: np.ndarray, objects: Sequence[str], zones: Sequence[str],
               view: CameraView | None = None) -> list[SeenCube]:
    """The cubes of `objects` the image shows, nearest the robot's base first (by pixel row without
    a view: lower in the front image, nearer), each with the zone of `zones` it lies in."""
    image = np.asarray(image)
    labels, scales = palette_labels(image)
    tests = {}
    for zone in zones:
        colour = zone.split()[0].lower()
        if colour in NAMES:
            flat = (labels == NAMES.index(colour)) & (scales > FLAT[0]) & (scales < FLAT[1])
            region = _largest_region(flat)
            if region is not None:
                tests[zone] = _zone_test(region, view)
    found = []
    for name in objects:
        colour = name.split()[0].lower()
        if colour not in NAMES:
            continue
        vs, us = np.nonzero((labels == NAMES.index(colour)) & (scales < SHADED))
        if len(us) < MIN_CUBE_PIXELS:
            continue
        u, v = float(np.median(us)), float(np.median(vs))
        point = None
        if view is not None:
            point = view.table_points(np.array([u]), np.array([v]), image.shape[:2], TABLE_TOP_Z + CUBE_SIZE / 2)[0]
            point = _behind_face(point, np.asarray(view.pose[:3])) if np.isfinite(point).all() else None
        inside = [z for z, test in tests.items() if test(u, v, point)]
        reach = float(np.hypot(point[0], point[1])) if point is not None else float("inf")
        found.append(SeenCube(name, inside[0] if inside else None, (u, v), reach))
    return sorted(found, key=lambda c: (c.reach, -c.pixel[1]))


def facts_text(cubes: Sequence[SeenCube], zones: Sequence[str] = ()) -> str:
    """The prompt's line: each zone of `zones` with the cubes in it, the cubes on the table, then the
    cube nearest the robot, each list nearest first:
    "Seen: red zone: blue cube, orange cube; yellow zone: none; table: green cube; nearest: green cube".
    What a zone holds follows the zone's name, as the nearest cube follows "nearest": a small
    decoder finds the name the instruction says and copies what comes after it (an induction head),
    which it learns from far fewer examples than looking back from a match."""
    if not cubes:
        return "Seen: nothing"
    groups = [(z, [c.name for c in cubes if c.zone == z]) for z in zones]
    groups.append(("table", [c.name for c in cubes if c.zone is None or c.zone not in zones]))
    parts = [f"{z}: {', '.join(names) if names else 'none'}" for z, names in groups]
    return "Seen: " + "; ".join(parts) + f"; nearest: {cubes[0].name}"


def scene_facts(image: np.ndarray, objects: Sequence[str], zones: Sequence[str],
                view: CameraView | None = None) -> str:
    return facts_text(seen_cubes(image, objects, zones, view), zones)


def front_view(path) -> dict | None:
    """The front camera's view (a CameraView's dict) of an episode whose front camera is fixed in the
    base frame; None otherwise."""
    from models.planner_data import IMAGE_STREAM
    from recorders.episode_file import open_episode

    with open_episode(path) as ep:
        if IMAGE_STREAM not in ep.stream_names:
            return None
        view = CameraView.from_stream_meta(ep.stream_info(IMAGE_STREAM).get("meta") or {})
    return None if view is None else view.to_dict()


def facts_for(image: np.ndarray, names, view: CameraView | None) -> str:
    """The facts line for a planner: `names` a models/planner_data.SceneNames."""
    return scene_facts(image, names.objects, names.zones, view)
