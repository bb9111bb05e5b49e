"""The `Workcell` interface: an arm behind the safety layer plus what can be observed around it.

Skills, tasks, the recorder and rollouts talk to a `Workcell`, never to MuJoCo or franky directly.
Each robot kind has one implementation in this package (recorders/cell/sim_workcell.py,
franky_sim_workcell.py, franky_workcell.py), and recorders/cell/registry.py is the one place that
maps a robot kind to its workcell. A workcell owns its scene (`spec`: objects, zones, cameras) and a
safety-wrapped arm (`arm`); the unguarded backend behind it stays private, so every command to the
arm passes the safety layer. Camera poses and mounts follow recorders/cell/camera_geometry.py's
conventions (OpenCV optical frame in the robot base frame; quaternions w, x, y, z). Every camera is
read through `camera(name)`, a recorders/cell/cameras.py `CameraStream`: a simulated cell's cameras
are rendered on demand from `render`, a real cell's are RealSense devices delivering at their own rate.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from recorders.cell.camera_geometry import CameraMount
from recorders.cell.cameras import CameraStream, RenderedCamera
from recorders.cell.scene import CAMERA_NAMES, SceneSpec
from recorders.pose import Pose
from recorders.safety import SafeArm


class Workcell(ABC):
    """An arm (behind the safety layer) and the observable scene."""

    kind: str  # a key of recorders.cell.registry.WORKCELL_KINDS
    spec: SceneSpec
    arm: SafeArm
    clock_name: str  # "sim" (simulated time) or "monotonic" (wall clock)
    perceived_objects: bool = False  # object_poses() come from perception, not the simulator's truth

    @abstractmethod
    def object_poses(self) -> dict[str, Pose]:
        """Current pose of every object of the scene, by name."""

    @abstractmethod
    def render(self, camera: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W, 3) uint8 RGB and optional (H, W) uint16 depth (mm) of a camera."""

    @abstractmethod
    def camera_intrinsics(self, camera: str) -> dict:
        """fx, fy, cx, cy, width, height of a camera."""

    @abstractmethod
    def camera_pose(self, camera: str) -> Pose:
        """The camera's optical frame (x right, y down, z forward) in the robot base frame now."""

    @abstractmethod
    def camera_mount(self, camera: str) -> CameraMount:
        """How the camera is held: "base" with its fixed pose, or "hand" with its fixed pose relative to
        the TCP (the camera pose at any frame is then that frame's ee_pose composed with it)."""

    @abstractmethod
    def close(self) -> None:
        """Release the arm, cameras and any server process; safe to call twice."""

    @property
    def cameras(self) -> tuple[str, ...]:
        return CAMERA_NAMES

    def camera(self, name: str) -> CameraStream:
        """The camera `name` as a stream (rendered on demand unless the workcell overrides this)."""
        streams = self.__dict__.setdefault("_camera_streams", {})
        if name not in streams:
            if name not in self.cameras:
                raise KeyError(f"no camera named {name!r}; cameras: {', '.join(self.cameras) or 'none'}")
            streams[name] = RenderedCamera(name, lambda: self.render(name), lambda: self.camera_intrinsics(name),
                                           lambda: self.camera_mount(name), self.arm.time, self.spec.cameras.depth)
        return streams[name]

    def true_object_poses(self) -> dict[str, Pose]:
        """The simulator's own object poses, for judging success; the same as `object_poses` unless
        the objects are perceived (recorders/perception/perceived_workcell.py)."""
        return self.object_poses()

    def object_pose(self, name: str) -> Pose:
        poses = self.object_poses()
        if name not in poses:
            raise KeyError(f"no object named {name!r}; objects: {', '.join(poses)}")
        return poses[name]

    def __enter__(self) -> "Workcell":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
