"""Colour swaps for training the planner: a demonstration with its colours permuted, in words and in pixels.

A planner trained on the suite's demonstrations meets each colour pair of a task only in the episodes
that happened to draw it, and the test split holds pairs it never saw ("swap the orange cube and the
green cube"). Colour names are interchangeable for the program: swapping red and blue everywhere in
a demonstration gives another valid one. `swapped(step, permutation)` rewrites one planner step so:
- words: every colour word of the instruction, the past calls, the memory keys, the target call and the
  scene's names
  (whole words, any case: "Red" -> "Blue"), all at once, so red -> blue and blue -> red do not collide;
- pixels: the front-camera frame's pixels of each palette colour (cubes and zones) are repainted in
  the colour they are renamed to, keeping their shading (`recolour`), so the image still agrees with
  the words, as tasks that depend on the image need.
Pixels are told apart by how well one palette colour explains them up to brightness (the
relative residual of the best scaled albedo); the table, the robot and the floor explain badly and
stay as they are. The palette is the simulated workcell's (recorders/cell/scene.COLOURS); a real
camera's colours differ, so this is for simulated demonstrations.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Mapping

import numpy as np

from models.planner_data import PlannerStep, SceneNames
from recorders.cell.scene import COLOURS

NAMES = tuple(COLOURS)
ALBEDO = np.array([COLOURS[n] for n in NAMES], np.float32) * 255.0  # (C, 3) in pixel units
MATCH = 0.2  # relative residual under which a pixel counts as a palette colour
MIN_BRIGHTNESS = 0.2  # ... and at least this fraction of the albedo's brightness (not a shadow)
_WORD = re.compile(r"\b(" + "|".join(NAMES) + r")\b", re.IGNORECASE)


def random_permutation(rng: np.random.Generator) -> dict[str, str]:
    """A permutation of the palette's colour names that moves at least one colour."""
    while True:
        order = [NAMES[i] for i in rng.permutation(len(NAMES))]
        if tuple(order) != NAMES:
            return dict(zip(NAMES, order))


def _same_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    return word[0].upper() + word[1:] if like[0].isupper() else word


def swap_words(text: str, permutation: Mapping[str, str]) -> str:
    """`text` with each colour word replaced by its image under `permutation`, keeping its case."""
    return _WORD.sub(lambda m: _same_case(permutation[m.group(1).lower()], m.group(1)), text)


def palette_labels(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scales) per pixel: the index of the palette colour that explains it (-1: none) and its
    brightness relative to that colour's albedo. (H, W, 3) uint8 -> (H, W) int, (H, W) float."""
    p = np.asarray(image, np.float32).reshape(-1, 3)
    scales = (p @ ALBEDO.T) / (ALBEDO * ALBEDO).sum(1)  # (P, C): least-squares brightness per colour
    residual = np.linalg.norm(p[:, None, :] - scales[..., None] * ALBEDO[None], axis=2)
    residual /= np.linalg.norm(p, axis=1, keepdims=True) + 1e-6
    best = residual.argmin(1)
    rows = np.arange(len(p))
    ok = (residual[rows, best] < MATCH) & (scales[rows, best] > MIN_BRIGHTNESS)
    shape = np.asarray(image).shape[:2]
    return np.where(ok, best, -1).reshape(shape), scales[rows, best].reshape(shape)


def recolour(image: np.ndarray, permutation: Mapping[str, str]) -> np.ndarray:
    """`image` with every pixel of a colour that `permutation` moves repainted in its new colour."""
    labels, scales = palette_labels(image)
    target = np.array([ALBEDO[NAMES.index(permutation[n])] for n in NAMES], np.float32)  # (C, 3)
    moved = np.array([permutation[n] != n for n in NAMES] + [False])  # index -1: no palette colour
    out = np.asarray(image, np.float32).copy()
    hit = moved[labels]
    out[hit] = scales[hit][:, None] * target[labels[hit]]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def swapped(step: PlannerStep, permutation: Mapping[str, str]) -> PlannerStep:
    """`step` told with its colours permuted: instruction, past calls, memory keys, target and image."""
    return replace(step, task=swap_words(step.task, permutation),
                   history=tuple(swap_words(c, permutation) for c in step.history),
                   memory_keys=tuple(swap_words(k, permutation) for k in step.memory_keys),
                   target=swap_words(step.target, permutation),
                   image=None if step.image is None else recolour(step.image, permutation),
                   names=None if step.names is None else SceneNames(
                       tuple(swap_words(n, permutation) for n in step.names.objects),
                       tuple(swap_words(n, permutation) for n in step.names.zones)))


def with_colour_swaps(steps: list[PlannerStep], phrasings: list[list[PlannerStep]], k,
                      rng: np.random.Generator) -> list[PlannerStep]:
    """k colour-swapped copies of each step (k: one number, or one per step), each under its own
    random permutation and told in one of that step's phrasings (`phrasings[i]`: step i's rephrased
    copies, maybe none)."""
    out = []
    counts = [k] * len(steps) if isinstance(k, int) else list(k)
    for step, others, n in zip(steps, phrasings, counts):
        told = [step, *others]
        for _ in range(n):
            out.append(swapped(told[int(rng.integers(len(told)))], random_permutation(rng)))
    return out
