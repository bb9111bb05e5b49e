"""Rephrasings of recorded instructions for training the planner (paraphrase augmentation).

Every demonstration carries its task's one template sentence, so a planner trained on them reads
only those words. `variants(instruction, k, rng)` rewrites such a sentence by word-level rules:
- nouns: cube -> block | box, zone -> area | region | square | spot;
- the leading verb of each template (put -> place | move | set | drop, stack -> place | set | pile,
  push -> nudge | shove | slide, swap -> switch | exchange | trade, clear -> clear out | clean out, ...);
- prepositions: on -> onto | on top of, in -> into | inside;
- terse forms (articles dropped), polite wrappers (please, could you ...?, thanks), capitals and
  punctuation.
It never writes a sentence of the held-out test set (recorders/task_phrasings.py): a variant whose
words equal one of those (for any filling of its placeholders) is drawn again, so the test set stays
unseen. Word order is left as the template has it; the test set also moves words around.
"""
from __future__ import annotations

import re

import numpy as np

from recorders.task_phrasings import PHRASINGS, SECOND_PHRASINGS

NOUNS = {"cube": ("cube", "block", "box"), "cubes": ("cubes", "blocks", "boxes"),
         "zone": ("zone", "area", "region", "square", "spot")}
VERBS = {"put": ("put", "place", "move", "set", "drop"), "stack": ("stack", "place", "set", "pile", "put"),
         "push": ("push", "nudge", "shove", "slide"), "swap": ("swap", "switch", "exchange", "trade"),
         "move": ("move", "bring", "take", "carry"), "build": ("build", "make", "stack up"),
         "clear": ("clear", "clear out", "clean out", "free up")}
PREPOSITIONS = {"on": ("on", "onto", "on top of"), "in": ("in", "into", "inside")}
WRAPPERS = ("{s}", "please {s}", "{s} please", "could you {s}?", "can you {s}?", "I want you to {s}",
            "{s}, thanks", "now {s}")
_WORD = re.compile(r"[a-z]+")


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


def _test_shapes() -> list[re.Pattern]:
    """The held-out phrasings as word patterns, any colour or direction in their placeholders."""
    shapes = []
    for phrasing in (p for table in (PHRASINGS, SECOND_PHRASINGS) for ps in table.values() for p in ps):
        parts = re.split(r"\{[a-z]\}", phrasing.lower())
        words = [" ".join(_WORD.findall(part)) for part in parts]
        shapes.append(re.compile(r"\s*[a-z]+\s*".join(re.escape(w) for w in words) + r"\s*"))
    return shapes


_TEST = _test_shapes()


def in_test_set(text: str) -> bool:
    """Whether `text` says, word for word, one of the held-out phrasings."""
    words = " ".join(_words(text))
    return any(shape.fullmatch(words) for shape in _TEST)


def _rewrite(instruction: str, rng: np.random.Generator) -> str:
    tokens = instruction.split(" ")
    out = []
    for i, tok in enumerate(tokens):
        word = tok.rstrip(":,")
        tail = tok[len(word):]
        if word in NOUNS:
            word = str(rng.choice(NOUNS[word]))
        elif i == 0 and word in VERBS:
            word = str(rng.choice(VERBS[word]))
        elif word in PREPOSITIONS:
            word = str(rng.choice(PREPOSITIONS[word]))
        elif word == "the" and rng.random() < 0.3:
            continue  # terse
        out.append(word + tail)
    text = str(rng.choice(WRAPPERS)).format(s=" ".join(out))
    case = rng.random()
    if case < 0.1:
        text = text.upper()
    elif case < 0.5:
        text = text[0].upper() + text[1:]
    if not text.endswith("?") and rng.random() < 0.4:
        text += str(rng.choice([".", "!"]))
    return text


def variants(instruction: str, k: int, rng: np.random.Generator) -> list[str]:
    """Up to k distinct rephrasings of `instruction` (none the instruction itself, none of the test set)."""
    found: list[str] = []
    for _ in range(20 * k):
        if len(found) == k:
            break
        text = _rewrite(instruction, rng)
        if text != instruction and text not in found and not in_test_set(text):
            found.append(text)
    return found
