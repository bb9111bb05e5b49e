"""Which RealSense camera is the workcell's front camera and which its wrist camera, and opening them.

A `CameraRig` is the operator's choice (Record's camera box, or `--camera realsense` with the rig saved
for the workcell): a serial per role, one resolution, frame rate and whether to stream depth. Opening
it starts every device and wraps each as a recorders/cell/cameras.py `DeviceCamera` with the mount the
workcell's calibration gives it (none yet: the camera records, but cannot place what it sees).

    CameraRig --resolve(connected serials)--> {role: serial} --open_rig--> {role: DeviceCamera (started)}

`device_factory` builds a device from (serial, width, height, fps, depth); it is RealSenseCamera on a
real workcell and a fake device in tests.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Callable

from recorders.cell.camera_geometry import CameraMount
from recorders.cell.cameras import DeviceCamera
from recorders.cell.scene import CAMERA_NAMES

RIG_FILE = "cameras.json"


class CameraRigError(ValueError):
    """The rig cannot be resolved or opened; the message says what to do."""


@dataclass(frozen=True)
class CameraRig:
    front: str = ""  # serial of the fixed front camera; "" : none, or the only camera connected
    wrist: str = ""  # serial of the camera on the hand; "": none
    width: int = 640
    height: int = 480
    fps: int = 30
    depth: bool = True

    def __post_init__(self):
        if not (16 <= self.width <= 1920 and 16 <= self.height <= 1080):
            raise CameraRigError(f"camera size {self.width}x{self.height} is outside 16x16..1920x1080")
        if self.fps not in (6, 15, 30, 60, 90):
            raise CameraRigError(f"a RealSense camera streams at 6, 15, 30, 60 or 90 fps, not {self.fps}")
        if self.front and self.front == self.wrist:
            raise CameraRigError(f"camera {self.front} cannot be both the front and the wrist camera")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @staticmethod
    def from_json(text: str) -> "CameraRig":
        try:
            d = json.loads(text)
            return CameraRig(str(d.get("front", "")), str(d.get("wrist", "")), int(d.get("width", 640)),
                             int(d.get("height", 480)), int(d.get("fps", 30)), bool(d.get("depth", True)))
        except (ValueError, TypeError, AttributeError) as e:
            raise CameraRigError(f"the camera settings are damaged ({e}); choose the cameras again") from None

    def resolve(self, connected: list[str]) -> dict[str, str]:
        """{role: serial} of the cameras to open, among the `connected` serials."""
        wanted = {role: serial for role, serial in (("front", self.front), ("wrist", self.wrist)) if serial}
        missing = [f"{role} {serial}" for role, serial in wanted.items() if serial not in connected]
        if missing:
            raise CameraRigError(f"camera {', '.join(missing)} is not connected (connected: "
                                 f"{', '.join(connected) or 'none'}); plug it in or choose another one")
        if wanted:
            return wanted
        if len(connected) == 1:
            return {"front": connected[0]}
        if not connected:
            raise CameraRigError("no RealSense camera connected")
        raise CameraRigError(f"{len(connected)} RealSense cameras are connected ({', '.join(connected)}): say "
                             "which is the front and which the wrist camera (Record's camera box, or "
                             "--front-camera / --wrist-camera)")


def open_rig(rig: CameraRig, connected: list[str], mounts: dict[str, CameraMount],
             device_factory: Callable[..., object]) -> dict[str, DeviceCamera]:
    """Start the rig's cameras; on any failure the ones already started are stopped again."""
    opened: dict[str, DeviceCamera] = {}
    try:
        for role, serial in rig.resolve(connected).items():
            device = device_factory(serial, width=rig.width, height=rig.height, fps=rig.fps, depth=rig.depth)
            camera = DeviceCamera(role, device, mounts.get(role))
            camera.start()
            opened[role] = camera
    except BaseException:
        for camera in opened.values():
            camera.close()
        raise
    return {role: opened[role] for role in CAMERA_NAMES if role in opened}
