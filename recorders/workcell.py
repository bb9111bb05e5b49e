"""A workcell: an arm plus what can be observed around it (object poses, cameras).

Skills, tasks and the recorder talk to a `Workcell`, never to MuJoCo or franky directly. Two
implementations share the simulated scene: `SimWorkcell` (in process, stepped as fast as the CPU
allows) and `FrankySimWorkcell` (recorders/sim/franky_sim_workcell.py: the franky backend against
a franky-sim server process). `open_workcell` is the one place that maps a robot kind to a class.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from recorders.arms.base import Arm, ArmError
from recorders.pose import Pose
from recorders.cell.scene import CAMERA_NAMES, SceneSpec

ROBOT_KINDS = ("sim", "franky-sim")


class Workcell(ABC):
    """An arm (behind the safety layer) and the observable scene."""

    kind: str
    spec: SceneSpec
    arm: Arm
    clock_name: str  # "sim" (simulated time) or "monotonic" (wall clock)

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
    def close(self) -> None:
        """Release the arm, cameras and any server process; safe to call twice."""

    @property
    def cameras(self) -> tuple[str, ...]:
        return CAMERA_NAMES

    def object_pose(self, name: str) -> Pose:
        poses = self.object_poses()
        if name not in poses:
            raise KeyError(f"no object named {name!r}; objects: {', '.join(poses)}")
        return poses[name]

    def __enter__(self) -> "Workcell":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SimWorkcell(Workcell):
    """The simulated workcell in this process."""

    kind = "sim"
    clock_name = "sim"

    def __init__(self, spec: SceneSpec, control_hz: float = 10.0, safety=None):
        from recorders.arms.sim_arm import SimArm
        from recorders.safety import SafeArm, SafetyLimits

        self.spec = spec
        self.sim_arm = SimArm(spec, control_hz=control_hz)
        self.sim_arm.connect()
        self.world = self.sim_arm.world
        self.arm = SafeArm(self.sim_arm, safety or SafetyLimits())
        self.arm.connect()

    def object_poses(self) -> dict[str, Pose]:
        return self.world.object_poses()

    def render(self, camera: str):
        return self.world.render(camera)

    def camera_intrinsics(self, camera: str) -> dict:
        return self.world.camera_intrinsics(camera)

    def close(self) -> None:
        self.sim_arm.disconnect()


def open_workcell(kind: str, spec: SceneSpec, control_hz: float = 10.0) -> Workcell:
    """Connect to a workcell of the given robot kind with the scene `spec`."""
    if kind == "sim":
        return SimWorkcell(spec, control_hz)
    if kind == "franky-sim":
        from recorders.sim.franky_sim_workcell import FrankySimWorkcell

        return FrankySimWorkcell(spec, control_hz)
    raise ArmError(f"unknown robot {kind!r}; choose one of: {', '.join(ROBOT_KINDS)}")
