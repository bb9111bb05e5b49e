"""The workcell's scene description: the objects and zones on the table, their colours, sizes and
poses, the camera settings, and where calibration boards are.

Plain data, saved in every episode and owned by whichever workcell is open: the simulated workcell
builds its MuJoCo scene from it (recorders/sim/scene.py), and a real workcell can describe the objects
it was taught the same way. Nothing here imports a simulator.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

CUBE_SIZE = 0.04  # m, edge length
ZONE_SIZE = 0.12  # m, edge length of the square zones
TABLE_TOP_Z = 0.0  # the robot stands on the table; the table top is the base frame's z = 0
MAX_CUBES = 5
MAX_ZONES = 3

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


def sample_layout(
    rng: np.random.Generator,
    cube_colours: list[str],
    zone_colours: list[str],
    cameras: CameraSettings = CameraSettings(),
    seed: int = 0,
    max_tries: int = 2000,
) -> SceneSpec:
    """Random non-overlapping zones, then cubes outside every zone, kept apart for the gripper."""
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
        cubes: list[CubeSpec] = []
        for name, colour in zip(cube_names(cube_colours), cube_colours):
            for _ in range(200):
                p = (rng.uniform(x0, x1), rng.uniform(y0, y1))
                clear_of_zones = all(
                    max(abs(p[0] - z.position[0]), abs(p[1] - z.position[1])) > half + CUBE_SIZE for z in zones
                )
                clear_of_cubes = all(np.hypot(p[0] - c.position[0], p[1] - c.position[1]) > 0.1 for c in cubes)
                if clear_of_zones and clear_of_cubes:
                    yaw = float(rng.uniform(-np.pi / 4, np.pi / 4))
                    cubes.append(CubeSpec(name, colour, (float(p[0]), float(p[1])), yaw))
                    break
        if len(cubes) == len(cube_colours):
            return SceneSpec(tuple(cubes), tuple(zones), cameras, seed)
    raise RuntimeError(f"could not lay out {len(cube_colours)} cubes and {len(zone_colours)} zones on the table")
