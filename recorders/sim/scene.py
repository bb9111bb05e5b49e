"""The simulated workcell's MJCF: the scene description (recorders/cell/scene.py) put on a table.

A `SceneSpec` (plain data, saved in every episode) says which cubes and zones exist, their colours
and poses, and the camera settings. `add_workcell` writes that spec into a franky-sim
`MujocoSimulator` scene tree, so the in-process arm (recorders/arms/sim_arm.py) and the franky-sim
server process (recorders/sim/franky_sim_server.py) run the very same scene around the very same
FR3 + Franka hand model that franky-sim ships.

Calibration boards (`spec.boards`, recorders/perception/charuco.py) are thin textured boxes, visual
only (no contacts, no mass): "table" lies on the table where the wrist camera looks down on it,
"hand" is fixed to the hand beside the fingers and faces the front camera. Their texture is the
board's image, written once per user into a cache folder; `board_pose_in_geom` says where the board
frame (OpenCV's) lies on the box, so the boards' true poses are known to tests.
"""
from __future__ import annotations

import hashlib
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from recorders.cell.scene import CUBE_SIZE, ZONE_SIZE, TABLE_TOP_Z, MAX_CUBES, MAX_ZONES, COLOURS, SceneSpec
from recorders.pose import Pose

ROBOT_PREFIX = "robot0_"  # franky-sim prefixes every name of its first robot with this
CUBE_MASS = 0.05  # kg
TCP_OFFSET = 0.1034  # m, from the hand body to the point between the fingertips
PARKED_Z = -0.75 + CUBE_SIZE / 2  # unused cube slots rest on the floor, out of every camera's view
# The wrist camera on the hand body (MuJoCo camera axes: x right, y up, looking along -z).
WRIST_CAMERA_POS = (0.065, 0.0, 0.045)
WRIST_CAMERA_XYAXES = (0.0, 1.0, 0.0, 0.958, 0.0, 0.287)

# Calibration boards: the box geoms' poses (the table board relative to the base, the hand board
# relative to the hand body). The table board lies flat with its long side along y, above the zones;
# the hand board stands off the hand's +x side (where the wrist camera sits, behind its view), tilted
# to face the front camera when the hand points down.
BOARD_HALF_THICKNESS = 0.0005
TABLE_BOARD_CENTRE = (0.5, 0.0, TABLE_TOP_Z + 0.0012)  # above the zones
TABLE_BOARD_AXES = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # columns: the box's x, y, z
HAND_BOARD_CENTRE = (0.1, 0.0, 0.06)  # in the hand body's frame (the TCP is TCP_OFFSET along its z)
_TILT = np.deg2rad(33.0)  # the board's face turned from the hand's +x towards the flange
HAND_BOARD_AXES = np.array([[0.0, np.sin(_TILT), np.cos(_TILT)], [1.0, 0.0, 0.0], [0.0, np.cos(_TILT), -np.sin(_TILT)]])
BOARD_TEXTURE_PIXELS_PER_SQUARE = 96


def cube_body_name(slot: int) -> str:
    return f"cube_{slot}"


def zone_geom_name(slot: int) -> str:
    return f"zone_{slot}"


def _cube_pose(spec: SceneSpec, slot: int) -> tuple[float, float, float, float]:
    """x, y, z, yaw of a cube slot; unused slots rest on the floor behind the robot."""
    if slot < len(spec.cubes):
        c = spec.cubes[slot]
        return c.position[0], c.position[1], TABLE_TOP_Z + CUBE_SIZE / 2, c.yaw
    return -0.6 - 0.1 * slot, 1.2, PARKED_Z, 0.0


def _cube_rgba(spec: SceneSpec, slot: int) -> tuple[float, ...]:
    return (*COLOURS[spec.cubes[slot].colour], 1.0) if slot < len(spec.cubes) else (0.5, 0.5, 0.5, 1.0)


def _zone_xy(spec: SceneSpec, slot: int) -> tuple[float, float]:
    return spec.zones[slot].position if slot < len(spec.zones) else (-0.6, -1.2 - 0.2 * slot)


def _zone_rgba(spec: SceneSpec, slot: int) -> tuple[float, ...]:
    if slot >= len(spec.zones):
        return (0.0, 0.0, 0.0, 0.0)
    r, g, b = COLOURS[spec.zones[slot].colour]
    return (0.1 + 0.6 * r, 0.1 + 0.6 * g, 0.1 + 0.6 * b, 1.0)


