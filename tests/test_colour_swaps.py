"""Colour swaps for the planner: words and pixels permuted together, the rest left alone."""
from __future__ import annotations

import numpy as np

from models.colour_swaps import ALBEDO, NAMES, palette_labels, random_permutation, recolour, swap_words, swapped
from models.planner_data import PlannerStep
from models.train_planner import augmented

RED_BLUE = {**{n: n for n in NAMES}, "red": "blue", "blue": "red"}
TABLE = (180, 150, 110)  # the simulated table's tan


def test_words_are_swapped_all_at_once_keeping_case_and_whole_words():
    text = 'Swap the RED cube and the blue cube; Red first. pick("red cube 2") bored redo'
    assert swap_words(text, RED_BLUE) == 'Swap the BLUE cube and the red cube; Blue first. pick("blue cube 2") bored redo'
    assert swap_words("put the green cube in the yellow zone", RED_BLUE) == "put the green cube in the yellow zone"


def _scene_image() -> np.ndarray:
    """A table with a shaded red cube, a lit blue zone and a green patch, as the front camera shows them."""
    image = np.full((32, 32, 3), TABLE, np.uint8)
    image[4:10, 4:10] = np.clip(ALBEDO[NAMES.index("red")] * 0.6, 0, 255)  # a cube's shaded side
    image[4:10, 12:18] = np.clip(ALBEDO[NAMES.index("red")] * 1.0, 0, 255)
    image[14:26, 4:16] = np.clip(ALBEDO[NAMES.index("blue")] * 1.1, 0, 255)
    image[20:26, 20:26] = np.clip(ALBEDO[NAMES.index("green")] * 0.9, 0, 255)
    image[0:2, :] = (60, 90, 140)  # the floor's dull blue is no palette colour
    return image


def test_pixels_take_their_new_colour_and_keep_their_shading():
    image = _scene_image()
    labels, _ = palette_labels(image)
    assert labels[5, 5] == NAMES.index("red") and labels[15, 5] == NAMES.index("blue") and labels[30, 30] == -1
    assert labels[0, 0] == -1
    out = recolour(image, RED_BLUE)
    blue, red = ALBEDO[NAMES.index("blue")], ALBEDO[NAMES.index("red")]
    np.testing.assert_allclose(out[5, 5], np.clip(blue * 0.6, 0, 255), atol=3)  # dark stays dark
    np.testing.assert_allclose(out[5, 13], np.clip(blue * 1.0, 0, 255), atol=3)
    np.testing.assert_allclose(out[15, 5], np.clip(red * 1.1, 0, 255), atol=3)
    assert (out[20:26, 20:26] == image[20:26, 20:26]).all()  # green was not moved
    assert (out[26:, 26:] == image[26:, 26:]).all() and (out[0:2] == image[0:2]).all()  # table and floor


def test_a_swapped_step_tells_the_same_story_in_other_colours():
    step = PlannerStep("swap the red cube and the blue cube", ('remember("red cube start", "red cube")',),
                       ("red cube start",), 'remember("blue cube start", "blue cube")', _scene_image())
    out = swapped(step, RED_BLUE)
    assert out.task == "swap the blue cube and the red cube"
    assert out.history == ('remember("blue cube start", "blue cube")',) and out.memory_keys == ("blue cube start",)
    assert out.target == 'remember("red cube start", "red cube")'
    assert palette_labels(out.image)[0][5, 5] == NAMES.index("blue")


def test_random_permutations_move_some_colour_and_lose_none():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = random_permutation(rng)
        assert sorted(p.values()) == sorted(NAMES) and any(k != v for k, v in p.items())


def test_augmented_adds_rephrased_and_colour_swapped_copies():
    steps = [PlannerStep("stack the red cube on the blue cube", (), (), 'pick("red cube")', _scene_image()),
             PlannerStep("stack the red cube on the blue cube", ('pick("red cube")',), (),
                         'place("red cube", "blue cube")', _scene_image())]
    out = augmented(steps, 2, 3, seed=0)
    assert out[:2] == steps and len(out) == 2 + 2 * 2 + 2 * 3
    for s in out[6:]:  # the swapped copies agree with themselves: the cube picked is the one named first
        said = sorted((s.task.lower().index(c), c) for c in NAMES if c in s.task.lower())
        assert len(said) == 2 and s.target.startswith(f'{s.target.split("(")[0]}("{said[0][1]} cube"'), s
    assert augmented(steps, 0, 0, seed=0) == steps
    assert [s.task for s in augmented(steps, 2, 3, seed=0)] == [s.task for s in out]  # a function of the seed


def test_rare_tasks_get_more_swapped_copies_when_balanced():
    from models.train_planner import balance_factors

    def episode(task, n_calls):
        return [PlannerStep(f"{task} it", tuple(f'pick("red cube")' for _ in range(i)), (), 'pick("red cube")',
                            _scene_image(), task_id=task) for i in range(n_calls)]
    steps = [s for _ in range(4) for s in episode("stack", 3)] + episode("tower", 5)
    factors = balance_factors(steps)
    assert factors[:12] == [1] * 12 and factors[12:] == [4] * 5  # 4 stack demonstrations, 1 tower
    assert balance_factors(steps, limit=2)[12:] == [2] * 5
    assert balance_factors([PlannerStep("x", (), (), "done()")]) == [1]  # no task known: as it is
    plain = augmented(steps, 0, 2, seed=0)
    balanced = augmented(steps, 0, 2, seed=0, balance=True)
    assert len(plain) == 17 + 2 * 17 and len(balanced) == 17 + 2 * 12 + 8 * 5
    assert sum(s.task_id == "tower" for s in balanced) == 5 + 40
    repeated = augmented(steps, 0, 0, seed=0, balance=True)  # no swaps: the rare task's steps repeated
    assert len(repeated) == 17 + 3 * 5 and sum(s.task_id == "tower" for s in repeated) == 20
