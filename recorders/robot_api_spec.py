"""THE registry of the robot API's subtask functions, and the `Call` value that names one call.

Declared once here, the specs feed the skill dispatch (recorders/robot_api.py), the timeline's
label vocabulary, the planner's prompt and grammar, and the program validator
(models/program_check.py). `Call.code` is the canonical Python text of a call; `Call.from_code`
parses and validates one with `ast` (never eval).
"""
from __future__ import annotations

import ast
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Union

DIRECTIONS = ("left", "right", "forward", "backward")
MAX_DISTANCE_M = 0.3
PARAM_TYPES = ("object", "target", "direction", "distance", "key")
KINDS = ("motion", "memory", "query", "terminal")


class InvalidCallError(ValueError):
    """A call's text does not match the robot API; the message is one line saying why."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str  # one of PARAM_TYPES
    doc: str
    choices: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.type not in PARAM_TYPES:
            raise ValueError(f"parameter type must be one of {PARAM_TYPES}, got {self.type!r}")


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    params: tuple[ParamSpec, ...]
    doc: str
    kind: str  # one of KINDS
    returns_pose: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"function kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


_OBJ = ParamSpec("obj", "object", "an object in the scene, e.g. \"red cube\"")
API: dict[str, FunctionSpec] = {f.name: f for f in (
    FunctionSpec("pick", (_OBJ,), "grasp an object and lift it", "motion"),
    FunctionSpec("place", (_OBJ, ParamSpec("target", "target", "an object, a zone, recall(key) or free_space(obj)")),
                 "put the held object on an object, in a zone, or at a stored pose", "motion"),
    FunctionSpec("push", (_OBJ, ParamSpec("direction", "direction", "left, right, forward or backward", DIRECTIONS),
                          ParamSpec("distance", "distance", f"metres, 0 < d <= {MAX_DISTANCE_M}")),
                 "slide an object along the table", "motion"),
    FunctionSpec("home", (), "move to the home pose", "motion"),
    FunctionSpec("remember", (ParamSpec("key", "key", "a name for the pose"), _OBJ),
                 "memory: store the object's current pose under key", "memory"),
    FunctionSpec("recall", (ParamSpec("key", "key", "a name given to remember"),),
                 "memory: a stored pose, usable as a place target", "memory", returns_pose=True),
    FunctionSpec("free_space", (ParamSpec("near", "object", "an object in the scene"),),
                 "a free pose on the table near an object", "query", returns_pose=True),
    FunctionSpec("done", (), "the task is finished", "terminal"),
)}


def spec(name: str) -> FunctionSpec:
    if name not in API:
        raise InvalidCallError(f"unknown function {name!r}; known: {', '.join(API)}")
    return API[name]


def vocabulary() -> list[str]:
    """Function names in registry order (the timeline's and the planner's label vocabulary)."""
    return list(API)


def signature_text(name: str) -> str:
    """`place(obj, target)  put the held object on ...` for prompts and the GUI."""
    f = spec(name)
    return f"{f.name}({', '.join(f.param_names)})  {f.doc}"


Arg = Union[str, int, float, "Call"]


def _literal(value) -> str:
    if isinstance(value, Call):
        return value.code
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


@dataclass(frozen=True)
class Call:
    """One call of the robot API: a name and positional arguments (nested calls allowed)."""

    name: str
    args: tuple = ()

    @property
    def code(self) -> str:
        return f"{self.name}({', '.join(_literal(a) for a in self.args)})"

    def __str__(self) -> str:
        return self.code

    def to_json(self) -> dict:
        return {"name": self.name, "args": [a.to_json() if isinstance(a, Call) else a for a in self.args]}

    @staticmethod
    def from_json(d: dict) -> "Call":
        return Call(d["name"], tuple(Call.from_json(a) if isinstance(a, dict) else a for a in d["args"]))

    @staticmethod
    def from_code(code: str, objects: Collection[str] | None = None) -> "Call":
        """Parse and validate one call expression; raises InvalidCallError."""
        try:
            tree = ast.parse(code.strip(), mode="eval")
        except SyntaxError as e:
            raise InvalidCallError(f"not a valid call: {e.msg}") from None
        return call_from_node(tree.body, objects)


def call_from_node(node: ast.AST, objects: Collection[str] | None = None, depth: int = 0) -> Call:
    """Validate an `ast` expression node as a call of the robot API (used by the program checker)."""
    if not isinstance(node, ast.Call):
        raise InvalidCallError("expected a call of the robot API, e.g. pick(\"red cube\")")
    if not isinstance(node.func, ast.Name):
        raise InvalidCallError("only robot-API functions can be called (no attributes or expressions)")
    f = spec(node.func.id)
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        raise InvalidCallError(f"{f.name}() does not take * or ** arguments")
    for kw in node.keywords:
        if kw.arg not in f.param_names:
            raise InvalidCallError(f"{f.name}() has no parameter {kw.arg!r}; parameters: {', '.join(f.param_names) or 'none'}")
    if len(node.args) + len(node.keywords) != len(f.params):
        raise InvalidCallError(f"{f.name}() takes {len(f.params)} argument{'s' * (len(f.params) != 1)} "
                               f"({', '.join(f.param_names)}), got {len(node.args) + len(node.keywords)}")
    values: list = list(node.args) + [None] * len(node.keywords)
    for kw in node.keywords:
        index = f.param_names.index(kw.arg)
        if values[index] is not None:
            raise InvalidCallError(f"{f.name}() got {kw.arg!r} twice")
        values[index] = kw.value
    args = tuple(_arg(f, p, v, objects, depth) for p, v in zip(f.params, values))
    return Call(f.name, args)


def _arg(f: FunctionSpec, p: ParamSpec, node: ast.AST, objects, depth: int):
    where = f"{f.name}() argument {p.name!r}"
    if p.type == "target" and isinstance(node, ast.Call):
        if depth >= 2:
            raise InvalidCallError(f"{where}: calls nested too deeply")
        inner = call_from_node(node, objects, depth + 1)
        if not API[inner.name].returns_pose:
            raise InvalidCallError(f"{where}: {inner.name}() returns no pose; use recall(...) or free_space(...)")
        return inner
    if p.type == "distance":
        if not (isinstance(node, ast.Constant) and type(node.value) in (int, float)):
            raise InvalidCallError(f"{where} must be a number of metres")
        if not 0 < node.value <= MAX_DISTANCE_M:
            raise InvalidCallError(f"{where} must be within 0 < d <= {MAX_DISTANCE_M}, got {node.value}")
        return node.value
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        raise InvalidCallError(f"{where} must be a string literal")
    value = node.value
    if not value.strip() or len(value) > 200:
        raise InvalidCallError(f"{where} must be a non-empty name of at most 200 characters")
    if p.choices and value not in p.choices:
        raise InvalidCallError(f"{where} must be one of {', '.join(p.choices)}, got {value!r}")
    if objects is not None and p.type in ("object", "target") and value not in objects:
        kind = "object" if p.type == "object" else "object or zone"
        raise InvalidCallError(f"unknown {kind} {value!r}; known: {', '.join(sorted(objects))}")
    return value
