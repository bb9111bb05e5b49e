"""The simulated workcell's MuJoCo model and data: building, object poses, grasp contacts, cameras.

Camera poses are given in the OpenCV optical frame of recorders/cell/camera_geometry.py (x right,
y down, z forward); MuJoCo's cameras look along their -z with y up, a half turn about x away.

`SimWorld` is shared by the in-process arm (which steps it) and by the franky-sim server process
(where franky-sim steps it and this class only reads it): everything here reads `model`/`data`
and never advances time.
"""
from __future__ import annotations

import copy
import threading
import xml.etree.ElementTree as ET

import mujoco
import numpy as np

from recorders.cell.camera_geometry import CameraMount
from recorders.pose import Pose, quat_multiply
from recorders.cell.scene import CAMERA_NAMES, CUBE_SIZE, SceneSpec
from recorders.sim.scene import ROBOT_PREFIX, add_workcell, apply_layout, cube_body_name

# franky-sim's home configuration; the hand's fingers then point straight down.
HOME_JOINTS = np.array([0.0, 0.0, 0.0, -1.57, 0.0, 1.57, 0.785])
# A MuJoCo camera frame (x right, y up, looking along -z) turned by pi about its x: the optical frame.
_MUJOCO_TO_OPTICAL = np.array([0.0, 1.0, 0.0, 0.0])


def new_franky_simulator(spec: SceneSpec):
    """A franky-sim MujocoSimulator with one FR3 and the workcell of `spec` added (not started)."""
    from franky_sim.mujoco_simulator import MujocoSimulator

    sim = MujocoSimulator(enable_visualization=False)
    # franky-sim's default damping of 200 on joint 7 makes it chatter at the 1 ms step; 100 is stable.
    sim.add_robot(initial_q=tuple(HOME_JOINTS), kv=(450.0, 450.0, 350.0, 350.0, 200.0, 200.0, 100.0))
    add_workcell(sim.scene, sim.worldbody, spec)
    return sim


def scene_xml(spec: SceneSpec) -> str:
    """The complete MJCF of the workcell, robot included."""
    return ET.tostring(new_franky_simulator(spec).scene, encoding="unicode")


_templates: dict[tuple[str, ...], mujoco.MjModel] = {}
_template_lock = threading.Lock()


def compiled_workcell(boards: tuple[str, ...] = ()) -> mujoco.MjModel:
    """A private copy of the workcell model (with these calibration boards), compiled once per process
    (every layout shares it)."""
    with _template_lock:
        if boards not in _templates:
            from dataclasses import replace

            from recorders.cell.scene import CameraSettings, sample_layout
            import numpy as _np

            any_spec = sample_layout(_np.random.default_rng(0), ["red"], [], CameraSettings())
            _templates[boards] = mujoco.MjModel.from_xml_string(scene_xml(replace(any_spec, boards=boards)))
        return copy.deepcopy(_templates[boards])


