"""Options declared once: a config dataclass's fields carry their help text, choices, bounds and
command-line flag as field metadata (`option(...)`), and everything else reads them from there.

    field metadata (Option) -> validate_options (the dataclass's __post_init__: errors name the value)
                            -> app/train_command.py (argparse arguments, defaults and help)
                            -> app/train_launch.py (the Train form's defaults and choices)
                            -> resumed_options (a run resumed with its own saved options)

Imports nothing heavy (no torch), so the CLI, the GUI's forms and resume read configs without
loading a model (STYLE.md rule 13).
"""
from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass
from typing import Any

_KEY = "option"
NO_SWITCH = object()  # Option.switch when the flag takes a value
KINDS = ("value", "int", "float", "paths", "names", "widths")
RESUME_RULES = ("free", "keep", "model")


@dataclass(frozen=True)
class Option:
    """What one config field means to people and to the command line."""
    help: str
    choices: tuple = ()  # allowed values (empty: any value of the field's type)
    minimum: float | None = None
    maximum: float | None = None  # bounds keep a config from asking for absurd allocations
    flag: str | None = None  # the command-line flag ("--obs"); None: not on the command line
    switch: Any = NO_SWITCH  # the flag takes no value and sets the field to this
    kind: str = "value"  # how the command line parses it: value | int | float | paths | names | widths
    metavar: str | None = None
    # On resume: "free" (a new value overrides the saved one), "keep" (the data and the seed: a new value is
    # refused) or "model" (it shapes the network: refused, and the trainer checks it against the checkpoint).
    resume: str = "free"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"option kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.resume not in RESUME_RULES:
            raise ValueError(f"option resume rule must be one of {', '.join(RESUME_RULES)}, got {self.resume!r}")


def option(default=MISSING, help: str = "", *, default_factory=MISSING, **meta) -> Any:
    """A dataclass field described by an `Option` (keyword arguments: its attributes)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={_KEY: Option(help, **meta)})


def options_of(cls) -> dict[str, Option]:
    """Field name -> Option of a config class (or instance), in declaration order."""
    return {f.name: f.metadata[_KEY] for f in dataclasses.fields(cls) if _KEY in f.metadata}


def default_of(cls, name: str):
    """The declared default of field `name` (MISSING when it has none)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _check_number(name: str, value, o: Option, integer: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if value != value:
        raise ValueError(f"{name} must be a number, got {value!r}")
    if o.minimum is not None and value < o.minimum:
        raise ValueError(f"{name} must be >= {o.minimum:g}, got {value!r}")
    if o.maximum is not None and value > o.maximum:
        raise ValueError(f"{name} must be <= {o.maximum:g}, got {value!r}")


def validate_options(obj) -> None:
    """ValueError naming the field and the value when one breaks its Option (choices, bounds;
    `widths`: every entry). None passes: a field whose default is None means "decided later"."""
    for name, o in options_of(obj).items():
        value = getattr(obj, name)
        if value is None:
            continue
        if o.choices and value not in o.choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, o.choices))}, got {value!r}")
        if o.kind == "widths":
            if not isinstance(value, tuple) or not value:
                raise ValueError(f"{name} must name at least one width, got {value!r}")
            for w in value:
                _check_number(name, w, o, integer=True)
        elif o.kind in ("int", "float"):
            _check_number(name, value, o, integer=o.kind == "int")


def resumed_options(saved, given: dict[str, Any]):
    """`saved` (the options a run was started with) with the options `given` again on resume:
    ValueError naming them when one that shapes the model or its data differs; the others (steps,
    device, batch size, ...) override the saved ones."""
    after = dataclasses.replace(saved, **given)
    keep = [n for n, o in options_of(saved).items() if o.resume != "free" and getattr(after, n) != getattr(saved, n)]
    if keep:
        raise ValueError("a resumed run keeps the options it was started with; "
                         + ", ".join(f"{n} was {getattr(saved, n)!r}, not {getattr(after, n)!r}" for n in keep)
                         + " (leave them out on --resume)")
    return after
