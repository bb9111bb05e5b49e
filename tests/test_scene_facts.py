"""The facts the planner reads from the front camera: which zone each cube lies in, nearest the
robot first, measured against the scene's true layout on rendered images; and how they reach the
planner's prompt, follow colour swaps and change with the image."""
from __future__ import annotations

import numpy as np
import pytest

from models.colour_swaps import NAMES, swapped
from models.planner_data import PlannerStep, SceneNames, prompt_text
from models.scene_facts import CameraView, facts_text, scene_facts, seen_cubes
from recorders.cell.registry import open_workcell
from recorders.task_suite import make_instance, nearest_cube

FRONT = "front"


def _truth_zone(scene, cube) -> str | None:
    for z in scene.zones:
        if max(abs(cube.position[0] - z.position[0]), abs(cube.position[1] - z.position[1])) <= z.size / 2:
            return z.name
    return None


def _rendered(task: str, seed: int):
    inst = make_instance(task, seed)
    with open_workcell("sim", inst.scene, 10.0) as cell:
        image = cell.render(FRONT)[0]
        view = CameraView(cell.camera_intrinsics(FRONT), tuple(cell.camera_pose(FRONT).to_array()))
    return inst, image, view


@pytest.mark.parametrize("task,seed", [("clear_zone", 3), ("clear_zone", 11), ("nearest", 5), ("nearest", 8)])
def test_facts_match_the_rendered_scene(task, seed):
    inst, image, view = _rendered(task, seed)
    scene = inst.scene
    cubes = seen_cubes(image, scene.object_names, scene.zone_names, view)
    assert sorted(c.name for c in cubes) == sorted(scene.object_names)  # every cube seen, nothing else
    truth = {c.name: _truth_zone(scene, c) for c in scene.cubes}
    assert {c.name: c.zone for c in cubes} == truth
    reach = {c.name: float(np.hypot(*c.position)) for c in scene.cubes}
    assert [c.name for c in cubes] == sorted(reach, key=reach.get)  # nearest the robot first
    for c in cubes:
        assert c.reach == pytest.approx(reach[c.name], abs=0.015)
    if task == "nearest":
        assert cubes[0].name == nearest_cube(scene)
    if task == "clear_zone":  # the zone the instruction names holds at least one cube
        assert any(c.zone == inst.roles["Z"] for c in cubes)


def test_another_scenes_image_tells_other_facts():
    inst, image, view = _rendered("clear_zone", 3)
    _, other, _ = _rendered("clear_zone", 4)
    names = (inst.scene.object_names, inst.scene.zone_names)
    assert scene_facts(image, *names, view) != scene_facts(other, *names, view)
    assert scene_facts(np.zeros_like(image), *names, view) == "Seen: nothing"


def test_facts_text_and_prompt_line():
    from models.scene_facts import SeenCube

    assert facts_text([]) == "Seen: nothing"
    cubes = [SeenCube("green cube", None, (1, 2), 0.3), SeenCube("blue cube", "red zone", (3, 4), 0.4),
             SeenCube("orange cube", "red zone", (5, 6), 0.5)]
    assert facts_text(cubes, ("red zone", "yellow zone")) == \
        "Seen: red zone: blue cube, orange cube; yellow zone: none; table: green cube; nearest: green cube"
    text = prompt_text("clear the red zone", [], [], seen="Seen: red zone: blue cube")
    assert text.splitlines()[:3] == ["<image>", "clear the red zone", "Seen: red zone: blue cube"]
    assert "Seen" not in prompt_text("clear the red zone", [], [])


def test_colour_swaps_rename_the_scene_with_the_pixels():
    inst, image, view = _rendered("clear_zone", 3)
    names = SceneNames(tuple(inst.scene.object_names), tuple(inst.scene.zone_names))
    step = PlannerStep(inst.instruction, (), (), 'pick("red cube")', image, names)
    perm = {n: NAMES[(i + 1) % len(NAMES)] for i, n in enumerate(NAMES)}  # every colour moves
    moved = swapped(step, perm)
    assert moved.names.objects == tuple(f"{perm[n.split()[0]]} cube" for n in names.objects)
    before = scene_facts(image, names.objects, names.zones, view)
    after = scene_facts(moved.image, moved.names.objects, moved.names.zones, view)
    from models.colour_swaps import swap_words
    assert after == swap_words(before, perm)  # the repainted image tells the renamed facts


