"""The simulated workcell's MJCF: the scene description (recorders/cell/scene.py) put on a table.

A `SceneSpec` (plain data, saved in every episode) says which cubes and zones exist, their colours
and poses, and the camera settings. `add_workcell` writes that spec into a franky-sim
`MujocoSimulator` scene tree, so the in-process arm (recorders/arms/sim_arm.py) and the franky-sim
server process (recorders/sim/franky_sim_server.py) run the very same scene around the very same
FR3 + Franka hand model that franky-sim ships.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from recorders.cell.scene import CUBE_SIZE, ZONE_SIZE, TABLE_TOP_Z, MAX_CUBES, MAX_ZONES, COLOURS, SceneSpec

ROBOT_PREFIX = "robot0_"  # franky-sim prefixes every name of its first robot with this
CUBE_MASS = 0.05  # kg
TCP_OFFSET = 0.1034  # m, from the hand body to the point between the fingertips
PARKED_Z = -0.75 + CUBE_SIZE / 2  # unused cube slots rest on the floor, out of every camera's view


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
    ET.SubElement(hand, "camera", name="wrist", pos=_fmt(0.065, 0.0, 0.045), fovy="70",
                  xyaxes="0 1 0 0.958 0 0.287")