def apply_layout(model, data, spec: SceneSpec) -> None:
    """Move and colour the cube and zone slots of a compiled workcell model to match `spec`.

    Only qpos and per-geom colours/positions change, so a model compiled once serves every scene
    with the same camera settings (compiling the FR3 meshes takes ~0.4 s).
    """
    import mujoco

    if len(spec.cubes) > MAX_CUBES or len(spec.zones) > MAX_ZONES:
        raise ValueError(f"at most {MAX_CUBES} cubes and {MAX_ZONES} zones fit the workcell")
    for i in range(MAX_ZONES):
        g = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, zone_geom_name(i))
        model.geom_pos[g, :2] = _zone_xy(spec, i)
        model.geom_size[g, :2] = (spec.zones[i].size / 2,) * 2 if i < len(spec.zones) else ZONE_SIZE / 2
        model.geom_rgba[g] = _zone_rgba(spec, i)
    for i in range(MAX_CUBES):
        j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, cube_body_name(i) + "_joint")
        g = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, cube_body_name(i) + "_geom")
        x, y, z, yaw = _cube_pose(spec, i)
        adr = model.jnt_qposadr[j]
        data.qpos[adr:adr + 7] = (x, y, z, np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        data.qvel[model.jnt_dofadr[j]:model.jnt_dofadr[j] + 6] = 0.0
        model.geom_rgba[g] = _cube_rgba(spec, i)


def _look_at_xyaxes(pos, target) -> str:
    f = np.asarray(target, float) - np.asarray(pos, float)
    f /= np.linalg.norm(f)
    right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, f)
    return " ".join(f"{v:.5f}" for v in (*right, *up))


def _fmt(*values: float) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def add_workcell(scene: ET.Element, worldbody: ET.Element, spec: SceneSpec) -> None:
    """Put the table, zones, cubes, lights and cameras of `spec` into a franky-sim scene tree.

    `scene` and `worldbody` are `MujocoSimulator.scene` / `.worldbody` after `add_robot()`.
    """
    option = scene.find("option")
    if option is None:
        option = ET.SubElement(scene, "option")
    # Elliptic cones with a high impratio keep friction grasps from slipping (MuJoCo docs' advice).
    option.set("cone", "elliptic")
    option.set("impratio", "10")

    from recorders.sim.render_meshes import use_light_visual_meshes

    use_light_visual_meshes(scene, Path(scene.find("compiler").get("meshdir")))

    visual = scene.find("visual")
    quality = visual.find("quality")
    quality.set("shadowsize", "0")  # shadows cost ~8x render time on the CPU
    quality.set("offsamples", "0")
    ET.SubElement(visual, "global", offwidth="1920", offheight="1080")

    for ground in worldbody.findall("geom"):
        if ground.get("name") == "ground":
            ground.set("pos", _fmt(0, 0, -0.75))  # the floor; the table top is z = 0

    asset = scene.find("asset")
    ET.SubElement(asset, "texture", name="table_wood", type="2d", builtin="flat", rgb1="0.72 0.6 0.45",
                  rgb2="0.65 0.52 0.38", width="64", height="64")
    ET.SubElement(asset, "material", name="table", texture="table_wood", texrepeat="4 4", specular="0.05")

    ET.SubElement(worldbody, "geom", name="table", type="box", size=_fmt(0.55, 0.75, 0.02),
                  pos=_fmt(0.4, 0.0, TABLE_TOP_Z - 0.02), material="table", friction="0.8 0.005 0.0001")
    ET.SubElement(worldbody, "light", name="table_light", pos=_fmt(0.5, 0.0, 1.6), dir=_fmt(0, 0, -1),
                  directional="false", diffuse="0.3 0.3 0.3", castshadow="false")

    # Fixed slots (MAX_ZONES zones, MAX_CUBES cubes) so one compiled model serves every layout:
    # `apply_layout` moves and colours them; unused slots are parked out of sight.
    for i in range(MAX_ZONES):
        ET.SubElement(worldbody, "geom", name=zone_geom_name(i), type="box", contype="0", conaffinity="0",
                      size=_fmt(ZONE_SIZE / 2, ZONE_SIZE / 2, 0.0005), pos=_fmt(*_zone_xy(spec, i), TABLE_TOP_Z + 0.0005),
                      rgba=_fmt(*_zone_rgba(spec, i)))
    h = CUBE_SIZE / 2
    for i in range(MAX_CUBES):
        x, y, z, yaw = _cube_pose(spec, i)
        body = ET.SubElement(worldbody, "body", name=cube_body_name(i), pos=_fmt(x, y, z), euler=_fmt(0, 0, yaw))
        ET.SubElement(body, "freejoint", name=cube_body_name(i) + "_joint")
        ET.SubElement(body, "geom", name=cube_body_name(i) + "_geom", type="box", size=_fmt(h, h, h),
                      mass=_fmt(CUBE_MASS), rgba=_fmt(*_cube_rgba(spec, i)), friction="1.2 0.01 0.001",
                      condim="4", solref="0.01 1", priority="1")

    front_pos = (1.25, 0.0, 0.62)
    ET.SubElement(worldbody, "camera", name="front", pos=_fmt(*front_pos), fovy="42",
                  xyaxes=_look_at_xyaxes(front_pos, (0.45, 0.0, 0.0)))

    # The finger meshes overlap when the hand closes on nothing; their contact then jams the
    # fingers shut past their joint limit. Fingers never need to touch each other.
    contact = scene.find("contact")
    if contact is None:
        contact = ET.SubElement(scene, "contact")
    ET.SubElement(contact, "exclude", body1=ROBOT_PREFIX + "left_finger", body2=ROBOT_PREFIX + "right_finger")

    hand = next(b for b in worldbody.iter("body") if b.get("name") == ROBOT_PREFIX + "hand")
    ET.SubElement(hand, "site", name="tcp", pos=_fmt(0, 0, TCP_OFFSET), size="0.005", rgba="1 0 0 0", group="4")
    # A wrist camera behind the fingers, looking along the tool axis and slightly inwards.
    ET.SubElement(hand, "camera", name="wrist", pos=_fmt(*WRIST_CAMERA_POS), fovy="70",
                  xyaxes=_fmt(*WRIST_CAMERA_XYAXES))
    _add_boards(asset, worldbody, hand, spec)


