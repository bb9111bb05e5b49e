"""Paraphrase augmentation for the planner: rephrasings keep the instance's colours, differ from the
template, and never say a sentence of the held-out test set."""
from __future__ import annotations

import numpy as np

from models.instruction_variants import in_test_set, variants
from models.planner_data import PlannerStep
from models.train_planner import with_rephrasings
from recorders.task_phrasings import PHRASINGS, paraphrase
from recorders.task_suite import TASKS, make_instance


def test_variants_keep_the_colours_and_avoid_the_test_set():
    rng = np.random.default_rng(0)
    for task in TASKS:
        for seed in range(5):
            inst = make_instance(task, seed)
            found = variants(inst.instruction, 6, rng)
            assert len(found) == len(set(found)) >= 4 and inst.instruction not in found
            colours = {inst.scene.cube(inst.roles[r]).colour for r in "ABC" if r in inst.roles}
            for text in found:
                assert all(c in text.lower() for c in colours) and not in_test_set(text), text


def test_the_test_set_is_recognised_whatever_its_colours():
    for task in TASKS:
        for k in range(len(PHRASINGS[task])):
            assert in_test_set(paraphrase(make_instance(task, 1), k))
    assert not in_test_set(make_instance("stack", 1).instruction)


def test_with_rephrasings_adds_k_copies_of_each_step():
    steps = [PlannerStep("stack the red cube on the blue cube", (), (), 'pick("red cube")'),
             PlannerStep("stack the red cube on the blue cube", ('pick("red cube")',), (), 'place("red cube", "blue cube")')]
    assert with_rephrasings(steps, 0, 0) == steps
    out = with_rephrasings(steps, 3, 0)
    assert out[:2] == steps and len(out) == 8
    assert {s.target for s in out[2:]} == {s.target for s in steps} and all(s.task != steps[0].task for s in out[2:])
