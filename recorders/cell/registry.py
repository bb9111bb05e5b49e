"""The workcell registry: every robot kind (sim, franky-sim, franky), what it is, and how to open it.

One table, `WORKCELL_KINDS`, keyed by robot kind. The CLI's `--robot` choices, the Record session,
episode-file validation and `open_workcell` all read it, so adding a kind is one entry here plus its
workcell module. This module imports nothing heavy (episode files import it): each opener imports
its workcell, and with it MuJoCo or franky, only when a workcell of that kind is opened.

    open_workcell("franky", spec, control_hz, host="172.16.0.2")
      -> WORKCELL_KINDS["franky"].opener(spec, control_hz, host=...) -> FrankyWorkcell
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from recorders.arms.base import DEFAULT_CONTROL_HZ, ArmError

if TYPE_CHECKING:
    from recorders.cell.scene import SceneSpec
    from recorders.cell.workcell import Workcell


def _open_sim(spec: SceneSpec, control_hz: float, **options) -> Workcell:
    from recorders.cell.sim_workcell import SimWorkcell

    return SimWorkcell(spec, control_hz, **options)


def _open_franky_sim(spec: SceneSpec, control_hz: float, **options) -> Workcell:
    from recorders.cell.franky_sim_workcell import FrankySimWorkcell

    return FrankySimWorkcell(spec, control_hz, **options)


def _open_franky(spec: SceneSpec, control_hz: float, **options) -> Workcell:
    from recorders.cell.franky_workcell import FrankyWorkcell

    return FrankyWorkcell(options.pop("host"), control_hz, spec=spec, **options)


@dataclass(frozen=True)
class WorkcellKind:
    """One robot kind: what it is and how to open its workcell."""

    name: str  # the --robot value, stored in every episode
    description: str  # one line for --help and the GUI
    needs_ip: bool  # opened with host=<the arm's FCI address> (--robot-ip)
    simulated: bool  # the scene is simulated: object poses are the simulator's truth, cameras are rendered
    stepped: bool  # time advances only with control ticks (faster than real time), not with the wall clock
    scripted_demos: bool  # has a scene with objects, so the task suite's scripted demonstrations run in it
    opener: Callable[..., Workcell]  # (spec, control_hz, **options) -> an open workcell


WORKCELL_KINDS: dict[str, WorkcellKind] = {kind.name: kind for kind in (
    WorkcellKind("sim", "MuJoCo in this process, stepped faster than real time",
                 needs_ip=False, simulated=True, stepped=True, scripted_demos=True, opener=_open_sim),
    WorkcellKind("franky-sim", "the same scene served by franky-sim on the loopback, driven by the real-arm backend",
                 needs_ip=False, simulated=True, stepped=False, scripted_demos=True, opener=_open_franky_sim),
    WorkcellKind("franky", "a real Franka arm through franky (needs --robot-ip)",
                 needs_ip=True, simulated=False, stepped=False, scripted_demos=False, opener=_open_franky),
)}
ROBOT_KINDS: tuple[str, ...] = tuple(WORKCELL_KINDS)
SCRIPTED_DEMO_KINDS: tuple[str, ...] = tuple(k.name for k in WORKCELL_KINDS.values() if k.scripted_demos)


def workcell_kind(name: str) -> WorkcellKind:
    """The registry entry of a robot kind; ArmError naming the known kinds otherwise."""
    try:
        return WORKCELL_KINDS[name]
    except KeyError:
        raise ArmError(f"unknown robot {name!r}; choose one of: {', '.join(ROBOT_KINDS)}") from None


def open_workcell(kind: str, spec: SceneSpec | None, control_hz: float = DEFAULT_CONTROL_HZ, **options) -> Workcell:
    """Connect to a workcell of robot `kind` with the scene `spec`.

    `options` go to the workcell: `safety` (SafetyLimits) for every kind, `host` for franky (required,
    the arm's FCI address) and franky-sim (a loopback address). Raises ArmError for an unknown kind, a
    missing address, or a workcell that cannot be reached.
    """
    entry = workcell_kind(kind)
    if entry.needs_ip and not options.get("host"):
        raise ArmError(f"robot {kind!r} needs the arm's address (--robot-ip)")
    if spec is None and entry.simulated:
        raise ArmError(f"robot {kind!r} needs a scene (a task instance) to open")
    return entry.opener(spec, control_hz, **options)
