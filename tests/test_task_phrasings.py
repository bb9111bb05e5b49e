"""The held-out phrasings: every task has some, they name the instance's own colours, and none is the
task's template under another case or punctuation."""
from __future__ import annotations

import re

import pytest

from recorders.task_phrasings import PHRASINGS, paraphrase
from recorders.task_suite import TASKS, make_instance


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower()))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_phrasing_fills_with_the_instances_roles(task):
    assert len(PHRASINGS[task]) >= 4
    for split in ("train", "test"):
        inst = make_instance(task, 3, split)
        colours = {inst.scene.cube(inst.roles[r]).colour for r in "ABC" if r in inst.roles}
        for k in range(len(PHRASINGS[task])):
            text = paraphrase(inst, k)
            assert "{" not in text and "}" not in text
            assert all(c in text.lower() for c in colours), (text, colours)
            if "Z" in inst.roles:
                assert inst.roles["Z"].split()[0] in text.lower()
            assert _words(text) != _words(inst.instruction), text  # not the template in other clothes


def test_the_set_varies_as_people_write():
    every = [p for ps in PHRASINGS.values() for p in ps]
    assert any("block" in p for p in every) and any("box" in p for p in every)  # other nouns for cube
    assert any(sum(ch.isupper() for ch in p) > 10 for p in every)  # capitals
    assert any(p.endswith("?") for p in every) and any("please" in p.lower() for p in every)  # polite
    assert any("on top of" in p for p in every) and any("exchange" in p for p in every)


def test_the_choice_is_stable_and_spreads_over_seeds():
    chosen = {paraphrase(make_instance("stack", s)) for s in range(30)}
    assert paraphrase(make_instance("stack", 4)) == paraphrase(make_instance("stack", 4))
    assert len({_words(c).split(" the ")[0] for c in chosen}) > 3  # several phrasings, not one


@pytest.mark.parametrize("task", ["clear_zone", "nearest"])
def test_tasks_decided_by_the_image_name_no_cube_in_any_phrasing(task):
    assert all(set(re.findall(r"\{([a-z])\}", p)) == {"z"} for p in PHRASINGS[task])
    for seed in range(10):
        inst = make_instance(task, seed)
        zone = inst.roles["Z"].split()[0]
        for k in range(len(PHRASINGS[task])):
            said = paraphrase(inst, k).lower().replace(zone, "")
            assert not any(c.colour in said for c in inst.scene.cubes), said


def test_the_second_held_out_set_fills_in_and_is_refused_for_tasks_it_lacks():
    import pytest

    from recorders.task_phrasings import SECOND_PHRASINGS

    for task, phrasings in SECOND_PHRASINGS.items():
        inst = make_instance(task, 2)
        texts = [paraphrase(inst, k, second=True) for k in range(len(phrasings))]
        assert all("{" not in t for t in texts) and len(set(texts)) == len(texts)
    with pytest.raises(ValueError, match="no phrasings in the second"):
        paraphrase(make_instance("tower", 0), second=True)
