"""The workcell's scene description: the objects and zones on the table, their colours, sizes and
poses, the camera settings, and where calibration boards are.

Plain data, saved in every episode and owned by whichever workcell is open: the simulated workcell
builds its MuJoCo scene from it (recorders/sim/scene.py), and a real workcell can describe the objects
it was taught the same way. Nothing here imports a simulator.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

CUBE_SIZE = 0.04  # m, edge length
ZONE_SIZE = 0.12  # m, edge length of the square zones
TABLE_TOP_Z = 0.0  # the robot stands on the table; the table top is the base frame's z = 0
MAX_CUBES = 5
MAX_ZONES = 3
CUBE_GAP = 0.1  # m between cube centres in a layout, room for the open gripper's fingers
IN_ZONE_GAP = 0.065  # m between two cubes laid out in one zone, which is too small for CUBE_GAP
PAIR_SPREAD = np.pi / 12  # rad, how far a pair in a zone may turn away from the zone's diagonal
INSIDE_MARGIN = 0.004  # m from a cube laid out in a zone to the zone's edge

# Where cubes and zones may be put (robot base frame); well inside the arm's comfortable reach.
TABLE_AREA = ((0.33, 0.67), (-0.27, 0.27))

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.12),
    "green": (0.15, 0.65, 0.2),
    "blue": (0.15, 0.3, 0.85),
    "yellow": (0.95, 0.82, 0.1),
    "purple": (0.55, 0.2, 0.75),
    "orange": (0.98, 0.5, 0.08),
}
CAMERA_NAMES = ("front", "wrist")
# Where a simulated workcell can show a ChArUco calibration board (recorders/perception/charuco.py):
# "table" lies on the table for the wrist camera, "hand" is held by the hand facing the front camera.
BOARD_PLACEMENTS = ("table", "hand")


@dataclass(frozen=True)
class CubeSpec:
    name: str  # "red cube", or "red cube 2" when a colour repeats
    colour: str
    position: tuple[float, float]  # xy on the table
    yaw: float


@dataclass(frozen=True)
class ZoneSpec:
    name: str  # "blue zone"
    colour: str
    position: tuple[float, float]
    size: float = ZONE_SIZE


@dataclass(frozen=True)
class CameraSettings:
    width: int = 128
    height: int = 128
    depth: bool = False

    def __post_init__(self):
        if not (16 <= self.width <= 1920 and 16 <= self.height <= 1080):
            raise ValueError(f"camera size {self.width}x{self.height} is outside 16x16..1920x1080")


@dataclass(frozen=True)
class SceneSpec:
    """Everything needed to rebuild a workcell scene exactly."""

    cubes: tuple[CubeSpec, ...]
    zones: tuple[ZoneSpec, ...]
    cameras: CameraSettings = field(default_factory=CameraSettings)
    seed: int = 0
    boards: tuple[str, ...] = ()  # calibration boards shown, from BOARD_PLACEMENTS; none in task scenes

    def __post_init__(self):
        unknown = [b for b in self.boards if b not in BOARD_PLACEMENTS]
        if unknown or len(set(self.boards)) != len(self.boards):
            raise ValueError(f"calibration boards are distinct ones of {', '.join(BOARD_PLACEMENTS)}, "
                             f"got {', '.join(self.boards)}")

    @property
    def object_names(self) -> list[str]:
        return [c.name for c in self.cubes]

    @property
    def zone_names(self) -> list[str]:
        return [z.name for z in self.zones]

    def cube(self, name: str) -> CubeSpec:
        for c in self.cubes:
            if c.name == name:
                return c
        raise KeyError(f"no object named {name!r} in the scene; objects: {', '.join(self.object_names)}")

    def zone(self, name: str) -> ZoneSpec:
        for z in self.zones:
            if z.name == name:
                return z
        raise KeyError(f"no zone named {name!r} in the scene; zones: {', '.join(self.zone_names)}")

    def to_json(self) -> str:
        d = asdict(self)
        if not self.boards:  # scenes without boards read exactly as they did before boards existed
            del d["boards"]
        return json.dumps(d)

    @staticmethod
    def from_json(text: str) -> "SceneSpec":
        d = json.loads(text)
        return SceneSpec(
            cubes=tuple(CubeSpec(c["name"], c["colour"], tuple(c["position"]), c["yaw"]) for c in d["cubes"]),
            zones=tuple(ZoneSpec(z["name"], z["colour"], tuple(z["position"]), z["size"]) for z in d["zones"]),
            cameras=CameraSettings(**d["cameras"]),
            seed=d["seed"],
            boards=tuple(d.get("boards", ())),
        )


def cube_names(colours: list[str]) -> list[str]:
    """Names for cubes of these colours: "red cube", or "red cube 1", "red cube 2" for repeats."""
    names = []
    for i, c in enumerate(colours):
        n_same = colours.count(c)
        names.append(f"{c} cube" if n_same == 1 else f"{c} cube {colours[: i + 1].count(c)}")
    return names


def _reach(zone: ZoneSpec, yaw: float) -> float:
    """How far (in x and in y) from the zone's centre a cube of this yaw may lie and stay INSIDE_MARGIN
    inside it."""
    return zone.size / 2 - CUBE_SIZE / 2 * (abs(np.cos(yaw)) + abs(np.sin(yaw))) - INSIDE_MARGIN


def _zone_spots(rng: np.random.Generator, zones: list[ZoneSpec],
                inside: dict[int, str]) -> dict[int, tuple[np.ndarray, float]]:
    """Cube index -> (xy, yaw) for the cubes laid out inside zones, one or two per zone.

    A pair lies near a diagonal of its zone, IN_ZONE_GAP or more apart, both turned so that their
    faces are at 45 degrees to the line between them: the gripper closes along a face normal of the
    cube it picks, so its fingers never reach towards the neighbour."""
    spots = {}
    for zone in zones:
        held = sorted(i for i, colour in inside.items() if colour == zone.colour)
        centre = np.asarray(zone.position)
        if len(held) == 1:
            yaw = float(rng.uniform(-np.pi / 4, np.pi / 4))
            spots[held[0]] = (centre + rng.uniform(-_reach(zone, yaw), _reach(zone, yaw), 2), yaw)
        elif len(held) == 2:
            phi = np.pi / 4 + np.pi / 2 * int(rng.integers(4)) + rng.uniform(-PAIR_SPREAD, PAIR_SPREAD)
            yaw = float(phi % (np.pi / 2) - np.pi / 4)  # phi - 45 degrees, as the cube is square
            reach, u = _reach(zone, yaw), np.array([np.cos(phi), np.sin(phi)])
            half = rng.uniform(IN_ZONE_GAP, 2 * reach / np.abs(u).max()) / 2 * u  # centre to each cube
            room = reach - np.abs(half)
            mid = centre + rng.uniform(-room, room)
            spots[held[0]], spots[held[1]] = (mid + half, yaw), (mid - half, yaw)
        elif held:
            raise ValueError(f"at most two cubes can be laid out in the {zone.name}, got {len(held)}")
    return spots


def sample_layout(
    rng: np.random.Generator,
    cube_colours: list[str],
    zone_colours: list[str],
    cameras: CameraSettings = CameraSettings(),
    seed: int = 0,
    max_tries: int = 2000,
    inside: Mapping[int, str] | None = None,
) -> SceneSpec:
    """Random non-overlapping zones, then cubes outside every zone, kept apart for the gripper.

    `inside`: cube index (in `cube_colours`) -> colour of a zone (in `zone_colours`) that cube lies
    fully inside instead, INSIDE_MARGIN from the zone's edges, at most two to a zone (_zone_spots);
    the other cubes keep the gripper's clearance from them. Without it the random draws are exactly
    those of a layout before `inside` existed, so every seed keeps its scene."""
    inside = dict(inside or {})
    unknown = [f"{i} -> {z}" for i, z in inside.items()
               if z not in zone_colours or not 0 <= i < len(cube_colours)]
    if unknown:
        raise ValueError(f"inside names a cube index or zone colour that is not laid out: {', '.join(unknown)}")
    (x0, x1), (y0, y1) = TABLE_AREA
    half = ZONE_SIZE / 2
    for _ in range(max_tries):
        zones: list[ZoneSpec] = []
        for colour in zone_colours:
            for _ in range(200):
                p = (rng.uniform(x0 + half, x1 - half), rng.uniform(y0 + half, y1 - half))
                if all(max(abs(p[0] - z.position[0]), abs(p[1] - z.position[1])) > ZONE_SIZE + 0.03 for z in zones):
                    zones.append(ZoneSpec(f"{colour} zone", colour, (float(p[0]), float(p[1]))))
                    break
        if len(zones) != len(zone_colours):
            continue
        spots = _zone_spots(rng, zones, inside)
        cubes: list[CubeSpec] = []
        for i, (name, colour) in enumerate(zip(cube_names(cube_colours), cube_colours)):
            if i in spots:
                (x, y), yaw = spots[i]
                cubes.append(CubeSpec(name, colour, (float(x), float(y)), yaw))
                continue
            keep_clear = [c.position for c in cubes] + [xy for j, (xy, _) in spots.items() if j > i]
            for _ in range(200):
                p = (rng.uniform(x0, x1), rng.uniform(y0, y1))
                clear_of_zones = all(
                    max(abs(p[0] - z.position[0]), abs(p[1] - z.position[1])) > half + CUBE_SIZE for z in zones
                )
                clear_of_cubes = all(np.hypot(p[0] - q[0], p[1] - q[1]) > CUBE_GAP for q in keep_clear)
                if clear_of_zones and clear_of_cubes:
                    yaw = float(rng.uniform(-np.pi / 4, np.pi / 4))
                    cubes.append(CubeSpec(name, colour, (float(p[0]), float(p[1])), yaw))
                    break
        if len(cubes) == len(cube_colours):
            return SceneSpec(tuple(cubes), tuple(zones), cameras, seed)
    raise RuntimeError(f"could not lay out {len(cube_colours)} cubes and {len(zone_colours)} zones on the table")
