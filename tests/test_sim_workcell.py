"""The simulated workcell: seeded scenes, IK tracking, physical grasping, cameras; the workcell registry."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recorders.arms.base import ArmCommand
from recorders.arms.sim_arm import SimArm
from recorders.pose import Pose
from recorders.cell.scene import CUBE_SIZE, CameraSettings, SceneSpec, sample_layout
from recorders.cell.registry import ROBOT_KINDS, SCRIPTED_DEMO_KINDS, WORKCELL_KINDS, open_workcell
from recorders.cell.sim_workcell import SimWorkcell

ROOT = Path(__file__).resolve().parents[1]


def scene(seed=0, cameras=CameraSettings()):
    return sample_layout(np.random.default_rng(seed), ["red", "blue", "green", "yellow"], ["purple", "orange"],
                         cameras, seed=seed)


def test_layout_is_seeded_and_separated():
    a, b, c = scene(3), scene(3), scene(4)
    assert a == b and a != c
    assert SceneSpec.from_json(a.to_json()) == a
    pts = np.array([cube.position for cube in a.cubes])
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(len(pts))
    assert d.min() > 0.08
    for cube in a.cubes:
        for z in a.zones:
            assert max(abs(cube.position[0] - z.position[0]), abs(cube.position[1] - z.position[1])) > z.size / 2


def test_repeated_colours_get_numbered_names():
    spec = sample_layout(np.random.default_rng(0), ["red", "red", "blue"], ["green"])
    assert spec.object_names == ["red cube 1", "red cube 2", "blue cube"]


def drive(arm, target, closed=False, ticks=15):
    for _ in range(ticks):
        arm.command(ArmCommand(target, closed))
        arm.wait_tick()


def test_sim_arm_tracks_cartesian_targets():
    arm = SimArm(scene())
    arm.connect()
    try:
        for xyz, yaw in [((0.5, 0.1, 0.2), 0.3), ((0.4, -0.2, 0.1), -0.5), ((0.6, 0.0, 0.3), 0.0)]:
            target = Pose.top_down(xyz, yaw)
            drive(arm, target, ticks=20)
            s = arm.state()
            assert np.linalg.norm(s.ee_pose.xyz - xyz) < 0.003
            assert abs(s.time - round(s.time * 10) / 10) < 1e-6  # ticks advance simulated time exactly
    finally:
        arm.disconnect()


def test_grasp_is_physical_friction_holds_the_cube():
    spec = scene(1)
    arm = SimArm(spec)
    arm.connect()
    w = arm.world
    cube = spec.cubes[0]
    p = w.object_pose(cube.name).xyz
    above = Pose.top_down((p[0], p[1], 0.15), cube.yaw)
    drive(arm, above)
    drive(arm, above.with_position((p[0], p[1], p[2])), ticks=12)
    drive(arm, above.with_position((p[0], p[1], p[2])), closed=True, ticks=6)
    assert w.touching_fingers() == {cube.name}
    assert 0.9 * CUBE_SIZE < arm.state().gripper_width < 1.01 * CUBE_SIZE  # squeezed, not closed through it
    drive(arm, above.with_position((0.5, 0.0, 0.2)), closed=True, ticks=20)
    held = w.object_pose(cube.name).xyz
    assert held[2] > 0.15 and np.linalg.norm(held - arm.state().ee_pose.xyz) < 0.02
    # No weld: with the gripper opened the cube falls back to the table.
    drive(arm, above.with_position((0.5, 0.0, 0.2)), closed=False, ticks=10)
    assert w.object_pose(cube.name).xyz[2] < CUBE_SIZE
    arm.disconnect()


def test_cameras_render_rgb_and_depth_at_the_configured_size():
    cell = SimWorkcell(scene(2, CameraSettings(96, 64, depth=True)))
    try:
        for cam in cell.cameras:
            rgb, depth = cell.render(cam)
            assert rgb.shape == (64, 96, 3) and rgb.dtype == np.uint8
            assert depth.shape == (64, 96) and depth.dtype == np.uint16
            assert rgb.std() > 5  # a real image, not a blank frame
            assert 100 < np.median(depth) < 3000  # millimetres to the table
        assert cell.camera_intrinsics("front")["width"] == 96
    finally:
        cell.close()


def test_unknown_robot_kind_is_a_clear_error():
    from recorders.arms.base import ArmError

    with pytest.raises(ArmError, match="unknown robot 'ur5'; choose one of: sim, franky-sim, franky"):
        open_workcell("ur5", scene())


def test_the_registry_describes_every_robot_kind():
    assert ROBOT_KINDS == ("sim", "franky-sim", "franky")
    assert SCRIPTED_DEMO_KINDS == ("sim", "franky-sim")
    assert [k for k in ROBOT_KINDS if WORKCELL_KINDS[k].needs_ip] == ["franky"]
    assert [k for k in ROBOT_KINDS if WORKCELL_KINDS[k].stepped] == ["sim"]
    assert all(kind.name == name and kind.description for name, kind in WORKCELL_KINDS.items())


def test_a_real_arm_needs_its_address_before_anything_is_imported():
    from recorders.arms.base import ArmError

    with pytest.raises(ArmError, match="needs the arm's address"):
        open_workcell("franky", None, 10.0)


def test_the_sim_workcell_exposes_only_the_safety_wrapped_arm():
    from recorders.safety import SafeArm

    with open_workcell("sim", scene(), 10.0) as cell:
        assert isinstance(cell, SimWorkcell) and cell.kind == "sim" and cell.clock_name == "sim"
        assert isinstance(cell.arm, SafeArm) and cell.arm.stepped == WORKCELL_KINDS["sim"].stepped
        assert not any(isinstance(v, SimArm) for k, v in vars(cell).items() if not k.startswith("_"))


def test_a_workcell_opened_from_plain_python_renders_without_mujoco_gl(tmp_path):
    """The rendering backend is chosen where the simulated workcell is opened, not only by the CLI."""
    code = ("import numpy as np\n"
            "from recorders.cell.registry import open_workcell\n"
            "from recorders.cell.scene import sample_layout\n"
            "spec = sample_layout(np.random.default_rng(0), ['red'], ['blue'])\n"
            "with open_workcell('sim', spec, 10.0) as cell:\n"
            "    rgb, _ = cell.render('front')\n"
            "print(rgb.shape, int(rgb.std() > 5))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[0] == "(128, 128, 3) 1"


def test_measured_tool_speed_stays_bounded_under_random_commands():
    """Unreachable random orientations make IK swing the wrist; the tool must not follow at speed."""
    from recorders.arms.sim_arm import MAX_TCP_SPEED

    rng = np.random.default_rng(0)
    cell = SimWorkcell(scene(5))
    try:
        prev = cell.arm.state().ee_pose.xyz
        fastest = 0.0
        for _ in range(150):
            q = rng.normal(size=4)
            target = Pose(tuple(rng.uniform([0.1, -0.6, -0.1], [0.9, 0.6, 0.8])), tuple(q / np.linalg.norm(q)))
            cell.arm.command(ArmCommand(target, bool(rng.integers(2)), 20.0))
            cell.arm.wait_tick()
            now = cell.arm.state().ee_pose.xyz
            fastest = max(fastest, np.linalg.norm(now - prev) / cell.arm.control_period)
            prev = now
        assert fastest < 1.1 * MAX_TCP_SPEED
    finally:
        cell.close()


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """(H, W) name of the scene colour (or "table") each pixel's chromaticity is nearest to; shading
    changes a colour's brightness, not its direction in RGB."""
    from recorders.cell.scene import COLOURS

    palette = {**COLOURS, "table": (0.72, 0.6, 0.45)}
    names = np.array(list(palette))
    ref = np.array(list(palette.values()))  # (K, 3)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    pix = rgb.astype(float) + 1e-6  # (H, W, 3)
    pix /= np.linalg.norm(pix, axis=-1, keepdims=True)
    return names[np.argmax(pix @ ref.T, axis=-1)]  # (H, W)


