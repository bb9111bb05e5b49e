"""The task suite of the simulated workcell (DESIGN.md section 6).

Each task has an instruction template, roles filled from a seed (which cube is A, which zone is Z),
a train/test split over colour combinations, an oracle program written with the robot API, and a
success check from simulator state. `make_instance(task, seed, split)` is deterministic.

Two tasks are decided by the layout rather than the words and the object list, so a planner has to
look at the camera image: `clear_zone` (which cubes lie in the zone this seed) and `nearest` (which
cube is nearest to the robot; its role N is never said in the instruction).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from recorders.pose import Pose
from recorders.robot_api_spec import Call
from recorders.cell.scene import COLOURS, CUBE_SIZE, CameraSettings, SceneSpec, sample_layout
from recorders.skills import DIRECTIONS

SPLITS = ("train", "test")
PUSH_DISTANCE = 0.1
PLACE_TOLERANCE = 0.03  # m, how far from its goal a cube may rest and still count
NEAREST_MARGIN = 0.05  # m, nearest's cube is at least this much nearer to the robot than any other
DIRECTION_PHRASES = {"left": "to the left", "right": "to the right", "forward": "forward", "backward": "backward"}


@dataclass(frozen=True)
class TaskDef:
    id: str
    template: str  # instruction with {A}, {B}, {C}, {Z}, {K}, {D} placeholders
    # The roles a scene fills: the template's placeholders, and N (nearest's cube), which the
    # instruction leaves for the camera to find.
    roles: tuple[str, ...]
    needs_memory: bool = False
    held_out: bool = False  # tower and restore are held out of training as tasks


TASKS: dict[str, TaskDef] = {t.id: t for t in (
    TaskDef("pick_place", "put the {A} in the {Z}", ("A", "Z")),
    TaskDef("stack", "stack the {A} on the {B}", ("A", "B")),
    TaskDef("tower", "build a tower: the {A} on the {B} on the {C}", ("A", "B", "C"), held_out=True),
    TaskDef("push", "push the {A} {D}", ("A", "D")),
    TaskDef("swap", "swap the {A} and the {B}", ("A", "B"), needs_memory=True),
    TaskDef("restore", "move the {A} to the {Z}, then put it back", ("A", "Z"), needs_memory=True, held_out=True),
    TaskDef("sort", "put every {K} cube in the {Z}", ("K", "Z")),
    TaskDef("clear_zone", "clear the {Z}", ("Z",)),
    TaskDef("nearest", "put the cube nearest to the robot in the {Z}", ("N", "Z")),
)}


class TaskError(ValueError):
    """Unknown task, bad split or seed; the message lists what is valid."""


def task_def(task: str) -> TaskDef:
    if task not in TASKS:
        raise TaskError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    return TASKS[task]


def split_of(task: str, combo: tuple[str, ...]) -> str:
    """Every fifth colour combination of a task (by a stable hash) is held back for testing."""
    return "test" if zlib.crc32(("|".join((task, *combo))).encode()) % 5 == 0 else "train"


@dataclass
class TaskInstance:
    task: TaskDef
    seed: int
    split: str
    scene: SceneSpec
    instruction: str
    roles: dict[str, str]  # role -> object / zone / colour / direction
    program: list[Call] = field(default_factory=list)

    @property
    def program_code(self) -> str:
        return "\n".join(c.code for c in self.program)


class _Draw(NamedTuple):
    cube_colours: list[str]
    zone_colours: list[str]
    roles: dict[str, str]  # role -> colour (push's D: a direction)
    inside: dict[int, str]  # cube index -> colour of the zone it is laid out in (clear_zone)


def _choose_roles(task: TaskDef, rng: np.random.Generator, split: str) -> _Draw:
    """Cube colours, zone colours and the role colours for one episode in `split` (nearest's cube
    follows from the layout, so make_instance checks its split)."""
    palette = list(COLOURS)
    for _ in range(1000):
        cubes = [str(c) for c in rng.permutation(palette)]
        zones = [str(z) for z in rng.permutation(palette)]
        roles: dict[str, str] = {}
        inside: dict[int, str] = {}
        combo: tuple[str, ...] | None
        if task.id == "sort":
            k = cubes[0]
            roles = {"K": k, "Z": zones[0]}
            others = [c for c in cubes if c != k][: int(rng.integers(1, 3))]
            cube_colours = [k, k, *others]
            combo = (k, zones[0])
        elif task.id == "clear_zone":  # 1 or 2 cubes, anywhere in the scene's order, lie in Z
            roles = {"Z": zones[0]}
            cube_colours = cubes[: int(rng.integers(3, 5))]
            # A cube of the zone's own colour would hardly show against it in the camera image.
            seen = [i for i, c in enumerate(cube_colours) if c != zones[0]]
            picked = sorted(int(i) for i in rng.choice(seen, int(rng.integers(1, 3)), replace=False))
            inside = {i: zones[0] for i in picked}
            combo = (zones[0], *sorted(cube_colours[i] for i in picked))
        elif task.id == "nearest":
            roles = {"Z": zones[0]}
            cube_colours = cubes[: int(rng.integers(3, 5))]
            combo = None
        else:
            n_roles = sum(r in "ABC" for r in task.roles)
            for r, c in zip("ABC", cubes[:n_roles]):
                roles[r] = c
            if "Z" in task.roles:
                roles["Z"] = zones[0]
            if "D" in task.roles:
                roles["D"] = str(rng.choice(list(DIRECTIONS)))
            n_cubes = int(rng.integers(3, 6)) if task.id == "tower" else int(rng.integers(3, 5))
            n_cubes = max(n_cubes, n_roles)
            cube_colours = cubes[:n_cubes]
            combo = tuple(roles[r] for r in task.roles)
        if combo is None or split_of(task.id, combo) == split:
            # clear_zone needs table to clear the cubes to: with a third zone, free_space found none
            # near the cubes in about 1 of 2000 layouts.
            n_zones = 2 if task.id == "clear_zone" else int(rng.integers(2, 4))
            zone_colours = [roles["Z"]] if "Z" in roles else []
            zone_colours += [z for z in zones if z not in zone_colours][: n_zones - len(zone_colours)]
            return _Draw(cube_colours, zone_colours, roles, inside)
    raise TaskError(f"task {task.id} has no colour combination in split {split!r}")


def _push_path_clear(scene: SceneSpec, name: str, direction: str) -> bool:
    """The cube can travel PUSH_DISTANCE (plus the pusher behind it) without meeting anything."""
    d = DIRECTIONS[direction]
    p = np.asarray(scene.cube(name).position)
    goal = p + d * PUSH_DISTANCE
    if not (0.3 < goal[0] < 0.7 and -0.3 < goal[1] < 0.3):
        return False
    for c in scene.cubes:
        if c.name == name:
            continue
        q = np.asarray(c.position) - p
        along, across = float(q @ d), abs(float(q @ np.array([-d[1], d[0]])))
        if -0.1 < along < PUSH_DISTANCE + 0.06 and across < 0.07:
            return False
    for z in scene.zones:  # pushing into a zone would make "push" ambiguous with "put in zone"
        q = goal - np.asarray(z.position)
        if max(abs(q[0]), abs(q[1])) < z.size / 2 + CUBE_SIZE:
            return False
    return True


def nearest_cube(scene: SceneSpec, margin: float = NEAREST_MARGIN) -> str | None:
    """The cube nearest to the robot (the base frame's origin, in xy), None unless it is nearer than
    every other by `margin`."""
    by_distance = sorted(scene.cubes, key=lambda c: float(np.hypot(*c.position)))
    d = [float(np.hypot(*c.position)) for c in by_distance[:2]]
    return by_distance[0].name if len(d) == 1 or d[1] - d[0] >= margin else None


# The "task" of a run that follows a free instruction in a scene the suite did not lay out (a real
# arm's taught scene): no roles, no oracle program, no success check. Not in TASKS.
FREE_INSTRUCTION = TaskDef("instruction", "{instruction}", ())


def free_instance(scene: SceneSpec, instruction: str) -> TaskInstance:
    """A run of `instruction` in `scene` (a taught one) for a learned planner: nothing to check it against."""
    return TaskInstance(FREE_INSTRUCTION, -1, "", scene, instruction, {})


def make_instance(task: str, seed: int, split: str = "train",
                  cameras: CameraSettings = CameraSettings()) -> TaskInstance:
    """The episode of `task` for `seed` in `split`: scene, instruction and oracle program."""
    tdef = task_def(task)
    if split not in SPLITS:
        raise TaskError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TaskError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng([int(seed), zlib.crc32(task.encode())])
    for _ in range(200):
        draw = _choose_roles(tdef, rng, split)
        scene = sample_layout(rng, draw.cube_colours, draw.zone_colours, cameras, seed=int(seed), inside=draw.inside)
        roles = draw.roles
        if tdef.id == "nearest":
            n = nearest_cube(scene)
            if n is None or split_of(tdef.id, (scene.cube(n).colour, roles["Z"])) != split:
                continue
            roles = {"N": scene.cube(n).colour, **roles}
        names = {c.colour: c.name for c in scene.cubes}  # role colours are unique except sort's K
        named = {r: (names[v] if r in "ABCN" else f"{v} zone" if r == "Z" else v) for r, v in roles.items()}
        if tdef.id == "push" and not _push_path_clear(scene, named["A"], named["D"]):
            continue
        phrases = {**named, **({"D": DIRECTION_PHRASES[named["D"]]} if "D" in named else {})}
        instruction = tdef.template.format(**phrases)
        inst = TaskInstance(tdef, int(seed), split, scene, instruction, named)
        inst.program = oracle_program(inst)
        return inst
    raise TaskError(f"could not lay out task {task} for seed {seed}")


def oracle_program(inst: TaskInstance) -> list[Call]:
    """The scripted solution, as calls of the robot API."""
    r = inst.roles
    C = Call
    t = inst.task.id
    if t == "pick_place":
        prog = [C("pick", (r["A"],)), C("place", (r["A"], r["Z"]))]
    elif t == "stack":
        prog = [C("pick", (r["A"],)), C("place", (r["A"], r["B"]))]
    elif t == "tower":
        prog = [C("pick", (r["B"],)), C("place", (r["B"], r["C"])), C("pick", (r["A"],)), C("place", (r["A"], r["B"]))]
    elif t == "push":
        prog = [C("push", (r["A"], r["D"], PUSH_DISTANCE))]
    elif t == "swap":
        a, b = r["A"], r["B"]
        ka, kb = f"{a} start", f"{b} start"
        prog = [C("remember", (ka, a)), C("remember", (kb, b)),
                C("pick", (a,)), C("place", (a, C("free_space", (a,)))),
                C("pick", (b,)), C("place", (b, C("recall", (ka,)))),
                C("pick", (a,)), C("place", (a, C("recall", (kb,))))]
    elif t == "restore":
        a, key = r["A"], f"{r['A']} start"
        prog = [C("remember", (key, a)), C("pick", (a,)), C("place", (a, r["Z"])),
                C("pick", (a,)), C("place", (a, C("recall", (key,))))]
    elif t == "sort":
        prog = []
        for c in inst.scene.cubes:
            if c.colour == r["K"]:
                prog += [C("pick", (c.name,)), C("place", (c.name, r["Z"]))]
    elif t == "clear_zone":
        prog = []
        for c in inst.scene.cubes:
            if in_zone(c.position, inst.scene, r["Z"]):
                prog += [C("pick", (c.name,)), C("place", (c.name, C("free_space", (c.name,))))]
    elif t == "nearest":
        prog = [C("pick", (r["N"],)), C("place", (r["N"], r["Z"]))]
    else:  # pragma: no cover - TASKS and this function are kept in step by tests
        raise TaskError(f"no oracle for task {t}")
    return prog + [C("done", ())]


def in_zone(position, scene: SceneSpec, zone: str) -> bool:
    z = scene.zone(zone)
    return max(abs(position[0] - z.position[0]), abs(position[1] - z.position[1])) < z.size / 2


def _resting(position) -> bool:
    return abs(position[2] - CUBE_SIZE / 2) < 0.01


def _on_top(upper, lower) -> bool:
    return (np.hypot(upper[0] - lower[0], upper[1] - lower[1]) < 0.025
            and abs(upper[2] - lower[2] - CUBE_SIZE) < 0.01)


class TaskMonitor:
    """Watches object poses during an episode and decides success from simulator state."""

    def __init__(self, inst: TaskInstance, initial: dict[str, Pose]):
        self.inst = inst
        self.initial = {n: p.xyz for n, p in initial.items()}
        self.visited_zone = False  # restore: the cube has rested in the zone at some point

    def watch(self, cell) -> None:
        """After a command on `cell`: perceived objects are tracked every tick, as a take's observation
        does (the tracker follows a carried cube from tick to tick); success is judged on the truth."""
        if cell.perceived_objects:
            cell.object_poses()
        self.update(cell.true_object_poses())

    def update(self, poses: dict[str, Pose]) -> None:
        if self.inst.task.id == "restore":
            a = poses[self.inst.roles["A"]].xyz
            if in_zone(a, self.inst.scene, self.inst.roles["Z"]) and _resting(a):
                self.visited_zone = True

    def success(self, poses: dict[str, Pose]) -> bool:
        return bool(self._success(poses))

    def _success(self, poses: dict[str, Pose]) -> bool:
        p = {n: q.xyz for n, q in poses.items()}
        r, t, scene = self.inst.roles, self.inst.task.id, self.inst.scene
        near = lambda a, b: np.hypot(a[0] - b[0], a[1] - b[1]) < PLACE_TOLERANCE  # noqa: E731
        if t == "pick_place":
            return in_zone(p[r["A"]], scene, r["Z"]) and _resting(p[r["A"]])
        if t == "stack":
            return _on_top(p[r["A"]], p[r["B"]])
        if t == "tower":
            return _on_top(p[r["A"]], p[r["B"]]) and _on_top(p[r["B"]], p[r["C"]])
        if t == "push":
            d = DIRECTIONS[r["D"]]
            moved = p[r["A"]][:2] - self.initial[r["A"]][:2]
            along, across = float(moved @ d), abs(float(moved @ np.array([-d[1], d[0]])))
            return along > 0.7 * PUSH_DISTANCE and across < 0.04 and _resting(p[r["A"]])
        if t == "swap":
            a, b = r["A"], r["B"]
            return (near(p[a], self.initial[b]) and near(p[b], self.initial[a])
                    and _resting(p[a]) and _resting(p[b]))
        if t == "restore":
            a = r["A"]
            return self.visited_zone and near(p[a], self.initial[a]) and _resting(p[a])
        if t == "sort":
            k = [c.name for c in scene.cubes if c.colour == r["K"]]
            others = [c.name for c in scene.cubes if c.colour != r["K"]]
            return (all(in_zone(p[n], scene, r["Z"]) and _resting(p[n]) for n in k)
                    and not any(in_zone(p[n], scene, r["Z"]) for n in others))
        if t == "clear_zone":  # every cube on the table, none in Z (neither those in it nor the others)
            return all(_resting(p[n]) and not in_zone(p[n], scene, r["Z"]) for n in scene.object_names)
        if t == "nearest":
            return in_zone(p[r["N"]], scene, r["Z"]) and _resting(p[r["N"]])
        return False
