"""Teaching by clicking: one click on an RGB-D frame and a name -> the model of an object or a target.

    Record workspace: the user clicks (u, v) on a camera view and types a name
      -> teach_object(name, frame, u, v, taken)  -> ObjectModel -> TaughtScene.with_object
      -> teach_target(name, frame, u, v, taken)  -> TargetModel -> TaughtScene.with_target
      (segment_object(frame, u, v) -> ObjectSegment.mask: what a click selects, to draw it)

An object is segmented from the click outwards, within a window as large as the biggest object we
accept: first all that stands above the table (depth and the camera pose give every pixel's height)
connected to the clicked pixel without a depth jump; then, of that, the pixels that show the colour
of the pixels nearest the click, lit more or less brightly (colour_model.py, so lit and shaded faces
agree and a different-coloured object touching it is left out). Its colours, its size (height above
the table; footprint from the top face's minimum-area rectangle; a square footprint about as wide as
the object is tall is taken for a cube of that height) and its pose (tracker.fit_box) become the
ObjectModel the tracker looks for. Objects are taught standing on the table (their height is
measured from it).

A target is the point on the table under the click: where the click's ray meets the table, at the
height depth measures there (which also shows that no object stands there), or at z = table_z
without depth; it is a square of `size` centred there.

Every mistake a user can make raises a TeachingError (a ValueError) with a one-line message: an empty
or taken name, a click outside the image, no depth under an object click, nothing but table under an
object click, an object under a target click, a region too large to be an object.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from recorders.cell.scene import TABLE_TOP_Z, ZONE_SIZE
from recorders.perception.camera_frame import (MIN_BRIGHTNESS, CameraFrame, as_frame, on_depth_edge, pixel_heights,
                                               points_at, ray_table_point)
from recorders.perception.colour_model import (COLOUR_TOL, base_colour, colour_distance, colour_samples,
                                               nearest_colour_name, shown_colours)
from recorders.perception.taught_scene import ObjectModel, TargetModel, TeachingError, clean_name
from recorders.perception.tracker import fit_box
from recorders.pose import Pose, quat_from_yaw

MIN_OBJECT_HEIGHT_M = 0.008  # a pixel this far above the table belongs to something standing on it
MAX_OBJECT_SIZE_M = 0.3  # the largest object we accept; bounds the search window too
TARGET_MAX_HEIGHT_M = 0.01  # a target click must see the table (a flat mat is fine), not an object
DEPTH_JUMP_M = 0.02  # neighbouring pixels further apart in depth belong to different surfaces
SEED_PIXELS = 9  # the clicked colour is the median of this many of the object's pixels nearest the click
MIN_OBJECT_PIXELS = 6
CLICK_SLACK_PX = 2  # a click this close to an object's edge still selects it


class OutsideImageError(TeachingError):
    """The click is not on the image."""


class NoDepthError(TeachingError):
    """The camera measured no depth where an object was clicked."""


class NothingThereError(TeachingError):
    """Nothing stands on the table where an object was clicked."""


class NotAnObjectError(TeachingError):
    """What was clicked is too dark to tell its colour, or too large to be an object."""


class NotTableError(TeachingError):
    """A target click that does not see the free table."""


def _click_pixel(frame: CameraFrame, u: float, v: float) -> tuple[int, int]:
    h, w = frame.shape
    ui, vi = int(round(u)), int(round(v))
    if not (0 <= ui < w and 0 <= vi < h):
        raise OutsideImageError(f"the click ({u:.0f}, {v:.0f}) is outside the {w}x{h} image")
    return ui, vi


def _window(shape: tuple[int, ...], ui: int, vi: int, radius: int) -> tuple[slice, slice]:
    h, w = shape[:2]
    return slice(max(0, vi - radius), min(h, vi + radius + 1)), slice(max(0, ui - radius), min(w, ui + radius + 1))


def _depth_near(frame: CameraFrame, ui: int, vi: int, radius: int = 2) -> float | None:
    """Median depth (m) of the measured pixels within `radius` of (ui, vi); None if there are none."""
    if frame.depth is None:
        return None
    patch = frame.depth[_window(frame.shape, ui, vi, radius)]
    valid = patch[patch > 0]
    return float(np.median(valid)) * frame.depth_scale_m if valid.size else None


def _crop(frame: CameraFrame, rows: slice, cols: slice) -> CameraFrame:
    """The frame cut to a window, with the intrinsics moved so pixel geometry stays exact."""
    k = dict(frame.intrinsics)
    k["cx"], k["cy"] = k["cx"] - cols.start, k["cy"] - rows.start
    k["width"], k["height"] = cols.stop - cols.start, rows.stop - rows.start
    return CameraFrame(frame.rgb[rows, cols], frame.depth[rows, cols], k, frame.pose, frame.depth_scale_m)


def _component_at(mask: np.ndarray, ui: int, vi: int) -> np.ndarray | None:
    """(H, W) bool: the 8-connected component of `mask` at (ui, vi), or the nearest one within
    CLICK_SLACK_PX of it; None when there is none."""
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    rows, cols = _window(mask.shape, ui, vi, CLICK_SLACK_PX)
    patch = labels[rows, cols]
    if not patch.any():
        return None
    vv, uu = np.nonzero(patch)
    nearest = np.argmin((vv + rows.start - vi) ** 2 + (uu + cols.start - ui) ** 2)
    return labels == patch[vv[nearest], uu[nearest]]


def footprint(points: np.ndarray, pixel_m: float, view: np.ndarray) -> tuple[np.ndarray, tuple[float, float], float]:
    """Centre xy, extents (along its yaw axes) and yaw of the minimum-area rectangle around the xy of
    base-frame points on a horizontal face, grown by one pixel's footprint there: pixel centres lie
    half a pixel inside each edge, and a pixel seen at a slant covers more table along the view
    (`view`: the unit viewing direction; `pixel_m`: a pixel's size across the view)."""
    xy = points[:, :2].astype(np.float32)
    if len(xy) < 3:
        return xy.mean(axis=0).astype(float), (pixel_m, pixel_m), 0.0
    (cx, cy), (w, l), angle = cv2.minAreaRect(xy)
    yaw = math.radians(angle)
    along = np.asarray(view[:2], dtype=float) / max(float(np.linalg.norm(view[:2])), 1e-9)
    stretch = 1.0 / max(abs(float(view[2])), 0.2)  # a pixel's length on the face along the view / across
    grown = []
    for extent, axis in ((w, (math.cos(yaw), math.sin(yaw))), (l, (-math.sin(yaw), math.cos(yaw)))):
        c = float(np.dot(axis, along))
        grown.append(float(extent) + pixel_m * math.hypot(c * stretch, math.sqrt(max(0.0, 1 - c * c))))
    return np.array([cx, cy], dtype=float), (grown[0], grown[1]), yaw


def looks_cubic(sx: float, sy: float, height: float) -> bool:
    """A square footprint about as wide as the object is tall: taken to be a cube."""
    return abs(sx - sy) <= 0.15 * max(sx, sy) and abs((sx + sy) / 2 - height) <= 0.2 * height


@dataclass(frozen=True)
class ObjectSegment:
    """What one click selected on a frame: the object's pixels and what they show."""

    mask: np.ndarray  # (H, W) bool over the whole frame: the object's pixels (for drawing its outline)
    points: np.ndarray  # (N, 3) base-frame points of those pixels
    pixels: np.ndarray  # (N, 3) uint8 their colours
    base_rgb: np.ndarray  # (3,) the object's colour unclipped, max channel 1 (colour_model.base_colour)
    colour_tol: float
    pixel_m: float  # the size of a pixel at the clicked depth, across the view


def segment_object(frame, u: float, v: float, table_z: float = TABLE_TOP_Z) -> ObjectSegment:
    """The object under pixel (u, v) of an RGB-D `frame` (a CameraFrame or its tuple), e.g. to show a
    user what a click would teach. TeachingError subclasses when there is no object to segment."""
    frame = as_frame(frame)
    ui, vi = _click_pixel(frame, u, v)
    d_click = _depth_near(frame, ui, vi)
    if d_click is None:
        raise NoDepthError(f"no depth at pixel ({ui}, {vi}); click where the camera measures depth "
                           "(not on a dark, shiny or too-near surface)")
    fx = float(frame.intrinsics["fx"])
    rows, cols = _window(frame.shape, ui, vi, int(math.ceil(MAX_OBJECT_SIZE_M * fx / d_click)))
    roi = _crop(frame, rows, cols)
    cu, cv_ = ui - cols.start, vi - rows.start
    heights = pixel_heights(roi, table_z)  # (h, w), NaN without depth
    near = heights[_window(roi.shape, cu, cv_, 1)]
    click_height = float(np.nanmedian(near)) if np.isfinite(near).any() else 0.0
    if not click_height > MIN_OBJECT_HEIGHT_M:
        raise NothingThereError(f"nothing but the table under pixel ({ui}, {vi}) ({1000 * click_height:.0f} mm "
                                "above it); click on the object itself")
    pixels = roi.rgb.reshape(-1, 3)
    edges = on_depth_edge(roi, np.arange(heights.size), DEPTH_JUMP_M).reshape(heights.shape)
    standing = (heights > MIN_OBJECT_HEIGHT_M) & (roi.rgb.astype(np.int32).sum(axis=2) >= MIN_BRIGHTNESS) & ~edges
    body = _component_at(standing, cu, cv_)  # all that stands there and touches the click
    if body is None:
        raise NotAnObjectError(f"the object at pixel ({ui}, {vi}) is too dark to tell its colour")
    body_flat = np.flatnonzero(body)
    # its colour: the hue of the body's pixels that can look like those under the click; its region:
    # the pixels that show that hue, and the clicked colour itself
    vv, uu = np.divmod(body_flat, roi.shape[1])
    seeds = pixels[body_flat[np.argsort((vv - cv_) ** 2 + (uu - cu) ** 2, kind="stable")[:SEED_PIXELS]]]
    base = base_colour(pixels[body_flat], np.median(seeds, axis=0))
    shown = shown_colours(base, colour_samples(seeds, 4))
    same = np.zeros(body.size, dtype=bool)
    same[body_flat] = colour_distance(pixels[body_flat], shown) < COLOUR_TOL
    region = _component_at(same.reshape(body.shape), cu, cv_)
    if region is None or region.sum() < MIN_OBJECT_PIXELS:
        raise NothingThereError(f"no object of one colour at pixel ({ui}, {vi}); click nearer its middle")
    flat = np.flatnonzero(region)
    points = points_at(roi, flat)  # (N, 3) base frame
    spread = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
    if spread > MAX_OBJECT_SIZE_M:
        raise NotAnObjectError(f"the region under pixel ({ui}, {vi}) is {100 * spread:.0f} cm across, larger than "
                               f"an object ({100 * MAX_OBJECT_SIZE_M:.0f} cm); is it the robot or the background?")
    tol = float(np.clip(np.percentile(colour_distance(pixels[flat], shown), 95) + 0.03, COLOUR_TOL, 0.1))
    mask = np.zeros(frame.shape, dtype=bool)
    mask[rows, cols] = region
    return ObjectSegment(mask, points, pixels[flat], base, tol, d_click / fx)


def teach_object(name: str, frame, u: float, v: float, taken=(), table_z: float = TABLE_TOP_Z) -> ObjectModel:
    """The object under pixel (u, v) of an RGB-D `frame` (a CameraFrame or its tuple), named `name`.

    `taken`: names already in use (objects and targets). TeachingError subclasses for user mistakes."""
    name = clean_name(name, taken)
    frame = as_frame(frame)
    seg = segment_object(frame, u, v, table_z)
    top = float(np.percentile(seg.points[:, 2], 95))
    height = top - table_z
    top_face = seg.points[seg.points[:, 2] > top - max(0.004, 0.15 * height)]
    view = top_face.mean(axis=0) - frame.pose.xyz
    centre_xy, (sx, sy), yaw = footprint(top_face, seg.pixel_m, view / np.linalg.norm(view))
    if looks_cubic(sx, sy, height):
        sx = sy = height  # depth measures the height best; the footprint's far edge is foreshortened
    # the footprint's far edge is foreshortened on an oblique view; the box fit puts the centre right
    fit = fit_box(seg.points, np.array([sx, sy, height]) / 2, np.array([*centre_xy, table_z + height / 2]), yaw)
    # Of the yaws that look the same, the one nearest the base frame's x axis: a pose reads the same
    # whoever measures it (the simulator's cubes lie within +-45 degrees), and the tracker keeps it continuous.
    period = np.pi / 2 if abs(sx - sy) <= 0.15 * max(sx, sy) else np.pi
    turns = int(np.round(-fit.yaw / period))
    if turns % 2 and period < np.pi:  # an odd quarter turn swaps the footprint's axes
        sx, sy = sy, sx
    yaw = fit.yaw + turns * period
    return ObjectModel(
        name=name, colour=nearest_colour_name(seg.pixels),
        rgb=tuple(float(c) for c in seg.pixels.mean(axis=0) / 255.0), base_rgb=tuple(float(c) for c in seg.base_rgb),
        samples=colour_samples(seg.pixels), colour_tol=seg.colour_tol, size=(sx, sy, height),
        pose=Pose((float(fit.centre[0]), float(fit.centre[1]), table_z + height / 2), tuple(quat_from_yaw(yaw))),
    )


def teach_target(name: str, frame, u: float, v: float, size: float = ZONE_SIZE, taken=(),
                 table_z: float = TABLE_TOP_Z) -> TargetModel:
    """The square target of edge `size` (m) centred on the table point under pixel (u, v), named `name`."""
    name = clean_name(name, taken)
    frame = as_frame(frame)
    ui, vi = _click_pixel(frame, u, v)
    if not size > 0:
        raise TeachingError(f"a target's size must be positive, got {size}")
    plane_z = table_z
    d_click = _depth_near(frame, ui, vi)
    if d_click is not None:  # depth checks that the table is there, and how high it is there
        rows, cols = _window(frame.shape, ui, vi, 2)
        patch = _crop(frame, rows, cols)
        seen_z = float(np.median(points_at(patch, np.flatnonzero(patch.depth > 0))[:, 2]))
        if seen_z - table_z > TARGET_MAX_HEIGHT_M:
            raise NotTableError(f"there is something {100 * (seen_z - table_z):.1f} cm tall under pixel ({ui}, {vi}); "
                                "click the free table where the target should be")
        plane_z = max(seen_z, table_z - TARGET_MAX_HEIGHT_M)
    point = ray_table_point(frame, u, v, plane_z)  # the exact click, not its pixel's centre
    if point is None:
        raise NotTableError(f"pixel ({ui}, {vi}) does not look at the table")
    colour = nearest_colour_name(frame.rgb[_window(frame.shape, ui, vi, 2)].reshape(-1, 3))
    return TargetModel(name, (float(point[0]), float(point[1]), table_z), float(size), colour)
