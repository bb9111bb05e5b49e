"""The real-arm backend: a Franka (or a franky-sim server) driven through franky-control.

Control flows like the simulated arm's: each control tick `command` gets the (safety-clamped)
end-effector target, which replaces the running motion with an asynchronous Cartesian waypoint
motion towards it; franky's Ruckig planner blends from the current velocity, so a target updated at
10 Hz is tracked smoothly and the arm holds the last target when commands stop. `wait_tick` sleeps
to the next tick on `time.monotonic` and surfaces errors of the running motion. The gripper is
commanded on edges only (grasp on close, open on open), one gripper command in flight at a time.

Poses: franky's end-effector frame (O_T_EE, with the Franka Hand's default flange-to-EE transform:
0.1034 m along the tool z, -45 degrees about it) is the tool centre point between the fingertips,
the same point and axes as the simulated workcell's `tcp` site, so poses pass through unchanged.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from recorders.arms.base import DEFAULT_CONTROL_HZ, GRIPPER_MAX_WIDTH_M, Arm, ArmCommand, ArmError, ArmInfo, ArmState
from recorders.pose import Pose

# Scales franky's limits (FR3: 1.7 m/s, 13 m/s^2): 0.3 lets the arm keep up with the safety layer's
# 0.5 m/s while keeping accelerations and jerk gentle.
DEFAULT_DYNAMICS_FACTOR = 0.3
DEFAULT_GRIPPER_SPEED = 0.1  # m/s, opening/closing speed of the fingers
GRASP_EPSILON_OUTER = GRIPPER_MAX_WIDTH_M  # a grasp at width 0 succeeds on any object that stops the fingers
_TARGET_EPS_M = 1e-6  # targets closer than this to the running one are not re-sent
# The Franka Hand's flange-to-TCP transform (Desk's default end effector): 0.1034 m along the tool z,
# rotated -45 degrees about it. Our poses assume it; another one would put the TCP elsewhere.
HAND_F_T_EE = np.array([
    [np.cos(-np.pi / 4), -np.sin(-np.pi / 4), 0.0, 0.0],
    [np.sin(-np.pi / 4), np.cos(-np.pi / 4), 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.1034],
    [0.0, 0.0, 0.0, 1.0],
])


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else 'no details'}"


class FrankyArm(Arm):
    """An `Arm` over franky-control: `host` is the robot's FCI address (or a franky-sim server's)."""

    def __init__(self, host: str, control_hz: float = DEFAULT_CONTROL_HZ,
                 dynamics_factor: float = DEFAULT_DYNAMICS_FACTOR, gripper_speed: float = DEFAULT_GRIPPER_SPEED,
                 kind: str = "franky"):
        if not 0.0 < dynamics_factor <= 1.0:
            raise ValueError(f"dynamics_factor must be in (0, 1], got {dynamics_factor}")
        if not control_hz > 0:
            raise ValueError(f"control_hz must be positive, got {control_hz}")
        self.host = host
        self.dynamics_factor = dynamics_factor
        self.gripper_speed = gripper_speed
        self.info = ArmInfo(kind=kind, control_hz=control_hz,
                            details={"host": host, "dynamics_factor": dynamics_factor})
        self._franky = None
        self._robot = None
        self._gripper = None
        self._lock = threading.RLock()  # franky calls from the control loop, the watchdog and the e-stop
        self._motion_target: Pose | None = None  # target of the running motion; None when holding still
        self._gripper_closed = False  # what was last asked of the gripper
        self._gripper_sent: bool | None = None  # what the gripper was last told (None: nothing yet)
        self._gripper_force = 0.0
        self._gripper_future = None
        self._next_tick: float | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def connect(self) -> None:
        if self._robot is not None:
            return
        try:
            import franky
        except ImportError as e:
            raise ArmError(f"franky is not installed ({e}); install it with: pip install franky-control") from e
        self._franky = franky
        try:
            robot = franky.Robot(self.host, realtime_config=franky.RealtimeConfig.Ignore)
            robot.relative_dynamics_factor = self.dynamics_factor
            gripper = franky.Gripper(self.host)
            grasped = bool(gripper.is_grasped)
        except Exception as e:  # franky raises its own exception types, none shared: catch at the boundary
            raise ArmError(f"could not connect to the Franka at {self.host}: {_one_line(e)}; check the address, "
                           f"that FCI is enabled and no other program controls the arm") from e
        f_t_ee = np.asarray(robot.state.F_T_EE.matrix, dtype=float)
        if not np.allclose(f_t_ee, HAND_F_T_EE, atol=2e-3):
            raise ArmError(f"the Franka at {self.host} reports an end effector at {f_t_ee[:3, 3].round(4).tolist()} "
                           f"from the flange, not the Franka Hand's fingertip centre (0.1034 m, -45 degrees); "
                           f"select the Franka Hand end effector in Desk")
        self._robot, self._gripper = robot, gripper
        # Keep holding what the hand already holds instead of dropping it on the first command.
        self._gripper_closed = grasped
        self._gripper_sent = True if grasped else None
        self._motion_target = None
        self._next_tick = None

    def disconnect(self) -> None:
        with self._lock:
            robot = self._robot
            if robot is None:
                return
            try:
                if self._motion_target is not None:
                    robot.move(self._franky.CartesianStopMotion(), asynchronous=True)
                    robot.join_motion(2.0)
                if self._gripper_future is not None:
                    self._gripper_future.wait(2.0)
            except Exception:
                pass  # leaving anyway; the robot holds its pose when the connection closes
            self._robot = self._gripper = self._gripper_future = None
            self._motion_target = None

    def _require(self):
        if self._robot is None:
            raise ArmError(f"the Franka at {self.host} is not connected; call connect() first")
        return self._robot

    # ---- Arm -----------------------------------------------------------------------------------
    def state(self) -> ArmState:
        with self._lock:
            robot = self._require()
            try:
                s = robot.state
                width = float(self._gripper.width)
            except Exception as e:
                raise ArmError(f"could not read the Franka's state: {_one_line(e)}") from e
        ee = s.O_T_EE
        x, y, z, w = ee.quaternion
        return ArmState(
            time=time.monotonic(),
            joint_positions=np.array(s.q, dtype=float),
            joint_velocities=np.array(s.dq, dtype=float),
            ee_pose=Pose(tuple(float(v) for v in ee.translation), (float(w), float(x), float(y), float(z))),
            gripper_width=width,
            gripper_closed=self._gripper_closed,
        )

    def time(self) -> float:
        return time.monotonic()

    def command(self, cmd: ArmCommand) -> None:
        with self._lock:
            robot = self._require()
            target = cmd.ee_target
            if self._motion_target is None or not _same_pose(target, self._motion_target):
                franky = self._franky
                w, x, y, z = target.quat
                affine = franky.Affine(np.asarray(target.position, dtype=float), np.array([x, y, z, w], dtype=float))
                motion = franky.CartesianWaypointMotion([franky.CartesianWaypoint(affine)], return_when_finished=False)
                try:
                    robot.move(motion, asynchronous=True)
                except Exception as e:
                    self._motion_target = None
                    raise ArmError(f"the Franka refused the motion: {_one_line(e)}; "
                                   f"recover from errors once the arm is clear") from e
                self._motion_target = target
            self._gripper_closed = bool(cmd.gripper_closed)
            self._gripper_force = float(cmd.gripper_force)
            self._service_gripper()

    def wait_tick(self) -> None:
        period = self.control_period
        now = time.monotonic()
        if self._next_tick is None or now - self._next_tick > period:
            self._next_tick = now  # late by more than a tick: restart the schedule, don't burst
        self._next_tick += period
        time.sleep(max(0.0, self._next_tick - time.monotonic()))
        with self._lock:
            robot = self._require()
            try:
                robot.poll_motion()  # raises what ended the running motion (a reflex, a limit)
            except Exception as e:
                self._motion_target = None
                raise ArmError(f"the Franka stopped: {_one_line(e)}; recover from errors once the arm is clear") from e
            self._service_gripper()

    def stop(self) -> None:
        """Decelerate to a standstill as fast as the arm allows and hold there; the gripper keeps its grip.

        Not under the command lock: an e-stop must not wait behind a command or a state read in
        progress. franky serialises motions itself, and the safety layer stops again after a
        command that overlapped the e-stop, so the stop is always the arm's last motion."""
        robot = self._require()
        self._motion_target = None
        try:
            robot.move(self._franky.CartesianStopMotion(), asynchronous=True)
        except Exception as e:
            raise ArmError(f"could not stop the Franka: {_one_line(e)}") from e
        finally:
            self._motion_target = None

    def recover(self) -> None:
        """Clear a reflex or error (the GUI asks the operator first)."""
        with self._lock:
            robot = self._require()
            try:
                ok = robot.recover_from_errors()
            except Exception as e:
                raise ArmError(f"error recovery failed: {_one_line(e)}") from e
            self._motion_target = None
            if not ok:
                raise ArmError("the Franka did not recover from its errors; check the arm and its lights")

    # ---- gripper -------------------------------------------------------------------------------
    def _service_gripper(self) -> None:
        """Send the gripper's latest wanted state once the previous gripper command has finished."""
        future = self._gripper_future
        if future is not None:
            if not future.wait(0.0):
                return
            self._gripper_future = None
            try:
                future.get()  # False only means nothing was grasped
            except Exception as e:
                raise ArmError(f"the gripper failed: {_one_line(e)}") from e
        if self._gripper_sent == self._gripper_closed:
            return
        try:
            if self._gripper_closed:
                # Width 0 with a wide outer tolerance: close until an object stops the fingers.
                self._gripper_future = self._gripper.grasp_async(0.0, self.gripper_speed, self._gripper_force,
                                                                 epsilon_inner=0.0, epsilon_outer=GRASP_EPSILON_OUTER)
            else:
                self._gripper_future = self._gripper.open_async(self.gripper_speed)
        except Exception as e:
            raise ArmError(f"the gripper refused the command: {_one_line(e)}") from e
        self._gripper_sent = self._gripper_closed


def _same_pose(a: Pose, b: Pose) -> bool:
    return bool(np.max(np.abs(a.to_array() - b.to_array())) < _TARGET_EPS_M)
