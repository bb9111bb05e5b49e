"""Instructions no program of the robot API can satisfy: a held-out test set for refusals.

A planner must answer these with "cannot do this" and a reason before the arm moves
(models/instruction_check.py), and must not refuse the suite's own tasks. Nothing trains or sets a
threshold with this set: `eval --planner RUN --phrasing impossible` asks each episode one of them,
chosen by its seed, in that episode's scene, and counts the refusals.

Kinds: things the workcell does not have; objects or zones of a colour the scene lacks; actions the
robot API has no function for; things that are not instructions. Placeholders, filled per scene:
{a} the colour of a cube in the scene, {z} the colour of a zone in the scene, {x} a palette colour no
cube or zone of the scene has (when every palette colour is present, a colour outside it), {n} a
colour outside the palette.
"""
from __future__ import annotations

import zlib

from recorders.cell.scene import COLOURS
from recorders.task_suite import TaskInstance

IMPOSSIBLE: tuple[str, ...] = (
    # things the workcell does not have
    "open the drawer",
    "Close the door behind you.",
    "pour some water into the cup",
    "pick up the screwdriver and hand it to me",
    "fold the towel neatly",
    "turn on the lamp",
    "put the {a} cube in the fridge",
    "load the dishwasher",
    # objects or zones the scene lacks
    "put the {x} cube in the {z} zone",
    "stack the {a} cube on the {x} block",
    "move the {n} box into the {z} area",
    "put the {a} cube in the {x} zone",
    "swap the {x} cube and the {a} cube",
    "push the {n} cube to the left",
    # actions the robot API has no function for
    "paint the {a} cube {n}",
    "throw the {a} cube across the room",
    "break the {a} block in half",
    "lift the table",
    "spin the {a} cube around ten times",
    "weld the {a} cube to the table",
    # not instructions at all
    "what's the weather like today?",
    "tell me a joke",
    "asdf qwerty zxcv",
    "sing me a song",
)
OUTSIDE_PALETTE = ("pink", "white", "black", "brown", "grey", "cyan")


def impossible(inst: TaskInstance, index: int | None = None) -> str:
    """One impossible instruction in `inst`'s scene: number `index` (default: chosen by the seed)."""
    i = (inst.seed if index is None else index) % len(IMPOSSIBLE)
    scene = inst.scene
    present = {c.colour for c in scene.cubes} | {z.colour for z in scene.zones}
    pick = zlib.crc32(f"{inst.task.id}|{inst.seed}|{i}".encode())
    cubes = [c.colour for c in scene.cubes]
    zones = [z.colour for z in scene.zones] or cubes
    absent = [c for c in COLOURS if c not in present]
    outside = OUTSIDE_PALETTE[pick % len(OUTSIDE_PALETTE)]
    return IMPOSSIBLE[i].format(a=cubes[pick % len(cubes)], z=zones[pick % len(zones)],
                                x=absent[pick % len(absent)] if absent else outside, n=outside)
