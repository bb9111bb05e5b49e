"""A workcell whose objects are perceived: the tracker's poses from its cameras' RGB-D, not a simulator's truth.

    PerceivedWorkcell(inner, taught)          (inner: any Workcell; it keeps the arm, cameras, clock)
      render(cam)      -> inner.render(cam), kept for the current tick
      object_poses()   -> the tick's frames of every camera (rendered once per tick, shared with
                          render) -> ObjectTracker.update -> {taught name: Pose}
      spec             -> taught.scene_spec(): the robot API's object and zone names and zone places

A tick is a reading of the arm's clock: on a stepped simulation (clock "sim") time stands still
between commands, so `observe()` (recorders/observation.py: render every camera, then object_poses)
renders each camera once per tick and the tracker reuses those frames; on a wall clock a frame stays
current for half a control period. The tracker runs at most once per tick, whoever asks.

For the simulated workcell, `auto_teach(cell)` teaches every cube and zone of its scene once by
"clicking" the pixel where the simulator's true pose projects (what a user's click would be); after
that only images are used. `open_perceived_workcell` has `open_workcell`'s signature, so it can be
handed as `cell_factory` to record_demo and the run/eval commands for `--objects perceived`: it opens
the inner workcell with `perceived_scene_spec(spec)` (depth on) and wraps it. Task success must
still be judged from the truth: `true_object_poses()`.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np

from recorders.cell.camera_geometry import CameraMount, camera_pose_at, project
from recorders.cell.registry import open_workcell, workcell_kind
from recorders.cell.scene import CUBE_SIZE, CameraSettings, SceneSpec
from recorders.cell.workcell import Workcell
from recorders.perception.camera_frame import CameraFrame, frame_from_workcell
from recorders.perception.taught_scene import TaughtScene, TeachingError
from recorders.perception.teaching import teach_object, teach_target
from recorders.perception.tracker import ObjectTracker, TrackedObject, TrackerParams
from recorders.pose import Pose



def perceived_scene_spec(spec: SceneSpec, cameras: CameraSettings | None = None) -> SceneSpec:
    """`spec` with depth images on, which the tracker needs, at the scene's own resolution (the images a
    policy is trained on stay the same) unless `cameras` says otherwise.

    Measured with tracking_eval.py on the oracle's pick_place, stack, push and swap: at the default
    128x128 (a cube ~7 pixels wide in the front camera) the median error is well under a millimetre and
    the 95th percentile a few; 320x240 brings the 95th percentile under a millimetre."""
    return replace(spec, cameras=cameras or replace(spec.cameras, depth=True))


class PerceivedWorkcell(Workcell):
    """`inner` with its object poses from the tracker run on its own cameras' RGB-D.

    `mounts`: where the cameras are, from the workcell's calibration; the tracker, the projections and
    the episodes then place the cameras by it (a simulated workcell's own camera poses are used only
    without one). Device cameras (a real arm's) are handed through as they are."""

    perceived_objects = True

    def __init__(self, inner: Workcell, taught: TaughtScene, cameras: tuple[str, ...] | None = None,
                 params: TrackerParams = TrackerParams(), mounts: dict[str, CameraMount] | None = None):
        kind = workcell_kind(inner.kind)
        if kind.simulated and not inner.spec.cameras.depth:
            raise ValueError("perceived objects need depth images: open the simulated workcell with "
                             "perceived_scene_spec(spec)")
        self.inner = inner
        self.kind = inner.kind
        self.clock_name = inner.clock_name
        self.arm = inner.arm
        self.taught = taught
        self.spec = taught.scene_spec(inner.spec.cameras, inner.spec.seed)
        self.params = params
        self.tracker = ObjectTracker(taught, params)
        self.mounts = dict(mounts or {})
        self.tracking_cameras = tuple(cameras) if cameras is not None else tuple(inner.cameras)
        self.simulated = kind.simulated
        # a frame belongs to the current tick for this long (a stepped clock stands still in a tick)
        self.frame_lifetime_s = 0.0 if inner.clock_name == "sim" else 0.5 / inner.arm.info.control_hz
        self._lock = threading.Lock()
        self._frames: dict[str, tuple[float, CameraFrame]] = {}
        self._tracked_at: float | None = None
        self.tracked: dict[str, TrackedObject] = {}  # the latest update, with seen/age per object
        self.update_ms: tuple[float, float] = (0.0, 0.0)  # the latest update: (rendering left to do, tracking)

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.inner.cameras

    def camera(self, name: str):
        stream = self.inner.camera(name)
        return stream if stream.free_running else super().camera(name)  # rendered: through this tick's cache

    def set_taught(self, taught: TaughtScene) -> None:
        """Track `taught` from now on (the operator taught or forgot something)."""
        with self._lock:
            self.taught = taught
            self.spec = taught.scene_spec(self.inner.spec.cameras, self.inner.spec.seed)
            self.tracker = ObjectTracker(taught, self.params)
            self.tracked, self._tracked_at = {}, None

    def _current(self, t: float | None, now: float) -> bool:
        return t is not None and abs(now - t) <= self.frame_lifetime_s

    def _frame(self, camera: str, now: float) -> CameraFrame:
        cached = self._frames.get(camera)
        if cached is not None and self._current(cached[0], now):
            return cached[1]
        rgb, depth = self.inner.render(camera)
        frame = CameraFrame(rgb, depth, self.inner.camera_intrinsics(camera), self.camera_pose(camera),
                            self.inner.camera(camera).depth_scale_m)
        self._frames[camera] = (now, frame)
        return frame

    def render(self, camera: str) -> tuple[np.ndarray, np.ndarray | None]:
        with self._lock:
            frame = self._frame(camera, self.arm.time())
        return frame.rgb, frame.depth

    def track(self) -> dict[str, TrackedObject]:
        """Every taught object as the tracker sees it now (one tracker update per tick)."""
        with self._lock:
            now = self.arm.time()
            if not self._current(self._tracked_at, now):
                t0 = time.perf_counter()
                frames = {cam: self._frame(cam, now) for cam in self.tracking_cameras}
                t1 = time.perf_counter()
                self.tracked = self.tracker.update(frames)
                self.update_ms = (1000 * (t1 - t0), 1000 * (time.perf_counter() - t1))
                self._tracked_at = now
            return dict(self.tracked)

    def object_poses(self) -> dict[str, Pose]:
        return {name: t.pose for name, t in self.track().items()}

    def true_object_poses(self) -> dict[str, Pose]:
        """The simulator's truth (for judging success and measuring the tracker); simulated cells only."""
        if not self.simulated:
            raise ValueError(f"a {self.kind} workcell has no true object poses; only perceived ones")
        return self.inner.object_poses()

    def camera_intrinsics(self, camera: str) -> dict:
        return self.inner.camera_intrinsics(camera)

    def camera_pose(self, camera: str) -> Pose:
        mount = self.mounts.get(camera)
        return self.inner.camera_pose(camera) if mount is None else camera_pose_at(mount, self.arm.state().ee_pose)

    def camera_mount(self, camera: str) -> CameraMount:
        if camera in self.mounts:
            return self.mounts[camera]
        return self.inner.camera_mount(camera)

    def close(self) -> None:
        self.inner.close()


def _visible_pixel(frame: CameraFrame, point: np.ndarray, tolerance_m: float = 0.01) -> tuple[float, float] | None:
    """Where `point` lands on the frame, if the camera sees it there (not hidden behind something)."""
    uv, inside = project(point[None], frame.pose, frame.intrinsics)
    if not inside[0] or frame.depth is None:
        return None
    u, v = uv[0]
    expected = float((point - frame.pose.xyz) @ frame.pose.rotation_matrix()[:, 2])  # optical z
    measured = frame.depth[int(round(v)), int(round(u))] * frame.depth_scale_m
    return (float(u), float(v)) if abs(measured - expected) < tolerance_m else None


def auto_teach(cell: Workcell, cameras: tuple[str, ...] = ("front", "wrist"), scene_spec: SceneSpec | None = None
               ) -> TaughtScene:
    """Teach a simulated workcell's cubes and zones (those of `scene_spec`, default the cell's scene) from
    one frame per camera, clicking where the simulator's true top-face centre (cubes) and centre (zones)
    project, on the first camera in `cameras` that sees it. TeachingError when one is hidden from every
    camera. `cell` may be a PerceivedWorkcell not taught yet: its frames place the cameras by its mounts."""
    spec = scene_spec or cell.spec
    frames = {cam: frame_from_workcell(cell, cam) for cam in cameras}
    truth = cell.true_object_poses()
    scene = TaughtScene(metadata={"taught_by": "auto_teach", "cameras": list(cameras)})
    for cube in spec.cubes:
        top = truth[cube.name].xyz + (0.0, 0.0, CUBE_SIZE / 2)
        cam, uv = _first_view(frames, top, cube.name)
        scene = scene.with_object(teach_object(cube.name, frames[cam], *uv, taken=scene.names))
    for zone in spec.zones:  # a cube lying in the zone may hide its centre: then a visible point of it,
        for dx, dy in ZONE_CLICKS:  # clicked as a person would, and the square moved back onto the zone
            point = np.array([zone.position[0] + dx * zone.size, zone.position[1] + dy * zone.size, 0.0])
            seen = _first_view(frames, point, zone.name, must=(dx, dy) == ZONE_CLICKS[-1])
            if seen is not None:
                break
        cam, uv = seen
        target = teach_target(zone.name, frames[cam], *uv, size=zone.size, taken=scene.names)
        x, y, z = target.position
        scene = scene.with_target(replace(target, position=(x - dx * zone.size, y - dy * zone.size, z)))
    return scene


# Where auto_teach clicks a zone, as fractions of its edge from the centre: the centre, then points
# around it, nearest first (all well inside the square's edge).
ZONE_CLICKS = ((0.0, 0.0), *((r * np.cos(a), r * np.sin(a)) for r in (0.2, 0.32)
                             for a in np.linspace(0, 2 * np.pi, 8, endpoint=False)))


def _first_view(frames: dict[str, CameraFrame], point: np.ndarray, name: str, must: bool = True
                ) -> tuple[str, tuple[float, float]] | None:
    for cam, frame in frames.items():
        uv = _visible_pixel(frame, point)
        if uv is not None:
            return cam, uv
    if not must:
        return None
    raise TeachingError(f"the {name} is hidden from every camera ({', '.join(frames)}); cannot teach it")


def taught_by_clicks(inner: Workcell, mounts: dict[str, CameraMount] | None = None) -> PerceivedWorkcell:
    """A simulated `inner` with perceived objects, its cameras placed by `mounts` (None: its own poses),
    taught by clicking where its objects project (auto_teach through the perceived cameras)."""
    perceived = PerceivedWorkcell(inner, TaughtScene(), mounts=mounts)
    perceived.set_taught(auto_teach(perceived, scene_spec=inner.spec))
    return perceived


def open_perceived_workcell(kind: str, spec: SceneSpec | None, control_hz: float | None = None,
                            taught: TaughtScene | None = None, cameras: CameraSettings | None = None,
                            mounts: dict[str, CameraMount] | None = None, **options) -> PerceivedWorkcell:
    """`open_workcell` with perceived objects: a simulated kind opens with depth on (and `cameras`, if
    given; see perceived_scene_spec) and, without `taught`, is taught automatically (auto_teach); a
    real kind needs `taught` (loaded with load_taught_scene from the workcell's folder). `mounts`: the
    cameras' calibrated mounts (None: the inner workcell's own camera poses)."""
    entry = workcell_kind(kind)
    if taught is None and not entry.simulated:
        raise ValueError(f"a {kind} workcell has no simulator to teach from; teach its objects in Record first")
    if entry.simulated and spec is not None:
        spec = perceived_scene_spec(spec, cameras)
    args = (kind, spec) if control_hz is None else (kind, spec, control_hz)
    inner = open_workcell(*args, **options)
    try:
        if taught is None:
            return taught_by_clicks(inner, mounts)
        return PerceivedWorkcell(inner, taught, mounts=mounts)
    except BaseException:
        inner.close()
        raise