class SimWorld:
    """Read access to a running workcell simulation."""

    def __init__(self, spec: SceneSpec, model: mujoco.MjModel, data: mujoco.MjData):
        self.spec = spec
        self.model = model
        self.data = data
        name = lambda kind, n: mujoco.mj_name2id(model, kind, n)  # noqa: E731
        self.arm_joints = [name(mujoco.mjtObj.mjOBJ_JOINT, f"{ROBOT_PREFIX}fr3_joint{i}") for i in range(1, 8)]
        self.arm_qpos = np.array([model.jnt_qposadr[j] for j in self.arm_joints])
        self.arm_dof = np.array([model.jnt_dofadr[j] for j in self.arm_joints])
        fingers = [name(mujoco.mjtObj.mjOBJ_JOINT, f"{ROBOT_PREFIX}finger_joint{i}") for i in (1, 2)]
        self.finger_qpos = np.array([model.jnt_qposadr[j] for j in fingers])
        self.tcp_site = name(mujoco.mjtObj.mjOBJ_SITE, "tcp")
        self.cube_bodies = {c.name: name(mujoco.mjtObj.mjOBJ_BODY, cube_body_name(i)) for i, c in enumerate(spec.cubes)}
        self.finger_bodies = {
            name(mujoco.mjtObj.mjOBJ_BODY, f"{ROBOT_PREFIX}left_finger"),
            name(mujoco.mjtObj.mjOBJ_BODY, f"{ROBOT_PREFIX}right_finger"),
        }
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._scene_option = mujoco.MjvOption()

    @staticmethod
    def build(spec: SceneSpec, timestep: float = 0.002) -> "SimWorld":
        """Compile the workcell for in-process simulation, arm at home, cubes at rest."""
        model = compiled_workcell(tuple(spec.boards))
        model.opt.timestep = timestep
        data = mujoco.MjData(model)
        apply_layout(model, data, spec)
        world = SimWorld(spec, model, data)
        data.qpos[world.arm_qpos] = HOME_JOINTS
        data.qpos[world.finger_qpos] = 0.04
        mujoco.mj_forward(model, data)
        return world

    # ---- state ---------------------------------------------------------------------------------
    def object_pose(self, name: str) -> Pose:
        if name not in self.cube_bodies:
            raise KeyError(f"no object named {name!r}; objects: {', '.join(self.cube_bodies)}")
        b = self.cube_bodies[name]
        return Pose(tuple(float(v) for v in self.data.xpos[b]), tuple(float(v) for v in self.data.xquat[b]))

    def object_poses(self) -> dict[str, Pose]:
        return {n: self.object_pose(n) for n in self.cube_bodies}

    def object_pose_array(self) -> np.ndarray:
        """(n_objects, 7) positions and quaternions, in scene order."""
        return np.stack([self.object_pose(n).to_array() for n in self.cube_bodies])

    def tcp_pose(self) -> Pose:
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self.tcp_site])
        return Pose(tuple(float(v) for v in self.data.site_xpos[self.tcp_site]), tuple(float(v) for v in quat))

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self.arm_qpos].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self.arm_dof].copy()

    def gripper_width(self) -> float:
        return float(self.data.qpos[self.finger_qpos].sum())

    def touching_fingers(self) -> set[str]:
        """Objects in contact with both fingers (i.e. squeezed between them)."""
        touching: dict[str, set[int]] = {}
        by_body = {b: n for n, b in self.cube_bodies.items()}
        for i in range(self.data.ncon):
            con = self.data.contact[i]
            b1 = self.model.geom_bodyid[con.geom1]
            b2 = self.model.geom_bodyid[con.geom2]
            for finger, other in ((b1, b2), (b2, b1)):
                if finger in self.finger_bodies and other in by_body:
                    touching.setdefault(by_body[other], set()).add(finger)
        return {n for n, fingers in touching.items() if len(fingers) == 2}

    def resting_on_table(self, name: str, tol: float = 0.01) -> bool:
        return abs(self.object_pose(name).position[2] - CUBE_SIZE / 2) < tol

    # ---- cameras -------------------------------------------------------------------------------
    def _camera_id(self, camera: str) -> int:
        if camera not in CAMERA_NAMES:
            raise KeyError(f"no camera named {camera!r}; cameras: {', '.join(CAMERA_NAMES)}")
        return mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)

    def render(self, camera: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W, 3) uint8 RGB and, if the scene's camera settings ask for it, (H, W) uint16 depth in mm."""
        cam = self._camera_id(camera)
        settings = self.spec.cameras
        key = (settings.height, settings.width)
        renderer = self._renderers.get(key)
        if renderer is None:
            renderer = mujoco.Renderer(self.model, settings.height, settings.width)
            self._renderers[key] = renderer
        renderer.disable_depth_rendering()
        renderer.update_scene(self.data, camera=cam, scene_option=self._scene_option)
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        rgb = renderer.render().copy()
        depth = None
        if settings.depth:
            renderer.enable_depth_rendering()
            metres = renderer.render()
            renderer.disable_depth_rendering()
            depth = np.clip(metres * 1000.0, 0, 65535).astype(np.uint16)
        return rgb, depth

    def camera_intrinsics(self, camera: str) -> dict:
        """Pinhole intrinsics (pixels) of a camera at the scene's resolution."""
        cam = self._camera_id(camera)
        w, h = self.spec.cameras.width, self.spec.cameras.height
        fy = 0.5 * h / np.tan(np.deg2rad(self.model.cam_fovy[cam]) / 2)
        return {"fx": float(fy), "fy": float(fy), "cx": (w - 1) / 2, "cy": (h - 1) / 2, "width": w, "height": h}

    def camera_pose(self, camera: str) -> Pose:
        """The camera's optical frame in the base frame, from the last kinematics pass (as rendered)."""
        cam = self._camera_id(camera)
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, self.data.cam_xmat[cam])
        quat = quat_multiply(quat, _MUJOCO_TO_OPTICAL)
        return Pose(tuple(float(v) for v in self.data.cam_xpos[cam]), tuple(float(v) for v in quat))

    def camera_mount(self, camera: str) -> CameraMount:
        """How a camera is held: "base" on the world body, "hand" (relative to the TCP) on the TCP's body."""
        body = self.model.cam_bodyid[self._camera_id(camera)]
        if body == 0:
            return CameraMount("base", self.camera_pose(camera))
        if body != self.model.site_bodyid[self.tcp_site]:
            raise ValueError(f"camera {camera!r} is on a body that moves relative to the TCP")
        return CameraMount("hand", self.tcp_pose().inverse().compose(self.camera_pose(camera)))

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()