# ---- calibration boards --------------------------------------------------------------------------------
def board_spec(placement: str):
    """The ChArUco board (recorders/perception/charuco.py) the simulated workcell shows at `placement`."""
    from recorders.perception.charuco import HAND_BOARD, TABLE_BOARD

    return {"table": TABLE_BOARD, "hand": HAND_BOARD}[placement]


def board_pose_in_geom(board) -> Pose:
    """The board frame (OpenCV's: origin at the grid's top-left corner, z into the board) on its box:
    the texture's image lies on the box's +z face, its top edge towards the box's +y."""
    w, h = board.grid_size_m
    return Pose((-w / 2, h / 2, BOARD_HALF_THICKNESS), (0.0, 1.0, 0.0, 0.0))  # half turn about x


def board_pose(placement: str) -> Pose:
    """The true board frame: in the base frame ("table"), or relative to the TCP ("hand")."""
    from recorders.perception.hand_eye import pose_from_matrix

    on_box = board_pose_in_geom(board_spec(placement))
    if placement == "table":
        return pose_from_matrix(TABLE_BOARD_AXES, TABLE_BOARD_CENTRE).compose(on_box)
    geom_in_tcp = pose_from_matrix(HAND_BOARD_AXES, np.asarray(HAND_BOARD_CENTRE) - (0.0, 0.0, TCP_OFFSET))
    return geom_in_tcp.compose(on_box)


def wrist_camera_in_tcp() -> Pose:
    """The wrist camera's optical frame relative to the TCP, as built (what calibrating it should find)."""
    from recorders.perception.hand_eye import pose_from_matrix

    x, y = np.asarray(WRIST_CAMERA_XYAXES[:3]), np.asarray(WRIST_CAMERA_XYAXES[3:])
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    optical = np.column_stack([x, -y, -np.cross(x, y)])  # y down, z along the view
    return pose_from_matrix(optical, np.asarray(WRIST_CAMERA_POS) - (0.0, 0.0, TCP_OFFSET))


def board_texture_file(board, pixels_per_square: int = BOARD_TEXTURE_PIXELS_PER_SQUARE) -> Path:
    """A PNG of the board for MuJoCo to load, made once per user and board (atomically: concurrent
    processes each write their own temporary file and rename it)."""
    from recorders.perception.charuco import board_png
    from recorders.sim.render_meshes import cache_dir

    key = json.dumps({**board.to_dict(), "pixels_per_square": pixels_per_square}, sort_keys=True)
    path = cache_dir().parent / "boards" / f"charuco-{hashlib.sha1(key.encode()).hexdigest()[:16]}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(board_png(board, pixels_per_square))
        os.replace(tmp, path)
    return path


def _add_boards(asset: ET.Element, worldbody: ET.Element, hand: ET.Element, spec: SceneSpec) -> None:
    """The calibration boards of `spec`: textured boxes without contacts or mass."""
    for placement in spec.boards:
        board = board_spec(placement)
        name = f"board_{placement}"
        ET.SubElement(asset, "texture", name=name, type="2d", file=str(board_texture_file(board)))
        ET.SubElement(asset, "material", name=name, texture=name, texrepeat="1 1", texuniform="false",
                      specular="0", shininess="0", reflectance="0")
        w, h = board.outer_size_m
        parent, centre, axes = ((worldbody, TABLE_BOARD_CENTRE, TABLE_BOARD_AXES) if placement == "table"
                                else (hand, HAND_BOARD_CENTRE, HAND_BOARD_AXES))
        ET.SubElement(parent, "geom", name=name, type="box", size=_fmt(w / 2, h / 2, BOARD_HALF_THICKNESS),
                      pos=_fmt(*centre), xyaxes=_fmt(*axes[:, 0], *axes[:, 1]), material=name,
                      contype="0", conaffinity="0", mass="0", group="1")
