"""What a workcell was taught: the objects and targets clicked and named in a camera view, and the one
file that keeps them (`taught_scene.json` in the workcell's folder).

    teaching.py (a click) -> ObjectModel / TargetModel -> TaughtScene.with_object / with_target
    TaughtScene -> save_taught_scene(folder) ... load_taught_scene(folder) -> TaughtScene | None
    TaughtScene -> tracker.py (what to look for) and scene_spec() (the robot API's names and zones)

Objects and targets share one namespace, because a place target may be either. The file carries a
`format_version`; a newer or corrupt file raises `TaughtSceneError` naming the file, never a
traceback from json. Writing is atomic (a temporary file, then os.replace), so a crash while saving
leaves the previous file.

`scene_spec()` describes the taught scene as a recorders.cell.scene.SceneSpec so the robot API, the
task suite's roles and the episode files see the same names as in the simulator. A SceneSpec colour
must be one of scene.COLOURS (the simulator paints with them), so every model carries the *named*
colour that best explains the pixels the camera saw (camera_frame.nearest_colour_name): a yellow sponge is
"yellow", a brown box the nearest of red/orange/yellow. That name only draws and describes the
object; tracking uses the measured colours. A greyish object (white, black, metal) gets whichever
named colour is nearest, and the tracker cannot tell it from the robot (see tracker.py).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from recorders.cell.scene import COLOURS, ZONE_SIZE, CameraSettings, CubeSpec, SceneSpec, ZoneSpec
from recorders.pose import Pose, quat_yaw

FORMAT = "code2act.taught_scene"
FORMAT_VERSION = 1
TAUGHT_SCENE_FILE = "taught_scene.json"


class TeachingError(ValueError):
    """Something a user did while teaching cannot be taught; the message is one line saying why."""


class EmptyNameError(TeachingError):
    pass


class DuplicateNameError(TeachingError):
    pass


class TaughtSceneError(ValueError):
    """A taught-scene file cannot be read (corrupt, or from a newer version); names the file."""


def clean_name(name: str, taken: tuple[str, ...] | list[str] | set[str] = ()) -> str:
    """`name` without surrounding blanks; EmptyNameError or DuplicateNameError (against `taken`)."""
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise EmptyNameError("give the object or target a name (e.g. \"red cube\", \"sponge\")")
    if cleaned in taken:
        raise DuplicateNameError(f"the name {cleaned!r} is taken already; choose another or forget the old one")
    return cleaned


@dataclass(frozen=True)
class ObjectModel:
    """A taught object: how it looks (its colours), how big it is, and where it was taught."""

    name: str
    colour: str  # the nearest named colour (scene.COLOURS), for the SceneSpec and for drawing
    rgb: tuple[float, float, float]  # mean colour of its pixels, 0..1
    base_rgb: tuple[float, float, float]  # its colour unclipped and at full brightness (max channel 1), 0..1
    samples: tuple[tuple[int, int, int], ...]  # the commonest RGB colours (0..255) of its taught pixels
    colour_tol: float  # a pixel this close (RGB, 0..1) to its colours lit more or less brightly may be it
    size: tuple[float, float, float]  # m: extents along its own x and y (yaw) axes, and its height
    pose: Pose  # its centre and yaw (about the base z) when taught

    def __post_init__(self):
        if self.colour not in COLOURS:
            raise ValueError(f"colour must be one of {', '.join(COLOURS)}, got {self.colour!r}")
        if min(self.size) <= 0 or self.colour_tol <= 0:
            raise ValueError(f"object {self.name!r}: size {self.size} and colour_tol {self.colour_tol} must be > 0")

    @property
    def half_size(self) -> np.ndarray:
        return np.asarray(self.size, dtype=float) / 2

    @property
    def yaw_period(self) -> float:
        """Turns that look the same: a quarter turn for a square footprint, half a turn otherwise."""
        sx, sy, _ = self.size
        return np.pi / 2 if abs(sx - sy) <= 0.15 * max(sx, sy) else np.pi

    def to_dict(self) -> dict:
        return {"name": self.name, "colour": self.colour, "rgb": list(self.rgb), "base_rgb": list(self.base_rgb),
                "samples": [list(c) for c in self.samples], "colour_tol": self.colour_tol,
                "size": list(self.size), "pose": list(self.pose.to_array())}

    @staticmethod
    def from_dict(d: dict) -> "ObjectModel":
        samples = tuple(tuple(int(v) for v in _floats(c, 3)) for c in d["samples"])
        return ObjectModel(str(d["name"]), str(d["colour"]), _floats(d["rgb"], 3), _floats(d["base_rgb"], 3),
                           samples, float(d["colour_tol"]), _floats(d["size"], 3),
                           Pose.from_array(_floats(d["pose"], 7)))


@dataclass(frozen=True)
class TargetModel:
    """A taught target: a named square place on the table (a zone)."""

    name: str
    position: tuple[float, float, float]  # its centre on the table, base frame
    size: float = ZONE_SIZE  # m, edge of the square
    colour: str = "yellow"  # the nearest named colour of the table there (scene.COLOURS), for drawing

    def __post_init__(self):
        if self.colour not in COLOURS:
            raise ValueError(f"colour must be one of {', '.join(COLOURS)}, got {self.colour!r}")
        if self.size <= 0:
            raise ValueError(f"target {self.name!r}: size must be > 0, got {self.size}")

    def to_dict(self) -> dict:
        return {"name": self.name, "position": list(self.position), "size": self.size, "colour": self.colour}

    @staticmethod
    def from_dict(d: dict) -> "TargetModel":
        return TargetModel(str(d["name"]), _floats(d["position"], 3), float(d["size"]), str(d["colour"]))


def _floats(values, n: int) -> tuple:
    if len(values) != n:
        raise ValueError(f"expected {n} numbers, got {len(values)}")
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class TaughtScene:
    """The objects and targets one workcell was taught, in teaching order."""

    objects: tuple[ObjectModel, ...] = ()
    targets: tuple[TargetModel, ...] = ()
    metadata: dict = field(default_factory=dict, compare=False)  # free notes (which camera, when)

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objects] + [t.name for t in self.targets]

    def object(self, name: str) -> ObjectModel:
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(f"no taught object named {name!r}; objects: {', '.join(o.name for o in self.objects)}")

    def with_object(self, model: ObjectModel) -> "TaughtScene":
        clean_name(model.name, self.names)
        return replace(self, objects=(*self.objects, model))

    def with_target(self, model: TargetModel) -> "TaughtScene":
        clean_name(model.name, self.names)
        return replace(self, targets=(*self.targets, model))

    def without(self, name: str) -> "TaughtScene":
        """The scene with the object or target `name` forgotten (KeyError if there is none)."""
        if name not in self.names:
            raise KeyError(f"nothing taught is named {name!r}; taught: {', '.join(self.names)}")
        return replace(self, objects=tuple(o for o in self.objects if o.name != name),
                       targets=tuple(t for t in self.targets if t.name != name))

    def scene_spec(self, cameras: CameraSettings = CameraSettings(), seed: int = 0) -> SceneSpec:
        """The taught scene as a SceneSpec: every object a CubeSpec at its taught place and yaw, every
        target a ZoneSpec; the robot API takes its object and zone names and zone places from it."""
        cubes = tuple(CubeSpec(o.name, o.colour, (o.pose.position[0], o.pose.position[1]),
                               quat_yaw(np.asarray(o.pose.quat))) for o in self.objects)
        zones = tuple(ZoneSpec(t.name, t.colour, (t.position[0], t.position[1]), t.size) for t in self.targets)
        return SceneSpec(cubes, zones, cameras, seed)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION,
                           "objects": [o.to_dict() for o in self.objects],
                           "targets": [t.to_dict() for t in self.targets],
                           "metadata": self.metadata}, indent=1)

    @staticmethod
    def from_json(text: str) -> "TaughtScene":
        """The scene in `text`; ValueError (one line) when it is not a taught scene of a known version."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not a taught scene (no \"format\": \"{FORMAT}\")")
        version = d.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(f"format_version {version!r} is newer than this program reads ({FORMAT_VERSION})")
        try:
            scene = TaughtScene(tuple(ObjectModel.from_dict(o) for o in d["objects"]),
                                tuple(TargetModel.from_dict(t) for t in d["targets"]), dict(d.get("metadata", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"a malformed entry ({type(e).__name__}: {e})") from None
        if len(set(scene.names)) != len(scene.names):
            raise ValueError("two entries share a name")
        return scene


def taught_scene_path(folder: Path | str) -> Path:
    return Path(folder) / TAUGHT_SCENE_FILE


def save_taught_scene(folder: Path | str, scene: TaughtScene) -> Path:
    """Write `scene` to folder/taught_scene.json atomically (the folder is created); returns the path."""
    path = taught_scene_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".taught_scene.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(scene.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_taught_scene(folder: Path | str) -> TaughtScene | None:
    """The scene saved in `folder`, None when nothing was taught there; TaughtSceneError when corrupt."""
    path = taught_scene_path(folder)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise TaughtSceneError(f"cannot read the taught scene {path}: {e}") from None
    try:
        return TaughtScene.from_json(text)
    except ValueError as e:
        raise TaughtSceneError(f"the taught scene {path} is corrupt: {e}") from None
