"""The simulated workcell served by franky-sim and driven by the real-arm backend.

The code path of a real robot, with no hardware: the workcell scene runs in a franky-sim server
process (recorders/sim/franky_sim_server.py), a `FrankyArm` talks libfranka's protocol to it on the
loopback, and the safety layer sits in front as on a real arm. What a real cell would see with
cameras and a tracker (object poses, images) comes from the server's side channel instead.

    skills / teleop -> SafeArm -> FrankyArm (private) ==libfranka==> server process (MuJoCo at 1 kHz)
    object_poses / render / camera_intrinsics / camera_pose / camera_mount / tcp_pose ---pipe---> server
"""
from __future__ import annotations

import atexit

import numpy as np

from recorders.arms.base import DEFAULT_CONTROL_HZ
from recorders.arms.franky_arm import DEFAULT_DYNAMICS_FACTOR, FrankyArm
from recorders.cell.camera_geometry import CameraMount
from recorders.cell.scene import SceneSpec
from recorders.cell.workcell import Workcell
from recorders.pose import Pose
from recorders.safety import SafeArm, SafetyLimits
from recorders.sim.franky_sim_server import DEFAULT_HOST, FrankySimServer


class FrankySimWorkcell(Workcell):
    """Starts the server, connects the franky arm behind the safety layer; `close()` ends both."""

    kind = "franky-sim"
    clock_name = "monotonic"

    def __init__(self, spec: SceneSpec, control_hz: float = DEFAULT_CONTROL_HZ, safety: SafetyLimits | None = None,
                 host: str = DEFAULT_HOST, dynamics_factor: float = DEFAULT_DYNAMICS_FACTOR):
        self.spec = spec
        self.server = FrankySimServer(spec, host)
        self._franky_arm = FrankyArm(host, control_hz, dynamics_factor=dynamics_factor, kind=self.kind)
        self.arm = SafeArm(self._franky_arm, safety or SafetyLimits())
        self._closed = False
        try:
            self.server.start()
            atexit.register(self.close)  # after the server's own handler, so this one runs first
            self.arm.connect()
        except BaseException:
            self.close()
            raise
        self.arm.info.details["server_startup_s"] = round(self.server.info.startup_s, 3)

    def object_poses(self) -> dict[str, Pose]:
        return self.server.object_poses()

    def render(self, camera: str) -> tuple[np.ndarray, np.ndarray | None]:
        return self.server.render(camera)

    def camera_intrinsics(self, camera: str) -> dict:
        return self.server.camera_intrinsics(camera)

    def camera_pose(self, camera: str) -> Pose:
        return self.server.camera_pose(camera)

    def camera_mount(self, camera: str) -> CameraMount:
        return self.server.camera_mount(camera)

    def tcp_pose(self) -> Pose:
        """The simulator's own TCP pose, for checking the arm's reported pose against it."""
        return self.server.tcp_pose()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self.arm.disconnect()  # stop the motion and the watchdog before the server goes away
        finally:
            self.server.stop()
