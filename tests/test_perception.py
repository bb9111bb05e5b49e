"""Perceived objects: teaching by a click, the taught-scene file, the RGB-D tracker, and the workcell
whose object poses come from it (recorders/perception/teaching.py, taught_scene.py, tracker.py,
perceived_workcell.py), on frames rendered by the simulated workcell."""
from __future__ import annotations

import json

import numpy as np
import pytest

from recorders.cell.camera_geometry import project
from recorders.cell.scene import CUBE_SIZE, CameraSettings
from recorders.cell.sim_workcell import SimWorkcell
from recorders.perception.camera_frame import CameraFrame, frame_from_workcell
from recorders.perception.perceived_workcell import (PerceivedWorkcell, auto_teach, open_perceived_workcell,
                                                     perceived_scene_spec)
from recorders.perception.taught_scene import (FORMAT_VERSION, TAUGHT_SCENE_FILE, DuplicateNameError, EmptyNameError,
                                               TaughtScene, TaughtSceneError, TeachingError, load_taught_scene,
                                               save_taught_scene)
from recorders.perception.teaching import (NoDepthError, NothingThereError, NotTableError, OutsideImageError,
                                           segment_object, teach_object, teach_target)
from recorders.perception.tracker import ObjectTracker
from recorders.task_suite import TaskMonitor, make_instance


SHARP = CameraSettings(320, 240, depth=True)  # a cube ~12 pixels wide in the front camera


def _cell(task: str = "pick_place", seed: int = 0, cameras: CameraSettings = SHARP) -> SimWorkcell:
    return SimWorkcell(make_instance(task, seed, cameras=cameras).scene)


def _click(frame: CameraFrame, point) -> tuple[float, float] | None:
    uv, inside = project(np.asarray(point, dtype=float)[None], frame.pose, frame.intrinsics)
    return (float(uv[0, 0]), float(uv[0, 1])) if inside[0] else None


def _one_line(e: pytest.ExceptionInfo) -> str:
    message = str(e.value)
    assert message and "\n" not in message
    return message


@pytest.fixture(scope="module")
def scene_frames():
    """A pick_place scene at 320x240 with depth: its spec, true poses and one frame per camera."""
    cell = _cell()
    try:
        yield cell.spec, cell.object_poses(), {cam: frame_from_workcell(cell, cam) for cam in cell.cameras}
    finally:
        cell.close()


def test_a_click_on_a_cube_teaches_that_cube(scene_frames):
    spec, truth, frames = scene_frames
    taught = 0
    for cam, frame in frames.items():
        for cube in spec.cubes:
            uv = _click(frame, truth[cube.name].xyz + (0, 0, CUBE_SIZE / 2))
            if uv is None:
                continue
            model = teach_object(cube.name, frame, *uv)
            assert model.name == cube.name and model.colour == cube.colour, (cam, cube)
            segment = segment_object(frame, *uv)  # what the click selected: inside the cube's outline
            corners, _ = project(_corners(truth[cube.name]), frame.pose, frame.intrinsics)
            vv, uu = np.nonzero(segment.mask)
            assert segment.mask.sum() == len(segment.points) >= 20
            assert uu.min() >= corners[:, 0].min() - 1 and uu.max() <= corners[:, 0].max() + 1
            assert vv.min() >= corners[:, 1].min() - 1 and vv.max() <= corners[:, 1].max() + 1
            assert np.allclose(model.size, CUBE_SIZE, atol=0.003), (cam, cube, model.size)
            assert np.linalg.norm(model.pose.xyz - truth[cube.name].xyz) < 0.005, (cam, cube)
            taught += 1
    assert taught >= len(spec.cubes) + 2  # every cube from the front camera, some from the wrist too


