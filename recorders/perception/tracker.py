"""The object tracker: each taught object's pose in the robot base frame, from RGB-D frames, at camera rate.

    ObjectTracker(taught).update({camera: CameraFrame | (rgb, depth, intrinsics, pose, depth_scale_m)})
      per camera:  heights of all pixels (pixel_heights) -> pixels standing above the table
                   -> each to the taught colour class it shows (colour_model.ColourLUT), off depth
                   edges -> 8-connected surface patches (cv2) -> split by colour, a saturated pixel
                   only into a colour the patch's unsaturated pixels show -> base-frame points
      per colour class: blobs of every camera -> the object of that colour last seen nearest (within
                   a gate; a blob near several, e.g. two touching cubes, shared out point by point;
                   an object lost for a while may be found anywhere) -> fit_box on all its points
                   -> centre and yaw
      -> {name: TrackedObject(pose, seen, pixels, cameras, residual_m, age)}

A taught object is an upright box of its taught size. `fit_box` places that box so the visible points
lie on its faces (Gauss-Newton on centre and yaw, each point on the face it is nearest, outliers
trimmed): the lit top, the shaded sides, or what a finger leaves of them, from one camera or several
together. Seen from the front, points only bound the box on the sides the camera sees, and the
known size places the centre behind them. Each update fits from the last pose and from where the
points are, and keeps the fit that explains the points best, moving from the last pose costing as
much as a few points' misfit: a sliver of a face under a finger or cut by the image border cannot
drag a resting cube away, a well-seen cube follows the gripper. A box stays on or above the table.
A cube's yaw is kept within a quarter turn of the last one.

An object nobody sees keeps its last pose, marked not seen (`age` counts the updates since it was):
under the gripper, behind the arm, or out of view. While held, the wrist camera sees it from a few
centimetres (a large blob; its points are subsampled to keep the fit cheap) and the front camera sees
what the fingers leave. Objects of one colour are told apart only by where they were last seen.
Greyish objects (no hue) cannot be told from the robot; teach coloured ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import cv2
import numpy as np

from recorders.cell.scene import TABLE_TOP_Z
from recorders.perception.camera_frame import MIN_BRIGHTNESS, as_frame, on_depth_edge, pixel_heights, points_at
from recorders.perception.colour_model import CLIPPED, ColourLUT, shown_colours
from recorders.perception.taught_scene import ObjectModel, TaughtScene
from recorders.pose import Pose, quat_from_yaw, quat_yaw

MAX_FIT_POINTS = 1500  # per object and update; more only slows the fit
SAME_COLOUR = 0.1  # objects whose base colours (max channel 1) are this close share one colour class
PRIOR_POINTS = 3.0  # how many points' worth the last pose weighs in the next fit
TRIM_M = 0.008  # a point further than this from its face is an outlier (a finger, a mixed pixel)
MOVE_CAP_M = 0.004  # moving any further from the last pose costs no more than moving this far
REST_SNAP_M = 0.01  # a box this close above the table is taken to rest on it where its points allow
REST_POINTS = 1.0
MIN_FOUND_FRACTION = 0.2  # a lost object is found again only in a blob this large a part of its full view


@dataclass(frozen=True)
class TrackerParams:
    min_height_m: float = 0.006  # pixels lower than this above the table are table (or a flat zone)
    min_pixels: int = 5  # a blob smaller than this is noise
    gate_m: float = 0.12  # an object seen recently is only matched to blobs this close to its last place
    lost_after: int = 3  # updates unseen after which an object may be found anywhere
    depth_jump_m: float = 0.02  # neighbours further apart in depth are different surfaces
    table_z: float = TABLE_TOP_Z


@dataclass(frozen=True)
class TrackedObject:
    pose: Pose  # centre and yaw in the base frame; the last one seen when `seen` is False
    seen: bool  # some camera showed it in this update
    pixels: int  # how many pixels (all cameras) showed it in this update
    cameras: tuple[str, ...]  # the cameras that showed it in this update
    residual_m: float  # rms distance of its points to the fitted box (nan when not seen)
    age: int  # updates since it was last seen (0: seen in this one)


@dataclass(frozen=True)
class BoxFit:
    centre: np.ndarray  # (3,)
    yaw: float
    rms: float  # m, of the inliers
    inliers: int
    cost: float  # m^2, sum over all points of the squared distance to their face, capped at the trim distance


def fit_box(points: np.ndarray, half: np.ndarray, centre: np.ndarray, yaw: float, prior_weight: float = 0.0,
            floor_z: float = -np.inf, iterations: int = 8, trim_m: float = TRIM_M) -> BoxFit:
    """The upright box of half extents `half` (3,) whose faces best pass through `points` (N, 3).

    Gauss-Newton on (centre, yaw) from `centre` and `yaw`: every point on the face it is nearest to
    (in units of the half extents), points further than `trim_m` from their face dropped after the
    first iterations. `prior_weight` (in points) holds the box near where it started: directions the
    points leave free (a sliver of one face under a finger) keep the last pose, while a well-seen box
    moves where its points say. The centre never goes below `floor_z` (a box on the table cannot sink
    into it, however few of its points are seen), and within REST_SNAP_M above it is drawn down
    to it as by REST_POINTS points (a box near the table rests on it, unless its points say otherwise:
    a side face seen only in part leaves the height free)."""
    c0, yaw0 = np.asarray(centre, dtype=float), float(yaw)
    c, half = c0.copy(), np.asarray(half, dtype=float)
    lever = float(half.mean())  # a yaw step moves a face point by about this much per radian
    prior = np.array([prior_weight] * 3 + [prior_weight * lever ** 2]) + np.array([1e-6] * 3 + [1e-8])
    keep = np.ones(len(points), dtype=bool)
    rows = np.arange(len(points))
    r = np.zeros(len(points))
    for it in range(iterations):
        d = points - c  # (N, 3)
        cs, sn = np.cos(yaw), np.sin(yaw)
        q = np.stack([cs * d[:, 0] + sn * d[:, 1], -sn * d[:, 0] + cs * d[:, 1], d[:, 2]], axis=1)  # box frame
        axis = np.argmax(np.abs(q) / half, axis=1)  # (N,) the face each point is on
        qk = q[rows, axis]
        sign = np.where(qk >= 0, 1.0, -1.0)
        r = sign * qk - half[axis]  # (N,) signed distance to that face's plane
        if it >= 2:
            keep = np.abs(r) < trim_m
            if keep.sum() < 4:
                keep = np.ones(len(points), dtype=bool)
        # d r / d centre = -sign * (row `axis` of the box rotation); d r / d yaw = sign * d q_axis / d yaw
        rot_rows = np.array([[cs, sn, 0.0], [-sn, cs, 0.0], [0.0, 0.0, 1.0]])
        jac = np.empty((len(points), 4))
        jac[:, :3] = -sign[:, None] * rot_rows[axis]
        dq_dyaw = np.stack([q[:, 1], -q[:, 0], np.zeros(len(points))], axis=1)[rows, axis]
        jac[:, 3] = sign * dq_dyaw
        jk, rk = jac[keep], r[keep]
        offset = np.array([*(c - c0), yaw - yaw0])
        lhs, rhs = jk.T @ jk + np.diag(prior), -(jk.T @ rk + prior * offset)
        if c[2] - floor_z < REST_SNAP_M:
            lhs[2, 2] += REST_POINTS
            rhs[2] -= REST_POINTS * (c[2] - floor_z)
        step = np.linalg.solve(lhs, rhs)
        c += step[:3]
        c[2] = max(c[2], floor_z)
        yaw += float(np.clip(step[3], -0.3, 0.3))
        if np.abs(step[:3]).max() < 1e-5 and abs(step[3]) < 1e-4 and it >= 3:
            break
    inl = np.abs(r) < trim_m
    rms = float(np.sqrt(np.mean(r[inl] ** 2))) if inl.any() else float("nan")
    return BoxFit(c, float(yaw), rms, int(inl.sum()), float(np.minimum(r ** 2, trim_m ** 2).sum()))


def rough_centre(points: np.ndarray, camera_xyz: np.ndarray, half: np.ndarray) -> np.ndarray:
    """A first guess of a box's centre from the points a camera sees of it: their centroid moved half
    the box further along the viewing direction (what is seen is the near side)."""
    centroid = points.mean(axis=0)
    view = centroid - camera_xyz
    return centroid + float(half.mean()) * view / max(float(np.linalg.norm(view)), 1e-6)


def rect_yaw(points: np.ndarray) -> float:
    """Yaw of the minimum-area rectangle around the points' xy (a box's footprint)."""
    if len(points) < 3:
        return 0.0
    (_, _), (_, _), angle = cv2.minAreaRect(points[:, :2].astype(np.float32))
    return float(np.deg2rad(angle))


def nearest_turn(yaw: float, reference: float, period: float) -> float:
    """`yaw` plus whole `period`s, as close as possible to `reference` (a symmetric object's yaw)."""
    return float(yaw + period * np.round((reference - yaw) / period))


@dataclass(frozen=True)
class _Blob:
    camera: str
    points: np.ndarray  # (N, 3) base frame
    rough: np.ndarray  # (3,) rough centre
    full_view_px: float  # about how many pixels the whole object's largest face covers at its distance
    camera_xyz: np.ndarray  # (3,) where the camera was

    @property
    def large_enough(self) -> bool:
        """Big enough to be the object rather than a sliver of something that only looks like it."""
        return len(self.points) >= MIN_FOUND_FRACTION * self.full_view_px


class ObjectTracker:
    """Tracks the objects of a TaughtScene; `update` once per camera frame set (a control tick)."""

    def __init__(self, taught: TaughtScene, params: TrackerParams = TrackerParams()):
        self.models: tuple[ObjectModel, ...] = taught.objects
        self.params = params
        self.classes: list[list[int]] = []  # model indices sharing one colour
        for i, m in enumerate(self.models):
            for cls in self.classes:
                if np.linalg.norm(np.subtract(m.base_rgb, self.models[cls[0]].base_rgb)) < SAME_COLOUR:
                    cls.append(i)
                    break
            else:
                self.classes.append([i])
        self.lut = ColourLUT([(np.concatenate([shown_colours(self.models[i].base_rgb, self.models[i].samples)
                                               for i in cls]), max(self.models[i].colour_tol for i in cls))
                              for cls in self.classes])
        self.reset()

    def reset(self, poses: Mapping[str, Pose] | None = None) -> None:
        """Forget what was seen: every object back at its taught pose (or at `poses`), lost."""
        poses = poses or {}
        self.state = {m.name: TrackedObject(poses.get(m.name, m.pose), False, 0, (), float("nan"),
                                            self.params.lost_after) for m in self.models}

    @property
    def poses(self) -> dict[str, Pose]:
        return {n: t.pose for n, t in self.state.items()}

    # ---- one update ----------------------------------------------------------------------------
    def update(self, frames: Mapping[str, object]) -> dict[str, TrackedObject]:
        """Track in one set of simultaneous frames {camera: CameraFrame or its tuple}; cameras
        without depth are skipped. Returns (and keeps) every taught object's TrackedObject."""
        blobs: list[list[_Blob]] = [[] for _ in self.classes]
        for camera, frame in frames.items():
            frame = as_frame(frame)
            if frame.depth is None or not self.classes:
                continue
            for k, blob in self._blobs(camera, frame):
                blobs[k].append(blob)
        new_state = dict(self.state)
        for k, members in enumerate(self.classes):
            for i, found in self._associate(members, blobs[k]).items():
                model = self.models[i]
                new_state[model.name] = self._fit(model, self.state[model.name], found)
        for name, t in new_state.items():
            if new_state[name] is self.state[name]:
                new_state[name] = TrackedObject(t.pose, False, 0, (), float("nan"), t.age + 1)
        self.state = new_state
        return dict(new_state)

    def _blobs(self, camera: str, frame) -> list[tuple[int, _Blob]]:
        """(colour class, blob) for every blob of a taught colour standing above the table."""
        p = self.params
        heights = pixel_heights(frame, p.table_z)  # (H, W)
        flat = np.flatnonzero(heights > p.min_height_m)  # NaN compares False
        if not len(flat):
            return []
        pixels = frame.rgb.reshape(-1, 3)[flat]  # (N, 3)
        cls = self.lut.classify(pixels)
        ok = (cls >= 0) & (pixels.astype(np.int32).sum(axis=1) >= MIN_BRIGHTNESS)
        ok &= ~on_depth_edge(frame, flat, p.depth_jump_m)
        flat, cls, clipped = flat[ok], cls[ok], pixels[ok].max(axis=1) >= CLIPPED
        h, w = frame.shape
        mask = np.zeros(h * w, np.uint8)
        mask[flat] = 1
        _, labels = cv2.connectedComponents(mask.reshape(h, w), connectivity=8)
        comp = labels.reshape(-1)[flat]  # (N,) the surface patch of each pixel
        order = np.argsort(comp, kind="stable")
        cuts = np.flatnonzero(np.diff(comp[order])) + 1
        focal2 = float(frame.intrinsics["fx"]) * float(frame.intrinsics["fy"])
        found = []
        for idx in np.split(order, cuts):
            if len(idx) < p.min_pixels:
                continue
            for k, sel in self._colour_parts(cls[idx], clipped[idx]):
                if len(sel) < p.min_pixels:
                    continue
                half = self.models[self.classes[k][0]].half_size
                pts = points_at(frame, flat[idx[sel]])
                rough = rough_centre(pts, frame.pose.xyz, half)
                face = float(np.prod(np.sort(2 * half)[1:]))  # m^2, the largest face
                full = face * focal2 / max(float(np.sum((rough - frame.pose.xyz) ** 2)), 1e-4)
                found.append((k, _Blob(camera, pts, rough, full, frame.pose.xyz)))
        return found

    def _colour_parts(self, cls: np.ndarray, clipped: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """One surface patch's pixels by colour class: (class, indices into the patch). A saturated pixel
        is ambiguous (a bright orange clips to what a yellow shows), so it may only take a class that
        the patch's unsaturated pixels show; otherwise it joins the patch's main colour."""
        votes = np.bincount(cls[~clipped], minlength=len(self.classes))
        if votes.sum() >= 3:
            shown = votes >= max(3.0, 0.2 * votes.sum())
            cls = np.where(clipped & ~shown[cls], np.argmax(votes), cls)
        return [(int(k), np.flatnonzero(cls == k)) for k in np.unique(cls)]

    def _associate(self, members: list[int], blobs: list[_Blob]) -> dict[int, list[_Blob]]:
        """Blobs of one colour to the objects of that colour: each blob to the object last seen nearest
        (within the gate); blobs nobody claims go to objects lost for a while, nearest first."""
        p = self.params
        found: dict[int, list[_Blob]] = {}
        if not blobs:
            return found
        last = np.array([self.state[self.models[i].name].pose.xyz for i in members])  # (M, 3)
        tracking = np.array([self.state[self.models[i].name].age < p.lost_after for i in members])
        unclaimed = []
        for blob in blobs:
            dist = np.linalg.norm(last - blob.rough, axis=1)
            dist[~tracking] = np.inf
            near = np.flatnonzero(dist < p.gate_m)
            if len(near) == 0:
                unclaimed.append(blob)
            elif len(near) == 1:
                found.setdefault(members[near[0]], []).append(blob)
            else:  # objects of one colour touching (side by side, one held over the other): share it out
                for j, part in zip(near, self._split(blob, [members[j] for j in near])):
                    if len(part.points) >= p.min_pixels:
                        found.setdefault(members[j], []).append(part)
        lost = [j for j in range(len(members)) if not tracking[j] and members[j] not in found]
        if not (unclaimed and lost):
            return found
        # unclaimed blobs near each other (other cameras, fragments) are one object; biggest first
        radius = float(2 * self.models[members[0]].half_size.max())
        groups: list[list[_Blob]] = []
        for blob in sorted(unclaimed, key=lambda b: -len(b.points)):
            home = next((g for g in groups if np.linalg.norm(g[0].rough - blob.rough) < radius), None)
            groups.append([blob]) if home is None else home.append(blob)
        groups = [g for g in groups if any(b.large_enough for b in g)]
        pairs = sorted((float(np.linalg.norm(last[j] - g[0].rough)), gi, j)
                       for gi, g in enumerate(groups) for j in lost)
        taken_groups: set[int] = set()
        for _, gi, j in pairs:
            if gi not in taken_groups and members[j] not in found:
                found[members[j]] = groups[gi]
                taken_groups.add(gi)
        return found

    def _split(self, blob: _Blob, objects: list[int]) -> list[_Blob]:
        """A blob's points shared among `objects` (model indices): each point to the object whose box at
        its last pose it lies nearest to (signed distance to the surface, negative inside)."""
        dist = []
        for i in objects:
            pose, half = self.state[self.models[i].name].pose, self.models[i].half_size
            q = (blob.points - pose.xyz) @ pose.rotation_matrix()  # (N, 3) in the box's frame
            dist.append((np.abs(q) - half).max(axis=1))
        owner = np.argmin(np.stack(dist, axis=1), axis=1)  # (N,)
        parts = []
        for k, i in enumerate(objects):
            pts = blob.points[owner == k]
            rough = rough_centre(pts, blob.camera_xyz, self.models[i].half_size) if len(pts) else blob.rough
            parts.append(_Blob(blob.camera, pts, rough, blob.full_view_px, blob.camera_xyz))
        return parts

    def _fit(self, model: ObjectModel, before: TrackedObject, blobs: list[_Blob]) -> TrackedObject:
        points = np.concatenate([b.points for b in blobs])  # (N, 3)
        pixels = len(points)
        if pixels < self.params.min_pixels:
            return before
        if pixels > MAX_FIT_POINTS:
            points = points[np.linspace(0, pixels - 1, MAX_FIT_POINTS).astype(int)]
        half = model.half_size
        weights = np.array([len(b.points) for b in blobs], dtype=float)
        rough = (np.stack([b.rough for b in blobs]) * weights[:, None]).sum(axis=0) / weights.sum()
        yaw_before = quat_yaw(np.asarray(before.pose.quat))
        # from the last pose (held there where the points say little: a sliver under a finger, a face cut
        # by the image border) and from where the points are; the fit that explains them best wins,
        # moving away from the last pose costing as much as PRIOR_POINTS misfit points
        starts = [(before.pose.xyz, yaw_before, PRIOR_POINTS), (rough, yaw_before, 0.0)]
        if before.age >= self.params.lost_after:  # lost for a while: its yaw may have changed too
            starts.append((rough, rect_yaw(points), 0.0))
        floor = self.params.table_z + half[2]
        fits = [fit_box(points, half, np.array([c[0], c[1], max(c[2], floor)]), y, w, floor) for c, y, w in starts]
        fit = min(fits, key=lambda f: f.cost + self._moved_cost(model, before.pose, f))
        yaw = nearest_turn(fit.yaw, yaw_before, model.yaw_period)
        pose = Pose(tuple(float(v) for v in fit.centre), tuple(float(v) for v in quat_from_yaw(yaw)))
        return TrackedObject(pose, True, pixels, tuple(dict.fromkeys(b.camera for b in blobs)), fit.rms, 0)

    @staticmethod
    def _moved_cost(model: ObjectModel, before: Pose, fit: BoxFit) -> float:
        """What moving from `before` to `fit` costs, in the units of BoxFit.cost: PRIOR_POINTS points as far
        off their faces as the move, but never more than MOVE_CAP_M off: when the points fit clearly
        better elsewhere the object moved; when they fit both about as well, it stayed."""
        yaw_before = quat_yaw(np.asarray(before.quat))
        turn = nearest_turn(fit.yaw, yaw_before, model.yaw_period) - yaw_before
        moved2 = float(np.sum((fit.centre - before.xyz) ** 2)) + (float(model.half_size.mean()) * turn) ** 2
        return PRIOR_POINTS * min(moved2, MOVE_CAP_M ** 2)
