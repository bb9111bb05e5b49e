"""A real Franka arm as a workcell: the franky backend behind the safety layer, nothing else yet.

A real cell has no simulator to ask where the objects are, so `object_poses` is empty until a
tracker exists, and it has no cameras until RealSense streams are attached; teleop, hotkey
labels, home() and the e-stop work as in the simulated workcell. Its scene (`spec`) is what the
operator described or taught; empty by default.

    skills / teleop -> SafeArm -> FrankyArm (private) ==libfranka==> the arm at `host` (FCI)
"""
from __future__ import annotations

import numpy as np

from recorders.arms.base import DEFAULT_CONTROL_HZ, ArmError
from recorders.arms.franky_arm import FrankyArm
from recorders.cell.camera_geometry import CameraMount
from recorders.cell.scene import SceneSpec
from recorders.cell.workcell import Workcell
from recorders.pose import Pose
from recorders.safety import SafeArm, SafetyLimits

EMPTY_SCENE = SceneSpec(cubes=(), zones=())


class FrankyWorkcell(Workcell):
    """Connects to the arm at `host` (its FCI address) behind the safety layer; `close()` releases it."""

    kind = "franky"
    clock_name = "monotonic"

    def __init__(self, host: str, control_hz: float = DEFAULT_CONTROL_HZ, safety: SafetyLimits | None = None,
                 spec: SceneSpec | None = None):
        if not host:
            raise ArmError("a franky arm needs its FCI address (--robot-ip)")
        self.spec = spec or EMPTY_SCENE
        self._franky_arm = FrankyArm(host, control_hz, kind=self.kind)
        self.arm = SafeArm(self._franky_arm, safety or SafetyLimits())
        self._closed = False
        self.arm.connect()

    @property
    def cameras(self) -> tuple[str, ...]:
        return ()

    def object_poses(self) -> dict[str, Pose]:
        return {}

    def render(self, camera: str) -> tuple[np.ndarray, np.ndarray | None]:
        raise ArmError(f"the franky workcell has no camera {camera!r}")

    def camera_intrinsics(self, camera: str) -> dict:
        raise ArmError(f"the franky workcell has no camera {camera!r}")

    def camera_pose(self, camera: str) -> Pose:
        raise ArmError(f"the franky workcell has no camera {camera!r}")

    def camera_mount(self, camera: str) -> CameraMount:
        raise ArmError(f"the franky workcell has no camera {camera!r}")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.arm.disconnect()
