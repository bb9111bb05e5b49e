"""A real Franka arm as a workcell: the franky backend behind the safety layer, with RealSense cameras.

The cameras are recorders/cell/cameras.py `DeviceCamera`s (opened from a recorders/cell/camera_rig.py
rig and placed by the workcell's calibration); they deliver frames at their own rate, and a take
records each frame at its capture time. A real cell has no simulator to ask where the objects are:
`object_poses` is empty here, and the perception wrapper (recorders/perception) supplies the taught
objects' poses from these cameras. Teleop, hotkey labels, home() and the e-stop work as in the
simulated workcell. Its scene (`spec`) is what the operator taught; empty by default.

    skills / teleop -> SafeArm -> FrankyArm (private) ==libfranka==> the arm at `host` (FCI)
    camera(name) -> DeviceCamera <- RealSense capture thread
"""
from __future__ import annotations

import numpy as np

from recorders.arms.base import DEFAULT_CONTROL_HZ, ArmError
from recorders.arms.franky_arm import FrankyArm
from recorders.cell.camera_geometry import CameraMount, camera_pose_at
from recorders.cell.cameras import CameraStream, DeviceCamera
from recorders.cell.scene import SceneSpec
from recorders.cell.workcell import Workcell
from recorders.pose import Pose
from recorders.safety import SafeArm, SafetyLimits

EMPTY_SCENE = SceneSpec(cubes=(), zones=())


class FrankyWorkcell(Workcell):
    """Connects to the arm at `host` (its FCI address) behind the safety layer; `close()` releases it
    and the cameras (which it owns from here on)."""

    kind = "franky"
    clock_name = "monotonic"

    def __init__(self, host: str, control_hz: float = DEFAULT_CONTROL_HZ, safety: SafetyLimits | None = None,
                 spec: SceneSpec | None = None, cameras: dict[str, DeviceCamera] | None = None):
        self._devices = dict(cameras or {})
        self._closed = False
        try:
            if not host:
                raise ArmError("a franky arm needs its FCI address (--robot-ip)")
            self.spec = spec or EMPTY_SCENE
            self._franky_arm = FrankyArm(host, control_hz, kind=self.kind)
            self.arm = SafeArm(self._franky_arm, safety or SafetyLimits())
            self.arm.connect()
        except BaseException:
            self._close_cameras()
            raise

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self._devices)

    def camera(self, name: str) -> CameraStream:
        if name not in self._devices:
            raise ArmError(f"the franky workcell has no {name!r} camera (cameras: {', '.join(self._devices) or 'none'}; "
                           "choose RealSense cameras in Record or pass --camera realsense)")
        return self._devices[name]

    def object_poses(self) -> dict[str, Pose]:
        return {}

    def render(self, camera: str) -> tuple[np.ndarray, np.ndarray | None]:
        frame = self.camera(camera).frame()
        if frame is None:
            raise ArmError(f"the {camera} camera has sent no frame yet")
        return frame.rgb, frame.depth

    def camera_intrinsics(self, camera: str) -> dict:
        return self.camera(camera).intrinsics()

    def camera_mount(self, camera: str) -> CameraMount:
        return self.camera(camera).mount()

    def camera_pose(self, camera: str) -> Pose:
        return camera_pose_at(self.camera_mount(camera), self.arm.state().ee_pose)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.arm.disconnect()
            finally:
                self._close_cameras()

    def _close_cameras(self) -> None:
        for camera in self._devices.values():
            camera.close()