def test_wrong_clicks_are_refused_with_a_one_line_reason(scene_frames):
    spec, truth, frames = scene_frames
    front = frames["front"]
    zone = spec.zones[0]
    on_table = _click(front, (*zone.position, 0.0))
    with pytest.raises(NothingThereError) as e:
        teach_object("sponge", front, *on_table)
    assert "nothing but the table" in _one_line(e)
    cube = spec.cubes[0]
    on_cube = _click(front, truth[cube.name].xyz + (0, 0, CUBE_SIZE / 2))
    with pytest.raises(EmptyNameError) as e:
        teach_object("   ", front, *on_cube)
    _one_line(e)
    with pytest.raises(DuplicateNameError) as e:
        teach_object(cube.name, front, *on_cube, taken=[cube.name])
    assert cube.name in _one_line(e)
    with pytest.raises(OutsideImageError) as e:
        teach_object("cube", front, -5, 10)
    _one_line(e)
    holed = front.depth.copy()
    u, v = (int(round(c)) for c in on_cube)
    holed[v - 3:v + 4, u - 3:u + 4] = 0
    with pytest.raises(NoDepthError) as e:
        teach_object("cube", front._replace(depth=holed), *on_cube)
    assert "no depth" in _one_line(e)
    with pytest.raises(NotTableError) as e:
        teach_target("spot", front, *on_cube)
    _one_line(e)
    assert all(issubclass(c, ValueError) for c in (TeachingError, NothingThereError, NoDepthError, NotTableError))


def test_a_target_click_finds_the_table_point_under_it(scene_frames):
    spec, _, frames = scene_frames
    for cam, frame in frames.items():
        for zone in spec.zones:
            uv = _click(frame, (*zone.position, 0.0))
            target = teach_target(zone.name, frame, *uv, size=zone.size)
            assert np.hypot(*np.subtract(target.position[:2], zone.position)) < 0.003, (cam, zone)
            assert target.position[2] == 0.0 and target.size == zone.size
            # without depth the pixel's ray meets the table plane at the same place
            no_depth = teach_target(zone.name, frame._replace(depth=None), *uv)
            assert np.hypot(*np.subtract(no_depth.position[:2], zone.position)) < 0.002