def test_camera_view_round_trip_and_refusals():
    view = CameraView({"fx": 100, "fy": 100, "cx": 31.5, "cy": 31.5, "width": 64, "height": 64},
                      (1.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0))
    assert CameraView.from_dict(view.to_dict()) == CameraView.from_dict(view.to_dict())
    with pytest.raises(ValueError, match="7-number pose"):
        CameraView.from_dict({"intrinsics": {}, "pose": [0, 0]})
    with pytest.raises(ValueError, match="lack fx"):
        CameraView.from_dict({"intrinsics": {"fy": 1}, "pose": [0] * 7})
    assert CameraView.from_stream_meta({"intrinsics": {}, "mount": {"frame": "hand", "pose": [0] * 7}}) is None
    # a camera looking along +z from z = 0.5 never meets the plane below it
    assert np.isnan(view.table_points(np.array([31.5]), np.array([31.5]), (64, 64), 0.0)).all()


def test_a_planner_reading_facts_says_them_in_its_prompt_and_its_proposer_keeps_them():
    from dataclasses import replace

    from app.planner_eval import planner_proposer
    from models.planner import Planner
    from models.planner_config import TINY, PlannerConfig
    from models.planner_grammar import CallVocabulary
    from models.train_planner import _corpus, facts_lines
    from recorders.robot_api import RobotAPI

    inst, image, view = _rendered("clear_zone", 3)
    names = SceneNames(tuple(inst.scene.object_names), tuple(inst.scene.zone_names))
    step = PlannerStep(inst.instruction, (), (), inst.program[0].code, image, names, "clear_zone")
    config = PlannerConfig(calls=CallVocabulary.from_programs([c.code for c in inst.program]), scene_facts=True,
                           camera=view.to_dict(), **TINY)
    planner = Planner.scratch(config, _corpus([step], True, facts_lines([step], config.camera)))
    expected = scene_facts(image, names.objects, names.zones, view)
    assert planner.seen(image, names) == expected
    assert expected in planner.processor.tokenizer.decode(planner.encode_prompt(image, step.task, (), (), planner.seen(image, names))["input_ids"])
    assert Planner.scratch(replace(config, scene_facts=False), [step.task]).seen(image, names) is None
    propose = planner_proposer(planner, inst.instruction, inst.scene)
    with open_workcell("sim", inst.scene, 10.0) as cell:
        propose(RobotAPI(cell))
    assert propose.last_seen == expected



class _FactsProposer:
    """A planner's proposer as the run loop sees it: says done() and what it saw."""
    read_as = "clear the red zone"

    def __init__(self, seen: str):
        self.last_seen = seen

    def __call__(self, api):
        from recorders.robot_api_spec import Call

        return Call.from_code("done()")


def test_the_run_log_says_what_the_planner_sees_and_when_it_sees_none_of_the_objects():
    from types import SimpleNamespace

    from app.run_loop import ActiveRun

    events = []
    run = ActiveRun.__new__(ActiveRun)  # only its proposal step: a host collecting events, a scene, a proposer
    run.retry, run.planner, run._last_seen, run.names = None, None, None, ("red cube", "red zone")
    run.cell = SimpleNamespace(spec=SimpleNamespace(object_names=["red cube"]))
    run.host = SimpleNamespace(event=lambda kind, text: events.append((kind, text)))
    run.propose = _FactsProposer("Seen: red zone: red cube; table: none; nearest: red cube")
    assert run._next_proposal(None).code == "done()"
    run._next_proposal(None)  # the same facts again: said once
    run.propose.last_seen = "Seen: nothing"
    run._next_proposal(None)
    assert events == [("info", "the planner sees: red zone: red cube; table: none; nearest: red cube"),
                      ("info", "the planner sees: nothing of the 1 objects (its facts are read by the simulated "
                               "workcell's colours; check the front camera's view)")]