def blob_at(mask: np.ndarray, uv, radius: int = 3) -> np.ndarray | None:
    """(H, W) the 4-connected region of `mask` at pixel `uv`, or at the nearest pixel of `mask` within
    `radius` pixels; None when there is none."""
    vs, us = np.nonzero(mask)
    d = np.hypot(us - uv[0], vs - uv[1])
    if not d.size or d.min() > radius:
        return None
    blob = np.zeros_like(mask)
    blob[vs[d.argmin()], us[d.argmin()]] = True
    while True:
        grown = blob.copy()
        grown[1:] |= blob[:-1]
        grown[:-1] |= blob[1:]
        grown[:, 1:] |= blob[:, :-1]
        grown[:, :-1] |= blob[:, 1:]
        grown &= mask
        if (grown == blob).all():
            return blob
        blob = grown


def test_cube_centres_project_onto_their_colour_in_both_cameras():
    """Camera poses (OpenCV optical frame) and intrinsics agree with what MuJoCo renders."""
    from recorders.cell.camera_geometry import project

    spec = scene(0)
    cell = SimWorkcell(spec)
    try:
        # At home, and with the hand moved and turned (the wrist camera's pose changes with it).
        for target in (None, Pose.top_down((0.45, 0.05, 0.3), 0.5)):
            if target is not None:
                drive(cell.arm, target, ticks=20)
            seen = {}
            for cam in cell.cameras:
                rgb, _ = cell.render(cam)
                names = list(cell.object_poses())
                centres = np.stack([p.xyz for p in cell.object_poses().values()])  # (N, 3)
                uv, visible = project(centres, cell.camera_pose(cam), cell.camera_intrinsics(cam))
                seen[cam] = int(visible.sum())
                colours = colour_names(rgb)
                for name, (u, v), vis in zip(names, uv, visible):
                    if vis:
                        blob = blob_at(colours == spec.cube(name).colour, (u, v))
                        assert blob is not None, f"{cam}: no {name} pixel within 3 px of {u:.1f}, {v:.1f}"
                        # The centre lands in the middle of the cube's image (perspective moves it < 1 px here).
                        bv, bu = np.nonzero(blob)
                        assert np.hypot(bu.mean() - u, bv.mean() - v) < 2.0, f"{cam}: {name}"
            assert seen["front"] == len(spec.cubes) and seen["wrist"] >= 2, seen
    finally:
        cell.close()


