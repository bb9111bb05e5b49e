"""THE registry of the robot API's subtask functions, and the `Call` value that names one call.

Declared once here, the specs feed the skill dispatch (recorders/robot_api.py), the timeline's
label vocabulary, the planner's prompt and grammar, and the program validator
(models/program_check.py). Data flows text -> `Call.from_code` (parsed with `ast`, never eval,
and checked against `API`) -> `Call` -> `Call.code` (canonical text) or `Call.to_json()` (episode
files). `from_code(c.code) == c` for every valid call, and canonical code is a fixed point.
"""
from __future__ import annotations

import ast
import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Union

DIRECTIONS = ("left", "right", "forward", "backward")
MAX_DISTANCE_M = 0.3
MAX_NAME_CHARS = 200  # object names and memory keys
MAX_CODE_CHARS = 10_000  # one call's text
ZONE_SUFFIX = " zone"
PARAM_TYPES = ("object", "target", "direction", "distance", "key")
KINDS = ("motion", "memory", "query", "terminal")


class InvalidCallError(ValueError):
    """A call does not match the robot API; the message is one line saying why."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str  # one of PARAM_TYPES
    doc: str
    choices: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.type not in PARAM_TYPES:
            raise ValueError(f"parameter type must be one of {PARAM_TYPES}, got {self.type!r}")
        if self.choices is not None and (self.type != "direction" or not self.choices):
            raise ValueError(f"only direction parameters take choices, got {self.choices!r} for {self.name!r}")


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
        if len(set(self.param_names)) != len(self.params):
            raise ValueError(f"{self.name}() declares a parameter twice: {self.param_names}")

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(self.param_names)})"


_OBJ = ParamSpec("obj", "object", 'an object in the scene, e.g. "red cube"')
_FUNCTIONS = (
    FunctionSpec("pick", (_OBJ,), "grasp an object and lift it", "motion"),
    FunctionSpec("place", (_OBJ, ParamSpec("target", "target", 'an object, a zone ("blue zone"), recall(key) '
                                                                "or free_space(near)")),
                 "put the held object on an object, in a zone, or at a stored pose", "motion"),
    FunctionSpec("push", (_OBJ, ParamSpec("direction", "direction", "left, right, forward or backward", DIRECTIONS),
                          ParamSpec("distance", "distance", f"metres, 0 < d <= {MAX_DISTANCE_M}")),
                 f"slide an object: direction in {'|'.join(DIRECTIONS)}, distance in metres "
                 f"(0 < d <= {MAX_DISTANCE_M})", "motion"),
    FunctionSpec("home", (), "move to the home pose", "motion"),
    FunctionSpec("remember", (ParamSpec("key", "key", "a name for the pose"), _OBJ),
                 "memory: store the object's current pose under key", "memory"),
    FunctionSpec("recall", (ParamSpec("key", "key", "a name given to remember"),),
                 "memory: a stored pose, usable as a place target", "memory", returns_pose=True),
    FunctionSpec("free_space", (ParamSpec("near", "object", "an object in the scene"),),
                 "a free pose on the table near an object", "query", returns_pose=True),
    FunctionSpec("done", (), "the task is finished", "terminal"),
)
API: Mapping[str, FunctionSpec] = MappingProxyType({f.name: f for f in _FUNCTIONS})  # read-only, in order


def spec(name: str) -> FunctionSpec:
    """The spec of `name`; InvalidCallError (listing the known names) for anything else."""
    f = API.get(name) if isinstance(name, str) else None
    if f is None:
        raise InvalidCallError(f"unknown function {name!r}; known: {', '.join(API)}")
    return f


def vocabulary() -> list[str]:
    """Function names in registry order (the timeline's and the planner's label vocabulary)."""
    return list(API)


def signature_text(name: str) -> str:
    """`place(obj, target)  put the held object on ...` for prompts and the GUI."""
    f = spec(name)
    return f"{f.signature}  {f.doc}"


def api_reference() -> str:
    """Every function's signature line, in registry order (the planner prompt's API section)."""
    return "\n".join(signature_text(name) for name in API)


def is_zone(name: str) -> bool:
    return name.endswith(ZONE_SUFFIX)


Arg = Union[str, int, float, "Call"]


def _literal(value: Arg) -> str:
    if isinstance(value, Call):
        return value.code
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid Python literal too
    return repr(value)  # shortest repr for floats, ints as given


@dataclass(frozen=True)
class Call:
    """One call of the robot API: a name and positional arguments (nested calls allowed).

    Construction checks only value types (str, finite int/float, nested Call); `validate()` or
    `from_code` check a call against the registry."""

    name: str
    args: tuple = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InvalidCallError(f"a call's name must be an identifier, got {self.name!r}")
        if not isinstance(self.args, tuple):
            if not isinstance(self.args, list):
                raise InvalidCallError(f"{self.name}() arguments must be a tuple, got {type(self.args).__name__}")
            object.__setattr__(self, "args", tuple(self.args))
        for a in self.args:
            if isinstance(a, bool) or not isinstance(a, (str, int, float, Call)):
                raise InvalidCallError(f"{self.name}() argument {a!r}: only strings, numbers and calls")
            if isinstance(a, float) and not math.isfinite(a):
                raise InvalidCallError(f"{self.name}() argument {a!r} is not a finite number")

    @property
    def code(self) -> str:
        return f"{self.name}({', '.join(_literal(a) for a in self.args)})"

    @property
    def spec(self) -> FunctionSpec:
        return spec(self.name)

    def __str__(self) -> str:
        return self.code

    def validate(self, objects: Collection[str] | None = None) -> "Call":
        """This call if it is a valid call of the registry (with `objects` known); else InvalidCallError."""
        if Call.from_code(self.code, objects) != self:
            raise InvalidCallError(f"{self.code} does not survive its own canonical form")
        return self

    def to_json(self) -> dict:
        return {"name": self.name, "args": [a.to_json() if isinstance(a, Call) else a for a in self.args]}

    @staticmethod
    def from_json(d: dict) -> "Call":
        """The call of a `to_json()` dict; InvalidCallError when it is not one (values are not checked
        against the registry: use `validate()`)."""
        if not isinstance(d, dict) or not isinstance(d.get("args", []), (list, tuple)) or "name" not in d:
            raise InvalidCallError(f"not a call object: {str(d)[:80]!r}")
        return Call(d["name"], tuple(Call.from_json(a) if isinstance(a, dict) else a for a in d.get("args", [])))

    @staticmethod
    def from_code(code: str, objects: Collection[str] | None = None) -> "Call":
        """Parse and validate one call expression; raises InvalidCallError naming the problem.

        `objects`: when given, the known object and zone names; object and target strings must be
        among them."""
        if not isinstance(code, str):
            raise InvalidCallError(f"a call must be text, got {type(code).__name__}")
        if len(code) > MAX_CODE_CHARS:
            raise InvalidCallError(f"call text longer than {MAX_CODE_CHARS} characters")
        try:
            tree = ast.parse(code.strip(), mode="eval")
        except SyntaxError as e:
            raise InvalidCallError(f"not a valid call: {e.msg}") from None
        except (ValueError, RecursionError, MemoryError) as e:  # null bytes, absurd nesting
            raise InvalidCallError(f"not a valid call: {type(e).__name__}") from None
        return call_from_node(tree.body, objects)


def call_from_node(node: ast.AST, objects: Collection[str] | None = None, _nested: bool = False) -> Call:
    """Validate an `ast` expression node as a call of the robot API (shared with the program checker).

    Keyword arguments named after the declared parameters are accepted and become positional."""
    if isinstance(node, ast.Name) and node.id in API:
        raise InvalidCallError(f"{node.id} is a function: call it as {API[node.id].signature}")
    if not isinstance(node, ast.Call):
        raise InvalidCallError('expected a call of the robot API, e.g. pick("red cube")')
    if not isinstance(node.func, ast.Name):
        raise InvalidCallError("only robot-API functions can be called (no attributes or expressions)")
    f = spec(node.func.id)
    if _nested and not f.returns_pose:
        raise InvalidCallError(f"{f.name}() returns no pose; a place target can be recall(...) or free_space(...)")
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        raise InvalidCallError(f"{f.name}() does not take * or ** arguments")
    for kw in node.keywords:
        if kw.arg not in f.param_names:
            raise InvalidCallError(f"{f.name}() has no parameter {kw.arg!r}; "
                                   f"parameters: {', '.join(f.param_names) or 'none'}")
    given = len(node.args) + len(node.keywords)
    if given != len(f.params):
        raise InvalidCallError(f"{f.name}() takes {len(f.params)} argument{'s' * (len(f.params) != 1)} "
                               f"({', '.join(f.param_names)}), got {given}")
    values: list = list(node.args) + [None] * len(node.keywords)
    for kw in node.keywords:
        index = f.param_names.index(kw.arg)
        if values[index] is not None:
            raise InvalidCallError(f"{f.name}() got {kw.arg!r} twice")
        values[index] = kw.value
    args = tuple(_arg(f, p, v, objects) for p, v in zip(f.params, values))
    if f.name == "place" and args[0] == args[1]:
        raise InvalidCallError(f"place() cannot put the {args[0]} on itself")
    return Call(f.name, args)


def _arg(f: FunctionSpec, p: ParamSpec, node: ast.AST, objects) -> Arg:
    where = f"{f.name}() argument {p.name!r}"
    if p.type == "target" and isinstance(node, ast.Call):
        return call_from_node(node, objects, _nested=True)  # pose functions take no target: depth <= 2
    if p.type == "distance":
        if not (isinstance(node, ast.Constant) and type(node.value) in (int, float)):
            raise InvalidCallError(f"{where} must be a number of metres, e.g. 0.1")
        if not 0 < node.value <= MAX_DISTANCE_M:
            raise InvalidCallError(f"{where} must be within 0 < d <= {MAX_DISTANCE_M}, got {node.value}")
        return node.value
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        example = {"target": '"blue zone"', "direction": '"left"', "key": '"red cube start"'}.get(p.type, '"red cube"')
        raise InvalidCallError(f"{where} must be a string literal, e.g. {example}")
    value = node.value
    if not value.strip() or len(value) > MAX_NAME_CHARS:
        raise InvalidCallError(f"{where} must be a non-empty name of at most {MAX_NAME_CHARS} characters")
    if p.choices and value not in p.choices:
        raise InvalidCallError(f"{where} must be one of {', '.join(p.choices)}, got {value!r}")
    if p.type == "object" and is_zone(value):
        raise InvalidCallError(f"{where} must be an object, not the zone {value!r}")
    if objects is not None and p.type in ("object", "target") and value not in objects:
        kind = "object" if p.type == "object" else "object or zone"
        raise InvalidCallError(f"unknown {kind} {value!r}; known: {', '.join(sorted(objects))}")
    return value
