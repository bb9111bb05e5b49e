"""The simulated workcell in this process: a MuJoCo `SimWorld` stepped by `SimArm`, as fast as the
CPU allows, behind the safety layer.

    skills / teleop -> SafeArm -> SimArm (private) -> SimWorld (MuJoCo, this process)
    object_poses / render / camera_intrinsics / camera_pose / camera_mount ---> SimWorld

Opened through recorders/cell/registry.py (`open_workcell("sim", spec, control_hz)`). Importing
recorders.sim chooses MuJoCo's rendering backend before MuJoCo loads, so rendering works from any
caller, not only the CLI.
"""
from __future__ import annotations

from recorders.arms.base import DEFAULT_CONTROL_HZ
from recorders.arms.sim_arm import SimArm
from recorders.cell.camera_geometry import CameraMount
from recorders.cell.scene import SceneSpec
from recorders.cell.workcell import Workcell
from recorders.pose import Pose
from recorders.safety import SafeArm, SafetyLimits
from recorders.sim.world import SimWorld


class SimWorkcell(Workcell):
    """The simulated workcell in this process; its clock is the simulation's."""

    kind = "sim"
    clock_name = "sim"

    def __init__(self, spec: SceneSpec, control_hz: float = DEFAULT_CONTROL_HZ, safety: SafetyLimits | None = None):
        self.spec = spec
        self._sim_arm = SimArm(spec, control_hz=control_hz)
        self._sim_arm.connect()
        self.world: SimWorld = self._sim_arm.world
        self.arm = SafeArm(self._sim_arm, safety or SafetyLimits())
        self.arm.connect()

    def object_poses(self) -> dict[str, Pose]:
        return self.world.object_poses()

    def render(self, camera: str):
        return self.world.render(camera)

    def camera_intrinsics(self, camera: str) -> dict:
        return self.world.camera_intrinsics(camera)

    def camera_pose(self, camera: str) -> Pose:
        return self.world.camera_pose(camera)

    def camera_mount(self, camera: str) -> CameraMount:
        return self.world.camera_mount(camera)

    def close(self) -> None:
        self.arm.disconnect()
