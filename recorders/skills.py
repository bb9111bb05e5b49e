"""Scripted skills: the motions behind the robot API's pick, place, push and home.

A skill turns a goal (an object, a target position) into a stream of end-effector commands, one per
control tick, and checks its own outcome from the workcell's observations; it raises `SkillFailed`
with a reason a user can act on. Every command goes through `Motion.step`:
```
before_tick()  -> the recorder observes the workcell (the state the command is paired with)
cell.arm.command(cmd) -> the safety layer clamps it and returns what it sent
on_tick(sent)  -> the recorder writes the command actually sent
cell.arm.wait_tick()
```
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from recorders.arms.base import DEFAULT_GRASP_FORCE_N, ArmCommand, ArmError
from recorders.call_log import SkillFailed
from recorders.pose import Pose, quat_yaw
from recorders.cell.scene import CUBE_SIZE
from recorders.cell.workcell import Workcell

CARRY_Z = 0.16  # m, TCP height for moving between places (clears a two-cube tower)
APPROACH_DZ = 0.08  # m above a grasp or release point where the vertical approach starts
FAST = 0.3  # m/s, free-space moves
SLOW = 0.12  # m/s, approach, descent and lift
PUSH_SPEED = 0.08  # m/s
TURN = 1.5  # rad/s
HOME_POSITION = (0.45, 0.0, 0.35)
DIRECTIONS = {  # robot base frame: x points away from the robot, y to the robot's left
    "left": np.array([0.0, 1.0]),
    "right": np.array([0.0, -1.0]),
    "forward": np.array([1.0, 0.0]),
    "backward": np.array([-1.0, 0.0]),
}
TickCallback = Callable[[ArmCommand], None]  # given the command the safety layer sent
BeforeTick = Callable[[], None]  # just before a command goes to the arm


def grasp_yaw(object_yaw: float, current_yaw: float) -> float:
    """The object's yaw modulo a quarter turn (a cube is symmetric) closest to the current yaw."""
    k = np.round((current_yaw - object_yaw) / (np.pi / 2))
    return float(object_yaw + k * np.pi / 2)


class Motion:
    """Streams end-effector commands to the arm, one per control tick."""

    def __init__(self, cell: Workcell, on_tick: TickCallback | None = None,
                 should_abort: Callable[[], bool] | None = None, before_tick: BeforeTick | None = None):
        self.cell = cell
        self.on_tick = on_tick
        self.before_tick = before_tick
        self.should_abort = should_abort
        hz = cell.arm.info.control_hz
        self.dt = 1.0 / hz
        state = cell.arm.state()
        self.target = state.ee_pose
        self.closed = state.gripper_closed
        self.force = DEFAULT_GRASP_FORCE_N

    def step(self) -> None:
        from recorders.call_log import CallAborted

        if self.should_abort is not None and self.should_abort():
            raise CallAborted("aborted by the operator")
        if self.before_tick is not None:  # the recorder observes the state this command is paired with
            self.before_tick()
        try:
            sent = self.cell.arm.command(ArmCommand(self.target, self.closed, self.force))
        except ArmError as e:  # an e-stop between the check above and this command: still an abort
            if self.should_abort is not None and self.should_abort():
                raise CallAborted(str(e)) from e
            raise
        if self.on_tick is not None:
            self.on_tick(sent)
        self.cell.arm.wait_tick()

    def move(self, position, yaw: float | None = None, speed: float = FAST, settle: int = 0) -> None:
        """Straight line to `position` (and `yaw`), at most `speed`, then `settle` extra ticks."""
        start = self.target
        yaw0 = quat_yaw(np.asarray(start.quat))
        yaw1 = yaw0 if yaw is None else yaw
        dist = float(np.linalg.norm(np.asarray(position) - start.xyz))
        n = max(1, math.ceil(max(dist / (speed * self.dt), abs(yaw1 - yaw0) / (TURN * self.dt))))
        for i in range(1, n + 1):
            s = i / n
            self.target = Pose.top_down(start.xyz + s * (np.asarray(position) - start.xyz), yaw0 + s * (yaw1 - yaw0))
            self.step()
        for _ in range(settle):
            self.step()

    def gripper(self, closed: bool, ticks: int, force: float = DEFAULT_GRASP_FORCE_N) -> None:
        self.closed, self.force = closed, force
        for _ in range(ticks):
            self.step()

    @property
    def yaw(self) -> float:
        return quat_yaw(np.asarray(self.target.quat))


