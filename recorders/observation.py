"""What one control tick observes, and how a tick is written to an episode.

Used by every take (recorders/take.py), so scripted demos, the Record workspace and rollouts write
exactly the same streams: the command the safety layer sent on the tick, the proprioception taken
just before it, the object poses and, with `obs="rgb"`, every camera. Each camera stream's meta holds
its intrinsics and its mount (recorders/cell/camera_geometry.py: "base" with the camera's fixed pose,
or "hand" with its pose relative to the TCP), so a reader places the camera at any frame from the
`ee_pose` stream; files recorded before mounts were stored read back a mount of None. Rendered cameras
are written with the tick; device cameras run at their own rate and the take writes their frames as
they arrive (recorders/cell/cameras.py), so their streams have their own timestamps.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recorders.arms.base import ArmCommand, ArmState
from recorders.cell.camera_geometry import MOUNT_KEY
from recorders.cell.cameras import CameraStream
from recorders.episode_file import StreamSpec
from recorders.episode_writer import EpisodeWriter
from recorders.pose import Pose
from recorders.cell.workcell import Workcell

OBS_KINDS = ("state", "rgb")


@dataclass(frozen=True)
class Observation:
    state: ArmState
    object_poses: dict[str, Pose]
    images: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)  # camera -> rgb, depth


def observe(cell: Workcell, cameras: bool) -> Observation:
    """The workcell now: arm state, object poses and (if `cameras`) the newest frame of every camera
    (rendered now, or a device's latest; a device camera without a frame yet is left out)."""
    images = {}
    if cameras:
        for cam in cell.cameras:
            frame = cell.camera(cam).frame()
            if frame is not None:
                images[cam] = (frame.rgb, frame.depth)
    return Observation(cell.arm.state(), cell.object_poses(), images)


def camera_stream_specs(cam: CameraStream, control_hz: float) -> list[StreamSpec]:
    """`{cam}_rgb` and, with depth, `{cam}_depth` of one camera: rendered cameras at the control rate,
    devices at their own rate; the meta holds intrinsics, the mount when known, and a device's serial."""
    intr = cam.intrinsics()
    h, w = int(intr["height"]), int(intr["width"])
    meta: dict = {"intrinsics": intr}
    try:
        meta[MOUNT_KEY] = cam.mount().to_dict()
    except ValueError:
        pass  # a device camera not calibrated yet: readers get a mount of None
    serial = getattr(getattr(cam, "device", None), "serial", None)
    if serial is not None:
        meta["serial"] = str(serial)
    rate = cam.rate_hz if cam.free_running else control_hz
    specs = [StreamSpec(f"{cam.name}_rgb", "rgb", (h, w, 3), "uint8", rate, meta)]
    if cam.has_depth:
        specs.append(StreamSpec(f"{cam.name}_depth", "depth", (h, w), "uint16", rate,
                                {**meta, "depth_scale_m": cam.depth_scale_m}))
    return specs


def stream_specs(cell: Workcell, obs: str, control_hz: float) -> list[StreamSpec]:
    """The streams a recording of `cell` writes."""
    if obs not in OBS_KINDS:
        raise ValueError(f"obs must be one of {', '.join(OBS_KINDS)}, got {obs!r}")
    n = len(cell.spec.cubes)
    specs = [
        StreamSpec("action", "array", (8,), "float32", control_hz),
        StreamSpec("joint_positions", "array", (7,), "float32", control_hz),
        StreamSpec("joint_velocities", "array", (7,), "float32", control_hz),
        StreamSpec("ee_pose", "array", (7,), "float32", control_hz),
        StreamSpec("gripper_width", "array", (1,), "float32", control_hz),
    ]
    if n:
        specs.append(StreamSpec("object_poses", "array", (n, 7), "float32", control_hz,
                                {"names": cell.spec.object_names}))
    if obs == "rgb":
        for cam in cell.cameras:
            specs += camera_stream_specs(cell.camera(cam), control_hz)
    return specs


def append_tick(writer: EpisodeWriter, t: float, cmd: ArmCommand, ob: Observation,
                skip_cameras: frozenset[str] = frozenset()) -> dict[str, bool]:
    """Write one tick at episode time `t`; returns, per stream, whether the sample was kept
    (False: dropped because the writer is behind). `skip_cameras`: free-running cameras, whose frames
    the take writes as they arrive rather than with the tick."""
    s = ob.state
    kept = {
        "action": writer.append("action", t, cmd.to_action().astype(np.float32)),
        "joint_positions": writer.append("joint_positions", t, s.joint_positions.astype(np.float32)),
        "joint_velocities": writer.append("joint_velocities", t, s.joint_velocities.astype(np.float32)),
        "ee_pose": writer.append("ee_pose", t, s.ee_pose.to_array().astype(np.float32)),
        "gripper_width": writer.append("gripper_width", t, np.array([s.gripper_width], np.float32)),
    }
    if "object_poses" in writer.specs:
        poses = np.stack([p.to_array() for p in ob.object_poses.values()]).astype(np.float32)
        kept["object_poses"] = writer.append("object_poses", t, poses)
    for cam, (rgb, depth) in ob.images.items():
        if cam in skip_cameras:
            continue
        if f"{cam}_rgb" in writer.specs:
            kept[f"{cam}_rgb"] = writer.append(f"{cam}_rgb", t, rgb)
        if depth is not None and f"{cam}_depth" in writer.specs:
            kept[f"{cam}_depth"] = writer.append(f"{cam}_depth", t, depth)
    return kept
