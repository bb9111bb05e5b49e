"""The robot API at run time: executes calls of the registry (robot_api_spec) on a workcell and logs them.

`RobotAPI.execute(call, source)` resolves nested arguments (recall(...), free_space(...) as place
targets, each logged as an instantaneous event), runs the scripted skill, and logs the call with
its status (ok | failed | aborted), whoever asked for it (script, gui, hotkey, planner). A recorder
follows the skills' control ticks through `before_tick` (observe) and `on_tick` (the command the
safety layer sent), see recorders/skills.py.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from recorders.call_log import CallLog, SkillFailed
from recorders.memory import Memory
from recorders.pose import Pose, quat_yaw
from recorders.robot_api_spec import API, Call, InvalidCallError
from recorders.cell.scene import CUBE_SIZE, TABLE_AREA
from recorders.skills import BeforeTick, Skills, TickCallback
from recorders.cell.workcell import Workcell

FREE_SPACE_CLEARANCE = 0.09  # m from any cube or remembered pose


class RobotAPI:
    """The subtask functions bound to one workcell, its memory and a call log."""

    def __init__(self, cell: Workcell, log: CallLog | None = None, memory: Memory | None = None,
                 on_tick: TickCallback | None = None, should_abort: Callable[[], bool] | None = None,
                 before_tick: BeforeTick | None = None):
        self.cell = cell
        self.log = log or CallLog(clock=lambda: cell.arm.time())
        self.memory = memory or Memory()
        self.skills = Skills(cell, on_tick, should_abort, on_gripper=self._capture, before_tick=before_tick)
        self.finished = False  # done() was called

    # ---- dispatch ------------------------------------------------------------------------------
    def execute(self, call: Call, source: str = "script"):
        """Run one call (validated by the caller) and log it; returns a Pose for recall/free_space."""
        if call.name not in API:
            raise SkillFailed(f"unknown function {call.name!r}; known: {', '.join(API)}")
        result = self._execute(call, source)
        self.memory.history.append(call.code)  # top-level calls only: a nested recall is part of its place
        return result

    def run_planned(self, propose: Callable[["RobotAPI"], Call], max_calls: int, source: str = "planner") -> None:
        """Ask `propose(self)` for the next call and run it, until done() or `max_calls` calls;
        SkillFailed on the first failure, an invalid proposal, or no done() in time."""
        for call in self.proposals(propose, max_calls):
            self.execute(call, source)

    def proposals(self, propose: Callable[["RobotAPI"], Call], max_calls: int):
        """A planner's calls, each asked for (`propose(self)`) when the previous one has run and
        checked against the scene; ends after done(). SkillFailed for an invalid proposal, and when
        `max_calls` calls brought no done()."""
        names = self.cell.spec.object_names + self.cell.spec.zone_names
        for _ in range(max_calls):
            try:
                call = propose(self).validate(names)
            except InvalidCallError as e:
                raise SkillFailed(f"the planner proposed an invalid call: {e}") from None
            yield call
            if self.finished:
                return
        raise SkillFailed(f"no done() after {max_calls} calls")

    def resolve(self, arg, source: str = "script"):
        """An argument's value: a nested call (recall, free_space) runs and logs as an event; literals
        pass through. Nested calls do not enter the call history."""
        return self._execute(arg, source) if isinstance(arg, Call) else arg

    def _execute(self, call: Call, source: str):
        args = [self.resolve(a, source) for a in call.args]
        fn = getattr(self, "_" + call.name)
        # Memory, query and done() calls take no control ticks, so they log with t_start == t_end.
        with self.log.record(call, source):
            return fn(*args)

    def run_program(self, calls: list[Call], source: str = "script") -> None:
        """Run calls in order; stops at done() and re-raises the first failure (already logged)."""
        for call in calls:
            self.execute(call, source)
            if self.finished:
                break

    # ---- functions -----------------------------------------------------------------------------
    def _pick(self, obj: str) -> None:
        self._require_object(obj)
        self.skills.pick(obj)

    def _place(self, obj: str, target) -> None:
        self._require_object(obj)
        position, yaw = self._place_goal(obj, target)
        self.skills.place(obj, position, yaw)

    def _push(self, obj: str, direction: str, distance: float) -> None:
        self._require_object(obj)
        self.skills.push(obj, direction, float(distance))

    def _home(self) -> None:
        self.skills.home()

    def _remember(self, key: str, obj: str) -> None:
        self._require_object(obj)
        self.memory.remember(key, self.cell.object_pose(obj), self.log.clock())

    def _recall(self, key: str) -> Pose:
        try:
            return self.memory.recall(key)
        except KeyError as e:
            raise SkillFailed(str(e.args[0])) from None

    def _free_space(self, near: str) -> Pose:
        self._require_object(near)
        return self.free_space_near(self.cell.object_pose(near))

    def _capture(self, event: str, obj: str) -> None:
        """Memory keeps where the object was when the gripper closed on it (pick) or let it go (place)."""
        self.memory.capture(event, obj, self.cell.object_pose(obj), self.log.clock())

    def _done(self) -> None:
        self.finished = True

    # ---- geometry ------------------------------------------------------------------------------
    def _require_object(self, obj: str) -> None:
        if obj not in self.cell.spec.object_names:
            raise SkillFailed(f"no object named {obj!r}; objects: {', '.join(self.cell.spec.object_names)}")

    def _place_goal(self, obj: str, target) -> tuple[np.ndarray, float | None]:
        """Where the centre of `obj` goes, and the yaw to give it (None: keep the current one)."""
        if isinstance(target, Pose):
            return target.xyz, quat_yaw(np.asarray(target.quat))
        if target in self.cell.spec.zone_names:
            return self._free_spot_in_zone(obj, target), None
        if target in self.cell.spec.object_names:
            if target == obj:
                raise SkillFailed(f"cannot place the {obj} on itself")
            base = self.cell.object_pose(target)
            return base.xyz + (0.0, 0.0, CUBE_SIZE), quat_yaw(np.asarray(base.quat))
        raise SkillFailed(f"unknown place target {target!r}; use an object, a zone, recall(...) or free_space(...)")

    def _free_spot_in_zone(self, obj: str, zone: str) -> np.ndarray:
        z = self.cell.spec.zone(zone)
        others = [p.xyz for n, p in self.cell.object_poses().items() if n != obj]
        off = z.size / 2 - CUBE_SIZE / 2 - 0.008
        spots = [np.array([z.position[0] + dx, z.position[1] + dy]) for dx in (0.0, -off, off)
                 for dy in (0.0, -off, off)]
        clearance = lambda s: min((np.hypot(*(s - o[:2])) for o in others), default=1.0)  # noqa: E731
        best = max(spots, key=lambda s: (min(clearance(s), 0.07), -np.hypot(*(s - z.position))))
        return np.array([best[0], best[1], CUBE_SIZE / 2])

    def free_space_near(self, pose: Pose) -> Pose:
        """A free spot on the table near `pose`: clear of cubes, zones and remembered poses."""
        (x0, x1), (y0, y1) = TABLE_AREA
        blocked = [p.xyz[:2] for p in self.cell.object_poses().values()]
        blocked += [k.pose.xyz[:2] for k in self.memory.poses.values()]
        zones = self.cell.spec.zones
        centre = pose.xyz[:2]
        for radius in (0.1, 0.13, 0.16, 0.2, 0.25):
            for angle in np.linspace(0, 2 * np.pi, 24, endpoint=False):
                s = centre + radius * np.array([np.cos(angle), np.sin(angle)])
                if not (x0 <= s[0] <= x1 and y0 <= s[1] <= y1):
                    continue
                if any(np.hypot(*(s - b)) < FREE_SPACE_CLEARANCE for b in blocked):
                    continue
                if any(max(abs(s[0] - z.position[0]), abs(s[1] - z.position[1])) < z.size / 2 + CUBE_SIZE
                       for z in zones):
                    continue
                return Pose((float(s[0]), float(s[1]), CUBE_SIZE / 2), pose.quat)
        raise SkillFailed("no free space on the table near that object")
