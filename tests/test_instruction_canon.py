"""Reading an instruction as the training instruction it most resembles: slots kept in order, kinds
respected, templates left alone."""
from __future__ import annotations

from models.instruction_canon import fill, nearest_training_instruction, skeleton, slots, training_templates

TEMPLATES = training_templates([
    "put the purple cube in the red zone", "put the blue cube in the green zone",  # one wording: kept once
    "stack the red cube on the green cube", "swap the yellow cube and the red cube",
    "push the orange cube forward", "push the orange cube to the left", "put every blue cube in the purple zone"])


def test_templates_keep_one_instruction_per_wording():
    assert len(TEMPLATES) == 6 and TEMPLATES[0] == "put the purple cube in the red zone"


def test_slots_know_objects_zones_and_directions():
    assert [(v, k) for v, k, *_ in slots("Place the Blue block inside the yellow area, then green; push right")] == \
        [("blue", "object"), ("yellow", "zone"), ("green", "any"), ("right", "sideways")]
    assert skeleton("Push the BLUE cube backward") == "push the red cube forward"
    assert fill("push the orange cube to the left", slots("nudge yellow right")) == "push the yellow cube to the right"


def test_other_wordings_are_read_as_the_closest_template_with_their_own_names():
    read = lambda text: nearest_training_instruction(text, TEMPLATES)  # noqa: E731
    assert read("Place the blue block onto the red block.") == "stack the blue cube on the red cube"
    assert read("Drop the green cube into the red square.") == "put the green cube in the red zone"
    assert read("could you exchange the blue box and the green box") == "swap the blue cube and the green cube"
    assert read("nudge the yellow block backward") == "push the yellow cube backward"
    assert read("shove the yellow block right") == "push the yellow cube to the right"


def test_templates_and_texts_without_a_fitting_template_stay_as_they_are():
    assert nearest_training_instruction("stack the blue cube on the red cube", TEMPLATES) == \
        "stack the blue cube on the red cube"
    four = "put the red block where the blue block is and the blue one where the red one was"
    assert nearest_training_instruction(four, TEMPLATES) == four  # four colours: no template has four slots
    assert nearest_training_instruction("push the red cube left", ()) == "push the red cube left"
