"""Instructions as people write them: a held-out test set of phrasings of the suite's tasks.

The suite records every demonstration with its task's one template ("stack the red cube on the blue
cube"), so a planner trained on them has only ever read those words. These phrasings were written
separately, without reusing the templates' wording: synonyms ("block", "box" for cube; "area",
"square" for zone; "exchange", "on top of"), other word orders, polite and terse forms, capitals
and punctuation. They are a TEST set: nothing records or trains with them (`eval --phrasing
paraphrase` swaps an episode's instruction for one of them, chosen by its seed).

Placeholders, filled from a task instance's roles: {a} {b} {c} the colours of cubes A, B, C, {z} the
colour of zone Z, {k} sort's colour, {d} push's direction (left, right, forward, backward).
`clear_zone` and `nearest` name only the zone: which cubes they move is for the camera to show, so
no phrasing of theirs may name a cube's colour either.
"""
from __future__ import annotations

import zlib

from recorders.task_suite import TaskInstance

PHRASINGS: dict[str, tuple[str, ...]] = {
    "pick_place": (
        "Place the {a} block inside the {z} area.",
        "could you move the {a} box into the {z} zone please",
        "{a} cube -> {z} zone",
        "Drop the {a} cube onto the {z} square.",
        "PUT THE {a} CUBE INTO THE {z} ZONE",
        "the {a} block goes in the {z} region",
        "I'd like the {a} cube moved to the {z} zone.",
        "Take the {a} one and set it down in {z}.",
    ),
    "stack": (
        "put the {a} cube on top of the {b} cube",
        "Place the {a} block onto the {b} block.",
        "stack {a} on {b}",
        "Could you set the {a} box on the {b} one?",
        "pile the {a} cube onto the {b} cube, thanks",
        "The {b} block should end up under the {a} block.",
        "{a} cube on {b} cube!",
        "PLEASE STACK THE {a} BLOCK ON THE {b} BLOCK",
    ),
    "push": (
        "nudge the {a} cube {d}",
        "Slide the {a} block {d}.",
        "push {a} {d}",
        "Could you shove the {a} box a bit {d}?",
        "move the {a} cube {d} by pushing it",
        "Give the {a} block a push {d}, please.",
    ),
    "swap": (
        "exchange the {a} cube and the {b} cube",
        "Swap the places of the {a} block and the {b} block.",
        "switch {a} and {b}",
        "Could you trade the positions of the {a} and {b} cubes?",
        "put the {a} block where the {b} block is, and the {b} one where the {a} one was",
        "SWAP {a} WITH {b}",
    ),
    "sort": (
        "put all the {k} cubes in the {z} zone",
        "Every {k} block goes into the {z} area.",
        "move each {k} cube to the {z} zone, please",
        "collect the {k} boxes in the {z} square",
        "All {k} cubes -> {z} zone.",
    ),
    "tower": (
        "make a tower with the {a} cube on the {b} cube on the {c} cube",
        "Stack the {b} block on the {c} block, then the {a} block on top.",
        "build a stack: {c} at the bottom, then {b}, then {a}",
        "Could you pile the {a}, {b} and {c} cubes into a tower, {a} on top and {c} at the bottom?",
    ),
    "restore": (
        "move the {a} cube into the {z} zone and then return it to where it was",
        "Put the {a} block in the {z} area, then bring it back.",
        "take {a} to {z} and put it back afterwards",
        "Could you place the {a} box in the {z} square and then return it to its spot?",
    ),
    "clear_zone": (
        "empty the {z} zone",
        "Take every block out of the {z} area.",
        "could you remove all the cubes from the {z} square please",
        "{z} zone: nothing should be left in it",
        "MAKE SURE THE {z} ZONE IS EMPTY",
        "Move whatever is in the {z} region somewhere else.",
    ),
    "nearest": (
        "Move the block closest to the robot into the {z} area.",
        "could you put whichever cube is nearest the arm in the {z} zone please",
        "nearest cube -> {z} zone",
        "Take the cube that is closest to the robot's base and drop it in the {z} square.",
        "PUT THE CLOSEST CUBE TO THE ROBOT INTO THE {z} ZONE",
        "the box nearest to you goes in the {z} region",
    ),
}


# A second held-out set, written after models/instruction_canon.py was designed on the first (whose
# phrasings its author had read), and measured without being looked at first: `--phrasing paraphrase-b`.
SECOND_PHRASINGS: dict[str, tuple[str, ...]] = {
    "pick_place": (
        "Would you kindly carry the {a} cube over to the {z} zone?",
        "{a} block, {z} area. Go.",
        "get the {a} cube and leave it in the {z} patch",
        "The {z} zone needs the {a} cube in it.",
    ),
    "stack": (
        "set the {a} cube down on the {b} cube",
        "I need the {a} block sitting on the {b} block.",
        "lift the {a} cube and rest it on top of the {b} cube",
        "{a} goes on top of {b}",
    ),
    "push": (
        "Push the {a} cube a little {d}.",
        "slide {a} {d}",
        "The {a} block should be shoved {d}.",
        "give the {a} cube a nudge {d}",
    ),
    "swap": (
        "Have the {a} cube and the {b} cube change places.",
        "interchange {a} and {b}",
        "the {a} block and the {b} block should trade spots",
        "Please switch the {a} box with the {b} box.",
    ),
    "sort": (
        "Gather every {k} cube into the {z} zone.",
        "all of the {k} blocks belong in the {z} area",
        "move the {k} cubes to the {z} zone",
        "Put each of the {k} boxes inside the {z} square, please.",
    ),
}


def _fields(inst: TaskInstance) -> dict[str, str]:
    """The placeholders' words for this instance: colours of its roles, and push's direction."""
    scene, roles = inst.scene, inst.roles
    out = {}
    for role in ("A", "B", "C"):
        if role in roles:
            out[role.lower()] = scene.cube(roles[role]).colour
    if "Z" in roles:
        out["z"] = next(z.colour for z in scene.zones if z.name == roles["Z"])
    if "K" in roles:
        out["k"] = roles["K"]
    if "D" in roles:
        out["d"] = roles["D"]
    return out


def paraphrase(inst: TaskInstance, index: int | None = None, second: bool = False) -> str:
    """One held-out phrasing of `inst`'s instruction: the `index`-th of its task's, or one chosen by
    the instance's seed (stable across runs); `second`: from SECOND_PHRASINGS (ValueError for a task
    that has none there)."""
    table = SECOND_PHRASINGS if second else PHRASINGS
    if inst.task.id not in table:
        raise ValueError(f"task {inst.task.id} has no phrasings in the second held-out set; it has "
                         f"{', '.join(SECOND_PHRASINGS)}")
    choices = table[inst.task.id]
    k = zlib.crc32(f"{inst.task.id}:{inst.seed}".encode()) if index is None else index
    return choices[k % len(choices)].format(**_fields(inst))
