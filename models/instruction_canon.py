"""Reading an instruction as the training instruction it most resembles (MiniLM), with its own names.

A planner trained on the suite's template sentences reads other wordings poorly ("Place the blue
block onto the red block."). `nearest_training_instruction(text, templates)` rewrites `text` into the
recorded instruction whose wording is closest by MiniLM sentence similarity (models/text_encoder.py),
filled with the colours and direction that `text` names, in the order it names them:

    "Place the blue block onto the red block."  ->  "stack the blue cube on the red cube"

Slots are colour words and push directions. Only templates with the same slots qualify: as many
colours, each of the same kind where the text says it (followed by a cube word -> an object, a zone
word -> a zone; a bare colour fits either), and a direction of the same phrasing (left/right are
"to the left", forward/backward bare). The text stays as it is when no template qualifies, or when
it already is one. Word order that reverses the roles ("the blue block should end up under the red
block") is read wrongly: the slots are filled in the order they are said.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from models.instruction_check import OBJECT_NOUNS, ZONE_NOUNS
from recorders.cell.scene import COLOURS

SIDEWAYS = ("left", "right")  # said "to the left"
STRAIGHT = ("forward", "backward")  # said bare
_SLOT = re.compile(r"\b(" + "|".join((*COLOURS, *SIDEWAYS, *STRAIGHT)) + r")\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+")


def slots(text: str) -> list[tuple[str, str, int, int]]:
    """(value, kind, start, end) of each slot word in `text`: kind "object", "zone" or "any" for a
    colour, "sideways" or "straight" for a direction."""
    out = []
    for m in _SLOT.finditer(text):
        value = m.group(1).lower()
        if value in SIDEWAYS or value in STRAIGHT:
            out.append((value, "sideways" if value in SIDEWAYS else "straight", m.start(), m.end()))
            continue
        after = _WORD.findall(text[m.end():].lower())[:1]
        kind = "object" if after and after[0] in OBJECT_NOUNS else "zone" if after and after[0] in ZONE_NOUNS else "any"
        out.append((value, kind, m.start(), m.end()))
    return out


def skeleton(text: str) -> str:
    """What the similarity compares: lower case, colours made "red", directions "left" or "forward"."""
    def one(m: re.Match) -> str:
        v = m.group(1).lower()
        return "left" if v in SIDEWAYS else "forward" if v in STRAIGHT else "red"
    return _SLOT.sub(one, text.lower()).strip()


def _fits(said: list, template: list) -> bool:
    if len(said) != len(template):
        return False
    for (_, kind, *_), (_, t_kind, *_) in zip(said, template):
        if kind in ("sideways", "straight") or t_kind in ("sideways", "straight"):
            if kind != t_kind:
                return False
        elif kind != "any" and t_kind != "any" and kind != t_kind:
            return False
    return True


def fill(template: str, said: list) -> str:
    """`template` with its slots replaced, in order, by the values of `said`."""
    parts, at = [], 0
    for (value, *_), (_, _, start, end) in zip(said, slots(template)):
        parts += [template[at:start], value]
        at = end
    return "".join(parts) + template[at:]


def nearest_training_instruction(text: str, templates: Sequence[str]) -> str:
    """`text` read as the closest of `templates` (recorded instructions) that has its slots, filled
    with its names; `text` itself when it is a template's wording already or none qualifies."""
    from models.text_encoder import available, embed, embed_cached

    templates = tuple(templates)
    said = slots(text)
    qualifying = [i for i, t in enumerate(templates) if _fits(said, slots(t))]
    if not qualifying or not available():
        return text
    if skeleton(text) in {skeleton(templates[i]) for i in qualifying}:
        return text  # said as in training: nothing to read into it
    sims = embed_cached(tuple(skeleton(t) for t in templates))[qualifying] @ embed([skeleton(text)])[0]
    return fill(templates[qualifying[int(np.argmax(sims))]], said)


def training_templates(instructions: Sequence[str], limit: int = 2000) -> tuple[str, ...]:
    """One recorded instruction per wording (skeleton and slot kinds), as a planner's config keeps them."""
    seen: dict[tuple, str] = {}
    for text in instructions:
        key = (skeleton(text), tuple(kind for _, kind, *_ in slots(text)))
        seen.setdefault(key, text)
    return tuple(seen.values())[:limit]