class Skills:
    """pick / place / push / home on a workcell."""

    def __init__(self, cell: Workcell, on_tick: TickCallback | None = None,
                 should_abort: Callable[[], bool] | None = None,
                 on_gripper: Callable[[str, str], None] | None = None, before_tick: BeforeTick | None = None):
        self.cell = cell
        self.on_tick = on_tick
        self.before_tick = before_tick
        self.should_abort = should_abort
        self.on_gripper = on_gripper  # ("pick" | "place", obj) right after the gripper closed on / released obj
        self.held: str | None = None

    def _motion(self) -> Motion:
        return Motion(self.cell, self.on_tick, self.should_abort, self.before_tick)

    def sync_held(self) -> str | None:
        """Re-read which object is in the closed gripper (after teleop moved things by hand)."""
        state = self.cell.arm.state()
        held = [n for n in self.cell.spec.object_names if state.gripper_closed and self._is_held(n)]
        self.held = held[0] if held else None
        return self.held

    def _is_held(self, obj: str) -> bool:
        tcp = self.cell.arm.state().ee_pose.xyz
        return bool(np.linalg.norm(self.cell.object_pose(obj).xyz - tcp) < 0.03)

    def pick(self, obj: str) -> None:
        if self.held is not None:
            raise SkillFailed(f"already holding the {self.held}; place it first")
        pose = self.cell.object_pose(obj)
        m = self._motion()
        yaw = grasp_yaw(quat_yaw(np.asarray(pose.quat)), m.yaw)
        x, y, z = pose.xyz
        if m.closed:
            m.gripper(False, 3)
        m.move((m.target.xyz[0], m.target.xyz[1], max(CARRY_Z, m.target.xyz[2])), speed=SLOW)
        m.move((x, y, max(CARRY_Z, z + APPROACH_DZ)), yaw)
        m.move((x, y, z + 0.002), yaw, speed=SLOW, settle=2)
        m.gripper(True, 5)
        if self.on_gripper is not None:
            self.on_gripper("pick", obj)
        m.move((x, y, CARRY_Z), speed=SLOW, settle=1)
        if not self._is_held(obj):
            raise SkillFailed(f"the {obj} slipped out of the gripper")
        self.held = obj

    def place(self, obj: str, position, yaw: float | None = None) -> None:
        """Put the held `obj` with its centre at `position` (x, y, z)."""
        if self.held != obj or not self._is_held(obj):
            self.held = None if self.held == obj else self.held
            raise SkillFailed(f"not holding the {obj}; pick it first")
        m = self._motion()
        x, y, z = (float(v) for v in position)
        yaw = m.yaw if yaw is None else grasp_yaw(yaw, m.yaw)
        m.move((m.target.xyz[0], m.target.xyz[1], max(CARRY_Z, z + APPROACH_DZ)), speed=SLOW)
        m.move((x, y, max(CARRY_Z, z + APPROACH_DZ)), yaw)
        m.move((x, y, z + 0.006), yaw, speed=SLOW, settle=2)
        m.gripper(False, 4)
        self.held = None
        if self.on_gripper is not None:
            self.on_gripper("place", obj)
        m.move((x, y, max(CARRY_Z, z + APPROACH_DZ)), speed=SLOW)
        placed = self.cell.object_pose(obj).xyz
        if np.hypot(placed[0] - x, placed[1] - y) > 0.03 or abs(placed[2] - z) > 0.02:
            raise SkillFailed(f"the {obj} did not stay where it was put (off by "
                              f"{100 * np.linalg.norm(placed - (x, y, z)):.1f} cm)")

    def push(self, obj: str, direction: str, distance: float) -> None:
        """Slide `obj` by `distance` along `direction`, re-pushing (up to 3 strokes) if it falls short."""
        if self.held is not None:
            raise SkillFailed(f"holding the {self.held}; place it before pushing")
        d = DIRECTIONS[direction]
        start = self.cell.object_pose(obj).xyz
        goal = start[:2] + d * distance
        m = self._motion()
        # Fingers closed and across the push direction, so the whole finger pair is the pusher.
        yaw = grasp_yaw(float(np.arctan2(d[1], d[0])), m.yaw)
        contact_back = CUBE_SIZE / 2 + 0.012  # TCP to cube centre while in contact
        m.move((m.target.xyz[0], m.target.xyz[1], max(CARRY_Z, m.target.xyz[2])), speed=SLOW)
        m.gripper(True, 2, force=5.0)
        for stroke in range(3):
            here = self.cell.object_pose(obj).xyz[:2]
            remaining = float(np.dot(goal - here, d))
            if remaining < 0.01:
                break
            behind = here - d * (CUBE_SIZE / 2 + 0.035)
            end = here + d * (remaining - contact_back)
            m.move((*behind, CARRY_Z if stroke == 0 else 0.07), yaw)
            m.move((*behind, 0.018), speed=SLOW)
            m.move((*end, 0.018), speed=PUSH_SPEED, settle=2)
            m.move((*(end - d * 0.03), 0.018), speed=SLOW)
            m.move((*(end - d * 0.03), 0.07), speed=SLOW)
        m.move((m.target.xyz[0], m.target.xyz[1], CARRY_Z), speed=SLOW)
        m.gripper(False, 2)
        moved = float(np.dot(self.cell.object_pose(obj).xyz[:2] - start[:2], d))
        if moved < 0.7 * distance:
            raise SkillFailed(f"the {obj} moved only {100 * moved:.1f} cm of {100 * distance:.1f} cm")

    def home(self) -> None:
        m = self._motion()
        m.move((m.target.xyz[0], m.target.xyz[1], max(CARRY_Z, m.target.xyz[2])), speed=SLOW)
        if m.closed and self.held is None:
            m.gripper(False, 3)
        m.move(HOME_POSITION, 0.0, settle=2)