def test_taught_scene_file_round_trip_and_errors(tmp_path):
    cell = _cell("stack", 1)
    try:
        taught = auto_teach(cell)
    finally:
        cell.close()
    assert load_taught_scene(tmp_path / "nothing_here") is None
    path = save_taught_scene(tmp_path / "franky", taught)
    assert path.name == TAUGHT_SCENE_FILE and [p.name for p in path.parent.iterdir()] == [TAUGHT_SCENE_FILE]
    again = load_taught_scene(tmp_path / "franky")
    assert again == taught and again.names == taught.names
    spec = again.scene_spec(CameraSettings(320, 240, True), seed=1)
    assert spec.object_names == cell.spec.object_names and spec.zone_names == cell.spec.zone_names
    assert [c.colour for c in spec.cubes] == [c.colour for c in cell.spec.cubes]
    assert np.allclose([c.position for c in spec.cubes], [c.position for c in cell.spec.cubes], atol=0.005)
    with pytest.raises(DuplicateNameError):
        taught.with_target(taught.targets[0])
    assert taught.without(taught.objects[0].name).names == taught.names[1:]

    path.write_text("{ not json")
    with pytest.raises(TaughtSceneError) as e:
        load_taught_scene(tmp_path / "franky")
    assert str(path) in _one_line(e) and "corrupt" in str(e.value)
    d = json.loads(taught.to_json())
    d["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(d))
    with pytest.raises(TaughtSceneError, match="newer"):
        load_taught_scene(tmp_path / "franky")
    del d["objects"][0]["size"]
    d["format_version"] = FORMAT_VERSION
    path.write_text(json.dumps(d))
    with pytest.raises(TaughtSceneError, match="malformed"):
        load_taught_scene(tmp_path / "franky")


# A version-1 file as written when the format was introduced: it must keep reading the same.
TAUGHT_SCENE_V1 = (
    '{"format": "code2act.taught_scene", "format_version": 1, "objects": [{"name": "sponge", "colour": "yellow", '
    '"rgb": [0.8, 0.7, 0.1], "base_rgb": [1.0, 0.86, 0.12], "samples": [[232, 200, 28], [120, 100, 12]], '
    '"colour_tol": 0.08, "size": [0.1, 0.07, 0.03], "pose": [0.5, 0.1, 0.015, 0.9238795, 0.0, 0.0, 0.3826834]}], '
    '"targets": [{"name": "bin", "position": [0.45, -0.2, 0.0], "size": 0.15, "colour": "orange"}], '
    '"metadata": {"taught_by": "test"}}')


def test_a_version_1_taught_scene_still_reads(tmp_path):
    (tmp_path / TAUGHT_SCENE_FILE).write_text(TAUGHT_SCENE_V1)
    scene = load_taught_scene(tmp_path)
    sponge, = scene.objects
    assert scene.names == ["sponge", "bin"] and sponge.size == (0.1, 0.07, 0.03)
    assert sponge.yaw_period == pytest.approx(np.pi)  # not square: it looks the same after half a turn
    assert np.isclose(sponge.pose.position[2], 0.015) and sponge.samples[0] == (232, 200, 28)
    spec = scene.scene_spec()
    assert spec.object_names == ["sponge"] and spec.zone_names == ["bin"] and spec.zone("bin").size == 0.15
    assert spec.cube("sponge").yaw == pytest.approx(np.pi / 4, abs=1e-6)
    assert json.loads(scene.to_json()) == json.loads(TAUGHT_SCENE_V1)


def test_tracker_finds_resting_cubes_within_a_centimetre():
    errors = []
    for task, seed in (("sort", 0), ("tower", 1), ("swap", 2)):
        cell = _cell(task, seed)
        try:
            tracker = ObjectTracker(auto_teach(cell))
            frames = {cam: frame_from_workcell(cell, cam) for cam in cell.cameras}
            tracked = tracker.update(frames)
            for name, truth in cell.object_poses().items():
                assert tracked[name].seen and tracked[name].age == 0, (task, name)
                errors.append(np.linalg.norm(tracked[name].pose.xyz - truth.xyz))
        finally:
            cell.close()
    assert np.median(errors) <= 0.01 and np.max(errors) <= 0.01, np.round(errors, 4)


def test_an_object_nobody_sees_keeps_its_last_pose(scene_frames):
    spec, truth, frames = scene_frames
    tracker = ObjectTracker(auto_teach_from_frames(spec, truth, frames))
    first = tracker.update(frames)
    hidden = spec.cubes[0].name
    # a grey hand in front of the cube, nearer the camera, in every view
    covered = {}
    for cam, f in frames.items():
        rgb, depth = f.rgb.copy(), f.depth.copy()
        uv, inside = project(_corners(truth[hidden]), f.pose, f.intrinsics)
        if inside.any():
            (u0, v0), (u1, v1) = np.floor(np.nanmin(uv, 0)).astype(int) - 2, np.ceil(np.nanmax(uv, 0)).astype(int) + 2
            rgb[max(v0, 0):v1, max(u0, 0):u1] = 90
            depth[max(v0, 0):v1, max(u0, 0):u1] = np.maximum(depth[max(v0, 0):v1, max(u0, 0):u1].min() - 50, 1)
        covered[cam] = f._replace(rgb=rgb, depth=depth)
    for age in (1, 2):
        now = tracker.update(covered)
        assert not now[hidden].seen and now[hidden].age == age
        assert now[hidden].pose == first[hidden].pose
        assert all(now[c.name].seen for c in spec.cubes[1:])
    back = tracker.update(frames)
    assert back[hidden].seen and np.linalg.norm(back[hidden].pose.xyz - truth[hidden].xyz) < 0.005


def _corners(pose) -> np.ndarray:
    """(8, 3) the corners of a cube at `pose`, base frame."""
    h = CUBE_SIZE / 2
    local = np.array([[x, y, z] for x in (-h, h) for y in (-h, h) for z in (-h, h)])
    return pose.xyz + local @ pose.rotation_matrix().T


def auto_teach_from_frames(spec, truth, frames) -> TaughtScene:
    """What auto_teach does, from frames already rendered: click each cube's top in the front view."""
    scene = TaughtScene()
    for cube in spec.cubes:
        uv = _click(frames["front"], truth[cube.name].xyz + (0, 0, CUBE_SIZE / 2))
        scene = scene.with_object(teach_object(cube.name, frames["front"], *uv, taken=scene.names))
    return scene


def test_perceived_workcell_renders_each_camera_once_per_tick():
    from recorders.observation import observe

    inst = make_instance("pick_place", 3)
    with open_perceived_workcell("sim", inst.scene, 10.0) as cell:
        assert isinstance(cell, PerceivedWorkcell)
        assert cell.spec.object_names == inst.scene.object_names and cell.spec.zone_names == inst.scene.zone_names
        assert cell.inner.spec.cameras == CameraSettings(depth=True) == cell.spec.cameras  # 128x128, with depth
        cell.arm.wait_tick()  # past the tick whose frames taught it
        renders = []
        inner_render = cell.inner.render
        cell.inner.render = lambda cam: renders.append(cam) or inner_render(cam)
        ob = observe(cell, cameras=True)
        assert sorted(renders) == sorted(cell.cameras)  # the tracker reused the frames observe rendered
        assert cell.object_poses() == ob.object_poses and len(renders) == 2
        truth = cell.true_object_poses()
        assert all(np.linalg.norm(ob.object_poses[n].xyz - truth[n].xyz) < 0.01 for n in truth)
        cell.arm.wait_tick()
        cell.object_poses()
        assert len(renders) == 4  # a new tick renders again


def test_perceived_objects_need_depth_and_a_real_cell_needs_a_taught_scene():
    cell = _cell(cameras=CameraSettings())
    try:
        with pytest.raises(ValueError, match="depth"):
            PerceivedWorkcell(cell, TaughtScene())
    finally:
        cell.close()
    with pytest.raises(ValueError, match="teach"):
        open_perceived_workcell("franky", None, 10.0, host="172.16.0.2")
    spec = make_instance("stack", 0).scene
    assert perceived_scene_spec(spec).cameras == CameraSettings(spec.cameras.width, spec.cameras.height, True)
    assert perceived_scene_spec(spec, SHARP).cameras == SHARP


@pytest.mark.slow
def test_scripted_pick_place_with_perceived_objects_succeeds():
    from recorders.robot_api import RobotAPI

    inst = make_instance("pick_place", 1)
    with open_perceived_workcell("sim", inst.scene, 10.0) as cell:
        monitor = TaskMonitor(inst, cell.true_object_poses())
        held_errors = []

        def before_tick():
            poses, truth = cell.object_poses(), cell.true_object_poses()
            monitor.update(truth)
            a = inst.roles["A"]
            if truth[a].xyz[2] > 0.05:
                held_errors.append(np.linalg.norm(poses[a].xyz - truth[a].xyz))

        RobotAPI(cell, before_tick=before_tick).run_program(inst.program)
        assert monitor.success(cell.true_object_poses())
        assert held_errors and np.median(held_errors) < 0.01  # the cube was followed while carried


def test_a_zone_whose_centre_a_cube_hides_is_taught_from_a_visible_point_of_it():
    from recorders.perception.perceived_workcell import _visible_pixel

    hidden = 0
    for seed in range(12):
        cell = _cell("clear_zone", seed)
        try:
            spec = cell.spec
            frames = {cam: frame_from_workcell(cell, cam) for cam in ("front", "wrist")}
            zone = spec.zone(make_instance("clear_zone", seed).roles["Z"])
            hidden += all(_visible_pixel(f, np.array([*zone.position, 0.0])) is None for f in frames.values())
            taught = auto_teach(cell)
        finally:
            cell.close()
        for z in spec.zones:
            target = next(t for t in taught.targets if t.name == z.name)
            assert np.hypot(*np.subtract(target.position[:2], z.position)) < 0.01, (seed, z.name)
    assert hidden >= 2  # the centre of the zone to clear was hidden in some of these scenes