def test_camera_poses_use_the_optical_frame():
    """x right, y down, z forward: the front camera looks at the table, its image's up is the world's up."""
    cell = SimWorkcell(scene(0))
    try:
        front = cell.camera_pose("front").rotation_matrix()
        ahead = np.array([0.45, 0.0, 0.0]) - cell.camera_pose("front").xyz
        assert front[:, 2] @ ahead / np.linalg.norm(ahead) > 0.999  # z towards the point it was aimed at
        assert front[2, 1] < 0  # y (image down) has a downward world component
        assert front[1, 0] > 0.99  # x (image right) is base +y: the camera faces the robot
        wrist = cell.camera_pose("wrist").rotation_matrix()
        assert wrist[2, 2] < -0.9  # at home the wrist camera looks down, like the tool
    finally:
        cell.close()


def test_the_wrist_pose_from_the_stored_mount_and_recorded_ee_pose_matches_the_simulator(tmp_path):
    from recorders.cell.camera_geometry import CameraMount, camera_pose_at
    from recorders.episode_file import EpisodeMeta, open_episode
    from recorders.episode_writer import EpisodeWriter
    from recorders.observation import append_tick, observe, stream_specs
    from recorders.pose import quat_angle

    spec = scene(3)
    cell = SimWorkcell(spec, control_hz=10.0)
    writer = EpisodeWriter(tmp_path / "ep.h5", EpisodeMeta("camera", "move", "sim", 10.0, clock="sim", scene=spec),
                           stream_specs(cell, "rgb", 10.0), drop_when_full=False)
    truth = {"front": [], "wrist": []}
    targets = [Pose.top_down((0.5, 0.1 * np.sin(i), 0.25 + 0.05 * np.cos(i)), 0.4 * np.sin(0.7 * i)) for i in range(12)]
    try:
        for i, target in enumerate(targets):
            ob = observe(cell, cameras=True)
            for cam in truth:
                truth[cam].append(cell.camera_pose(cam))
            append_tick(writer, 0.1 * i, cell.arm.command(ArmCommand(target, False)), ob)
            cell.arm.wait_tick()
        path = writer.finish(None, [])
    finally:
        cell.close()
    with open_episode(path) as ep:
        ee_poses = ep.stream_data("ee_pose")[:]  # (T, 7) float32
        for cam in truth:
            mount = CameraMount.from_meta(ep.stream_spec(f"{cam}_rgb").meta)
            assert mount.frame == {"front": "base", "wrist": "hand"}[cam]
            assert len(ee_poses) == len(truth[cam])
            for row, want in zip(ee_poses, truth[cam]):
                got = camera_pose_at(mount, Pose.from_array(row))
                assert np.linalg.norm(got.xyz - want.xyz) < 1e-3
                assert np.degrees(quat_angle(np.asarray(got.quat), np.asarray(want.quat))) < 0.5
    moved = max(np.linalg.norm(p.xyz - truth["wrist"][0].xyz) for p in truth["wrist"])
    assert moved > 0.05  # the wrist camera really moved during the episode
