"""What an episode says about itself: task, robot, clock, the scene it was recorded in, and who drove it.

`EpisodeMeta` is the typed form of an episode file's root attributes; recorders/episode_file.py owns
the file and writes them through `EpisodeMeta.scene_json`. The scene, the task's roles and program
and the take's `Provenance` share one root attribute, `scene`, a JSON object
```
{"spec": SceneSpec JSON, "roles": {role: name}, "program": "one call per line", "provenance":
 {"driver": script | gui | hotkey | planner | policy, "robot": ..., "models": [{"role", "run", "checkpoint"}]}}
```
where every key is optional. Files written before provenance existed, or with keys of their own
(the record session once wrote {"source": "gui"}, rollouts {"policy": NAME}), read with
`provenance` None; `Episode.scene` still gives the whole stored object to readers that take JSON.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from recorders.cell.registry import ROBOT_KINDS as ROBOTS  # the workcell registry owns the robot kinds
from recorders.cell.scene import SceneSpec

CLOCKS = ("sim", "monotonic")
DRIVERS = ("script", "gui", "hotkey", "planner", "policy")
MODEL_ROLES = ("policy", "planner")


@dataclass(frozen=True)
class ModelRef:
    """A learned model that drove a take: its run folder and, where known, the checkpoint used."""

    role: str  # policy | planner
    run: str  # run folder (or the name it was given on the command line)
    checkpoint: str = ""  # checkpoint folder inside the run; "" when the newest was taken unseen

    def __post_init__(self):
        if self.role not in MODEL_ROLES:
            raise ValueError(f"model role must be one of {', '.join(MODEL_ROLES)}, got {self.role!r}")
        if not self.run:
            raise ValueError(f"a {self.role} model needs its run folder")

    def to_json(self) -> dict:
        return {"role": self.role, "run": self.run, "checkpoint": self.checkpoint}

    @staticmethod
    def from_json(d: dict) -> "ModelRef":
        return ModelRef(str(d["role"]), str(d["run"]), str(d.get("checkpoint", "")))


@dataclass(frozen=True)
class Provenance:
    """Who drove a take: a script (oracle program), the operator in the GUI (skill palette, teleop,
    hotkeys), a planner or a learned policy; on which robot; with which models."""

    driver: str  # one of DRIVERS
    robot: str  # one of ROBOTS
    models: tuple[ModelRef, ...] = ()
    objects: str = "true"  # where object poses came from: "true" (the simulator) or "perceived" (the tracker)

    def __post_init__(self):
        if self.driver not in DRIVERS:
            raise ValueError(f"driver must be one of {', '.join(DRIVERS)}, got {self.driver!r}")
        if self.robot not in ROBOTS:
            raise ValueError(f"robot must be one of {', '.join(ROBOTS)}, got {self.robot!r}")
        object.__setattr__(self, "models", tuple(self.models))
        if self.objects not in ("true", "perceived"):
            raise ValueError(f"objects must be true or perceived, got {self.objects!r}")

    def to_json(self) -> dict:
        d = {"driver": self.driver, "robot": self.robot, "models": [m.to_json() for m in self.models]}
        if self.objects != "true":  # files with the simulator's poses read as before
            d["objects"] = self.objects
        return d

    @staticmethod
    def from_json(d: dict) -> "Provenance":
        return Provenance(str(d["driver"]), str(d["robot"]), tuple(ModelRef.from_json(m) for m in d.get("models", ())),
                          str(d.get("objects", "true")))


@dataclass(frozen=True)
class EpisodeMeta:
    task: str  # task id, e.g. "swap"
    instruction: str  # the task text
    robot: str  # sim | franky-sim | franky
    control_hz: float
    seed: int = -1  # -1: none
    split: str = ""
    clock: str = "monotonic"  # sim | monotonic
    scene: SceneSpec | None = None  # the objects and zones; None where the workcell cannot see them
    roles: Mapping[str, str] = field(default_factory=dict)  # task role -> object, zone, colour, direction
    program: str = ""  # the task's oracle program, one call per line
    provenance: Provenance | None = None  # None: written before takes recorded it

    def __post_init__(self):
        if not self.task:
            raise ValueError("episode task must be a non-empty task id")
        if self.robot not in ROBOTS:
            raise ValueError(f"robot must be one of {', '.join(ROBOTS)}, got {self.robot!r}")
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {self.clock!r}")
        if not self.control_hz > 0:
            raise ValueError(f"control_hz must be > 0, got {self.control_hz}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.roles.items()):
            raise ValueError(f"roles map role names to names, got {dict(self.roles)!r}")
        object.__setattr__(self, "roles", MappingProxyType(dict(self.roles)))

    def scene_json(self) -> str:
        """The root attribute `scene`: only the keys this episode has."""
        d: dict = {}
        if self.scene is not None:
            d["spec"] = json.loads(self.scene.to_json())
        if self.roles:
            d["roles"] = dict(self.roles)
        if self.program:
            d["program"] = self.program
        if self.provenance is not None:
            d["provenance"] = self.provenance.to_json()
        return json.dumps(d)

    @staticmethod
    def from_attrs(a: Mapping, scene: dict) -> "EpisodeMeta":
        """The meta of a file's root attributes `a` and its parsed `scene` attribute; KeyError,
        TypeError or ValueError when a field is missing or malformed."""
        spec = scene.get("spec")
        provenance = scene.get("provenance")
        return EpisodeMeta(task=str(a["task"]), instruction=str(a.get("instruction", "")), robot=str(a["robot"]),
                           control_hz=float(a["control_hz"]), seed=int(a.get("seed", -1)),
                           split=str(a.get("split", "")), clock=str(a.get("clock", "monotonic")),
                           scene=None if spec is None else SceneSpec.from_json(json.dumps(spec)),
                           roles={str(k): str(v) for k, v in scene.get("roles", {}).items()},
                           program=str(scene.get("program", "")),
                           provenance=None if provenance is None else Provenance.from_json(provenance))
