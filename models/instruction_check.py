"""Refusing instructions no program of the robot API can satisfy, before the arm moves.

The planner always answers with a valid call (models/planner_grammar.py), so asked to "open the
drawer" it would move cubes and report done(). `refusal(instruction, names, known)` says why an
instruction cannot be done here, or None; two checks, in order:
1. Grounding: every colour the instruction names must belong to something in the scene, of the kind
   it names: "the purple block" needs an object whose name says purple, "the pink area" a zone
   whose name says pink; a bare colour either. Colour words are the palette's and common others
   (pink, white, black, ...).
2. Familiarity: the instruction must be like something the planner was trained to do. Its
   MiniLM sentence embedding (models/text_encoder.py) is compared with those of the planner's
   training instructions and their rule-written rewordings (kept in its config; colour words made
   one, so only the wording counts);
   under SIMILARITY_FLOOR of the closest one, it is refused, naming that closest instruction.
   The floor was set a priori from the suite's rule-written rephrasings (lowest similarity 0.88),
   with a wide margin for phrasings the rules never write; it was not tuned on any test set.
   Without the encoder package, or for a planner trained before its instructions were kept, only
   the grounding check runs.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from models.planner_data import SceneNames
from recorders.cell.scene import COLOURS

SIMILARITY_FLOOR = 0.6
OTHER_COLOURS = ("pink", "white", "black", "brown", "grey", "gray", "cyan", "magenta", "violet", "gold",
                 "silver", "beige", "teal", "turquoise", "navy", "maroon", "lime")
COLOUR_WORDS = (*COLOURS, *OTHER_COLOURS)
OBJECT_NOUNS = ("cube", "cubes", "block", "blocks", "box", "boxes", "one", "ones", "piece", "object")
ZONE_NOUNS = ("zone", "zones", "area", "areas", "region", "regions", "square", "squares", "spot", "spots", "patch")
MAX_KNOWN = 4000  # training instructions kept in a planner's config
KNOWN_REPHRASINGS = 24  # rule-written rewordings kept per distinct training instruction
_WORD = re.compile(r"[a-z]+")
_COLOUR = re.compile(r"\b(" + "|".join(COLOUR_WORDS) + r")\b")


def normalise(text: str) -> str:
    """Lower case, every colour word made "red": what the familiarity check compares."""
    return _COLOUR.sub("red", text.lower()).strip()


def known_instructions(instructions: Sequence[str], rephrasings: int = KNOWN_REPHRASINGS) -> tuple[str, ...]:
    """The distinct normalised forms of training instructions and of `rephrasings` rule-written
    rewordings of each (models/instruction_variants.py: what the planner reads, directly or as the
    training instruction it resembles), as a planner's config keeps them."""
    from models.instruction_variants import variants

    rng = np.random.default_rng(0)
    kept = dict.fromkeys(normalise(t) for t in instructions)
    for text in list(kept) if rephrasings else ():
        if len(kept) >= MAX_KNOWN:  # what more rewordings would add is cut anyway
            break
        kept.update(dict.fromkeys(normalise(v) for v in variants(text, rephrasings, rng)))
    return tuple(kept)[:MAX_KNOWN]


def _listing(words: list[str]) -> str:
    return "none" if not words else words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _coloured(names: Sequence[str], colour: str) -> bool:
    return any(colour in _WORD.findall(n.lower()) for n in names)


def colour_mentions(instruction: str) -> list[tuple[str, str]]:
    """(colour word, the word after it or "") for each colour word of the instruction, in order."""
    words = _WORD.findall(instruction.lower())
    return [(w, words[i + 1] if i + 1 < len(words) else "") for i, w in enumerate(words) if w in COLOUR_WORDS]


def grounding_refusal(instruction: str, names: SceneNames) -> str | None:
    """Why a colour the instruction names is not in the scene (of the kind named), or None."""
    for w, noun in colour_mentions(instruction):
        if noun in OBJECT_NOUNS and not _coloured(names.objects, w):
            return f"there is no {w} {noun} here; the objects are {_listing(list(names.objects))}"
        if noun in ZONE_NOUNS and not _coloured(names.zones, w):
            return f"there is no {w} {noun} here; the zones are {_listing(list(names.zones))}"
        if not (_coloured(names.objects, w) or _coloured(names.zones, w)):
            return (f"nothing here is {w}; the objects are {_listing(list(names.objects))} and the zones "
                    f"{_listing(list(names.zones))}")
    return None


def mentioned(instruction: str, objects: Sequence[str], zones: Sequence[str]) -> list[str]:
    """The scene's objects and zones the instruction names, in order of mention, each once: a colour
    word followed by an object noun names the objects of that colour ("every orange cube": both
    orange cubes), by a zone noun the zone; a bare colour ("swap the red and the blue cubes") names
    the objects of that colour, or else the zone. What a flat policy reads of the instruction."""
    found = {}
    for w, noun in colour_mentions(instruction):
        cubes = [n for n in objects if _coloured((n,), w)]
        areas = [n for n in zones if _coloured((n,), w)]
        named = areas if noun in ZONE_NOUNS else cubes if noun in OBJECT_NOUNS else cubes or areas
        found.update(dict.fromkeys(named))
    return list(found)


def closest_known(instruction: str, known: tuple[str, ...]) -> tuple[str, float]:
    """The training instruction most like `instruction` and their cosine similarity (MiniLM)."""
    from models.text_encoder import embed, embed_cached

    sims = embed_cached(known) @ embed([normalise(instruction)])[0]
    best = int(np.argmax(sims))
    return known[best], float(sims[best])


def refusal(instruction: str, names: SceneNames, known: Sequence[str] = ()) -> str | None:
    """Why `instruction` cannot be done in a scene with `names` by a planner trained on `known`
    instructions (normalised), or None when it may be tried."""
    if not _WORD.search(instruction.lower()):
        return "the instruction has no words"
    reason = grounding_refusal(instruction, names)
    if reason or not known:
        return reason
    from models.text_encoder import available

    if not available():
        return None
    closest, similarity = closest_known(instruction, tuple(known))
    if similarity < SIMILARITY_FLOOR:
        return (f"it is unlike every instruction the planner learned (closest: \"{closest}\", similarity "
                f"{similarity:.2f} < {SIMILARITY_FLOOR})")
    return None
