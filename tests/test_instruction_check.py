"""Refusals: instructions naming what the scene lacks, or unlike anything the planner learned, are
refused with a reason; the suite's tasks and their held-out rephrasings are not."""
from __future__ import annotations

import numpy as np
import pytest

from models.instruction_check import (SIMILARITY_FLOOR, grounding_refusal, known_instructions, normalise,
                                      refusal)
from models.instruction_variants import variants
from models.planner_data import SceneNames
from models.text_encoder import available, embed
from recorders.impossible_instructions import IMPOSSIBLE, impossible
from recorders.task_phrasings import paraphrase
from recorders.task_suite import make_instance

SCENE = SceneNames(("red cube", "blue cube", "green cube 1", "green cube 2"), ("yellow zone", "purple zone"))
TRAINED = ("pick_place", "stack", "swap", "push", "sort")


def test_grounding_names_what_is_missing_and_of_which_kind():
    assert grounding_refusal("put the red cube in the yellow zone", SCENE) is None
    assert grounding_refusal("Place the GREEN block inside the purple area.", SCENE) is None
    assert grounding_refusal("take the blue one and set it down in yellow", SCENE) is None
    assert "no orange cube here; the objects are red cube, blue cube, green cube 1 and green cube 2" in \
        grounding_refusal("put the orange cube in the yellow zone", SCENE)
    assert "no red zone" in grounding_refusal("put the blue cube in the red zone", SCENE)  # a red cube is no zone
    assert "no yellow block" in grounding_refusal("stack the yellow block on the red cube", SCENE)
    assert "nothing here is pink" in grounding_refusal("paint it pink", SCENE)


def test_the_encoder_is_installed_and_gives_unit_vectors():
    assert available()
    v = embed(["put the red cube in the blue zone", "place the red block into the blue area", "open the drawer"])
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


@pytest.fixture(scope="module")
def known():
    rng = np.random.default_rng(0)
    texts = []
    for task in TRAINED:
        for seed in range(10):
            inst = make_instance(task, seed)
            texts += [inst.instruction, *variants(inst.instruction, 4, rng)]
    return known_instructions(texts)


def test_known_instructions_are_distinct_and_colour_free(known):
    assert len(known) == len(set(known)) and all("blue" not in k and "green" not in k for k in known)
    assert normalise("Stack the BLUE cube on the green one") == "stack the red cube on the red one"


def test_the_suite_and_its_held_out_rephrasings_are_not_refused(known):
    for task in TRAINED:
        for seed in range(100, 104):
            inst = make_instance(task, seed, "test")
            names = SceneNames(tuple(inst.scene.object_names), tuple(inst.scene.zone_names))
            assert refusal(inst.instruction, names, known) is None
            assert refusal(paraphrase(inst), names, known) is None, paraphrase(inst)


def test_things_the_workcell_lacks_and_non_instructions_are_refused(known):
    for text in ("open the drawer", "tell me a joke", "fold the towel neatly", "load the dishwasher"):
        reason = refusal(text, SCENE, known)
        assert reason and "unlike every instruction" in reason and f"< {SIMILARITY_FLOOR}" in reason, text
    assert refusal("  ?! ", SCENE, known) == "the instruction has no words"
    assert refusal("open the drawer", SCENE, ()) is None  # a planner that kept no instructions: grounding only


def test_impossible_instructions_fill_in_the_scene():
    inst = make_instance("stack", 3)
    present = {c.colour for c in inst.scene.cubes} | {z.colour for z in inst.scene.zones}
    texts = [impossible(inst, i) for i in range(len(IMPOSSIBLE))]
    assert all("{" not in t for t in texts) and len(set(texts)) == len(texts)
    x_colour = texts[IMPOSSIBLE.index("put the {x} cube in the {z} zone")].split()[2]
    assert x_colour not in present
