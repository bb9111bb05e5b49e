"""The real-arm backend: a Franka (or a franky-sim server) driven through franky-control.

Control flows like the simulated arm's: each control tick `command` gets the (safety-clamped)
end-effector target and streams it to the arm the way franky's author recommends for continuous
motion (franky issue #39: the free Ruckig does not blend waypoints, so give each waypoint the
velocity to pass it with). The running motion is replaced by an asynchronous Cartesian waypoint
motion that passes the new target *with the stream's velocity* no sooner than
STREAM_HORIZON_PERIODS control periods from now, then comes to rest on it. It passes a point short
of the target by the braking distance from that velocity (`_short_of`), so that the rest lands on
the target, not past it:

    tick k: target T_k, v_k = (T_k - T_k-1) / (time between targets, averaged over a few ticks,
            on the robot's clock), capped by the motion's velocity limit
      -> CartesianWaypointMotion([T_k - braking(v_k) passed at v_k, minimum time H], [T_k at rest])
      -> robot.move(motion, asynchronous=True): replaces tick k-1's motion before it gets there

franky starts each motion from the commanded pose, velocity and acceleration of the one it
replaces (CartesianWaypointMotion::initWaypointMotion), and H is longer than a period, so while
targets keep coming the arm cruises through them without braking, trailing the stream by about H
(150 ms at 10 Hz) plus half its braking time (about 30 ms at 0.2 m/s); a tick up to H - period late
costs nothing, a later one a short slowdown. When the target stops moving, or targets stop coming,
the arm comes to rest on the last target the safety layer let through and holds it. A target sent
after a gap of STREAM_GAP_PERIODS starts a new stream from rest. The old behaviour,
`motion_mode="waypoint"` (every tick a time-optimal waypoint to the target at rest: the arm
accelerates, brakes to a standstill on the target well before the next tick and starts again, the
stop-and-go franky users report at 10 Hz), stays selectable so that `bench franky`
(app/bench_franky_motion.py) can measure both.

`wait_tick` sleeps to the next tick on `time.monotonic` and surfaces errors of the running motion.
`stop` (e-stop, watchdog, the rests between calls) replaces the motion by franky's stop motion, and
the next command starts a new stream. The gripper is commanded on edges only (grasp on close, open
on open), one gripper command in flight at a time.

Poses: franky's end-effector frame (O_T_EE, with the Franka Hand's default flange-to-EE transform:
0.1034 m along the tool z, -45 degrees about it) is the tool centre point between the fingertips,
the same point and axes as the simulated workcell's `tcp` site, so poses pass through unchanged.
"""
from __future__ import annotations

import math
import threading
import time

import numpy as np

from recorders.arms.base import DEFAULT_CONTROL_HZ, GRIPPER_MAX_WIDTH_M, Arm, ArmCommand, ArmError, ArmInfo, ArmState
from recorders.pose import Pose, quat_conjugate, quat_multiply

# Scales franky's limits (FR3: 1.7 m/s, 13 m/s^2): 0.3 lets the arm keep up with the safety layer's
# 0.5 m/s while keeping accelerations and jerk gentle.
DEFAULT_DYNAMICS_FACTOR = 0.3
DEFAULT_GRIPPER_SPEED = 0.1  # m/s, opening/closing speed of the fingers
GRASP_EPSILON_OUTER = GRIPPER_MAX_WIDTH_M  # a grasp at width 0 succeeds on any object that stops the fingers
MOTION_MODES = ("stream", "waypoint")  # see the module docstring
DEFAULT_MOTION_MODE = "stream"
# A streamed target is passed no sooner than this many control periods after it is sent: more than one,
# so that the next tick takes over while the arm still cruises, even when it comes a little late.
STREAM_HORIZON_PERIODS = 1.5
STREAM_GAP_PERIODS = 2.0  # a target sent longer than this after the previous one starts a new stream
DISCONNECT_WAIT_S = 10.0  # for the stopping motion and a gripper operation still running at disconnect
# franky's Robot and Gripper crash the process when destroyed while an operation of theirs still runs (a
# busy machine: a 2 s wait was not enough); such objects are kept here for the life of the process instead
_STILL_RUNNING: list = []
_TARGET_EPS_M = 1e-6  # targets closer than this to the running one are not re-sent
_VELOCITY_EPS = 1e-6  # m/s and rad/s: nor are stream velocities closer than this to the running one's
_PERIOD_AVERAGING = 0.2  # weight of the newest interval in the stream's averaged period
_VELOCITY_MARGIN = 0.9  # share of the motion's velocity limit a waypoint may be passed with
_BRAKING_MARGIN = 1.1  # on the braking distance from a waypoint's velocity (a diagonal brakes faster)
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
    """An `Arm` over franky-control: `host` is the robot's FCI address (or a franky-sim server's).

    `motion_mode`: how targets become franky motions, "stream" (default) or "waypoint" (the old
    stop-and-go, kept for measuring it); see the module docstring."""

    def __init__(self, host: str, control_hz: float = DEFAULT_CONTROL_HZ,
                 dynamics_factor: float = DEFAULT_DYNAMICS_FACTOR, gripper_speed: float = DEFAULT_GRIPPER_SPEED,
                 kind: str = "franky", motion_mode: str = DEFAULT_MOTION_MODE):
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
        self._motion_velocity = np.zeros(6)  # (6,) the velocity the running motion passes its target with
        self._last_target: tuple[Pose, float] | None = None  # the last command's target, robot clock (s)
        self._stream_period = 1.0 / control_hz  # s between targets on the robot's clock, averaged
        # The motions' limits (franky's times the dynamics factor), set in connect: (3, 2) velocity,
        # acceleration and jerk (rows) of translation (m/s^k) and rotation (rad/s^k) (columns).
        self._dynamics = np.ones((3, 2))
        self._gripper_closed = False  # what was last asked of the gripper
        self._gripper_sent: bool | None = None  # what the gripper was last told (None: nothing yet)
        self._gripper_force = 0.0
        self._gripper_future = None
        self._next_tick: float | None = None
        self.motion_mode = motion_mode

    @property
    def motion_mode(self) -> str:
        return self._motion_mode

    @motion_mode.setter
    def motion_mode(self, mode: str) -> None:
        if mode not in MOTION_MODES:
            raise ValueError(f"motion_mode must be one of {', '.join(MOTION_MODES)}, got {mode!r}")
        with self._lock:
            self._motion_mode = mode
            self._forget_stream()
        self.info.details["motion_mode"] = mode

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
        self._dynamics = self.dynamics_factor * np.array([
            [robot.translation_velocity_limit.get(), robot.rotation_velocity_limit.get()],
            [robot.translation_acceleration_limit.get(), robot.rotation_acceleration_limit.get()],
            [robot.translation_jerk_limit.get(), robot.rotation_jerk_limit.get()]])
        # Keep holding what the hand already holds instead of dropping it on the first command.
        self._gripper_closed = grasped
        self._gripper_sent = True if grasped else None
        self._motion_target = None
        self._forget_stream()
        self._next_tick = None

    def disconnect(self) -> None:
        with self._lock:
            robot = self._robot
            if robot is None:
                return
            stopped = True
            try:
                if self._motion_target is not None:
                    robot.move(self._franky.CartesianStopMotion(), asynchronous=True)
                    stopped = bool(robot.join_motion(DISCONNECT_WAIT_S))
                if self._gripper_future is not None:
                    stopped = bool(self._gripper_future.wait(DISCONNECT_WAIT_S)) and stopped
            except Exception:
                stopped = False  # leaving anyway; the robot holds its pose when the connection closes
            if not stopped:
                _STILL_RUNNING.append((robot, self._gripper, self._gripper_future))
            self._robot = self._gripper = self._gripper_future = None
            self._motion_target = None
            self._forget_stream()

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

    def robot_state(self):
        """franky's latest `RobotState` as it is (the robot's clock, measured and commanded poses), for
        measuring motions (app/bench_franky_motion.py). Not under the command lock: franky's state is
        its own thread-safe copy, and a sampler must not delay the control loop."""
        robot = self._require()
        try:
            return robot.state
        except Exception as e:
            raise ArmError(f"could not read the Franka's state: {_one_line(e)}") from e

    def time(self) -> float:
        return time.monotonic()

    def command(self, cmd: ArmCommand) -> None:
        with self._lock:
            robot = self._require()
            target = cmd.ee_target
            velocity = self._stream_velocity(target, self._robot_clock(robot))
            if (self._motion_target is None or not _same_pose(target, self._motion_target)
                    or np.max(np.abs(velocity - self._motion_velocity)) >= _VELOCITY_EPS):
                try:
                    robot.move(self._motion_to(target, velocity), asynchronous=True)
                except Exception as e:
                    self._motion_target = None
                    self._forget_stream()
                    raise ArmError(f"the Franka refused the motion: {_one_line(e)}; "
                                   f"recover from errors once the arm is clear") from e
                self._motion_target, self._motion_velocity = target, velocity
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
                self._forget_stream()
                raise ArmError(f"the Franka stopped: {_one_line(e)}; recover from errors once the arm is clear") from e
            self._service_gripper()

    def stop(self) -> None:
        """Decelerate to a standstill as fast as the arm allows and hold there; the gripper keeps its grip.

        Not under the command lock: an e-stop must not wait behind a command or a state read in
        progress. franky serialises motions itself, and the safety layer stops again after a
        command that overlapped the e-stop, so the stop is always the arm's last motion."""
        robot = self._require()
        self._motion_target = None
        self._forget_stream()  # the next command starts a new stream, from rest
        try:
            robot.move(self._franky.CartesianStopMotion(), asynchronous=True)
        except Exception as e:
            raise ArmError(f"could not stop the Franka: {_one_line(e)}") from e
        finally:
            self._motion_target = None
            self._forget_stream()

    def recover(self) -> None:
        """Clear a reflex or error (the GUI asks the operator first)."""
        with self._lock:
            robot = self._require()
            try:
                ok = robot.recover_from_errors()
            except Exception as e:
                raise ArmError(f"error recovery failed: {_one_line(e)}") from e
            self._motion_target = None
            self._forget_stream()
            if not ok:
                raise ArmError("the Franka did not recover from its errors; check the arm and its lights")

    # ---- streaming -----------------------------------------------------------------------------
    def _forget_stream(self) -> None:
        """The next target starts a new stream: from rest, with no velocity to pass it with."""
        self._last_target = None
        self._motion_velocity = np.zeros(6)
        self._stream_period = self.control_period

    @staticmethod
    def _robot_clock(robot) -> float:
        try:
            return robot.state.time.to_sec()
        except Exception as e:
            raise ArmError(f"could not read the Franka's state: {_one_line(e)}") from e

    def _stream_velocity(self, target: Pose, now: float) -> np.ndarray:
        """(6,) linear (m/s) and angular (rad/s, base frame) velocity of the target stream at `now` (the
        robot's clock): its last step over the time between targets, averaged over a few ticks (a
        skill or teleop takes one step per tick; a tick's jitter must not jolt the arm); zero in
        "waypoint" mode and for the first target of a stream. Also remembers `target` as the last one.

        The robot's clock is the one franky's motions run on; it is the wall clock on a real arm, and
        franky-sim's simulated time, which falls behind the wall clock when its process lacks a core."""
        last, period = self._last_target, self.control_period
        self._last_target = (target, now)
        if self._motion_mode != "stream" or last is None or not 0.0 < now - last[1] <= STREAM_GAP_PERIODS * period:
            self._stream_period = period
            return np.zeros(6)
        self._stream_period += _PERIOD_AVERAGING * (max(now - last[1], period / 4) - self._stream_period)
        previous = last[0]
        turn = quat_multiply(np.asarray(target.quat, dtype=float), quat_conjugate(np.asarray(previous.quat, float)))
        velocity = np.concatenate([target.xyz - previous.xyz, _rotation_vector(turn)]) / self._stream_period
        # A stream faster than the arm may go (Ruckig refuses a waypoint velocity above the limits): pass
        # the target as fast as allowed, in the same direction. Norms, not components: franky turns the
        # velocity into the motion's frame before Ruckig checks it.
        max_linear, max_angular = _VELOCITY_MARGIN * self._dynamics[0]
        fastest = max(np.linalg.norm(velocity[:3]) / max_linear, np.linalg.norm(velocity[3:]) / max_angular)
        return velocity / fastest if fastest > 1.0 else velocity

    def _short_of(self, target: Pose, velocity: np.ndarray) -> Pose:
        """`target` moved back along `velocity` by the distance (and angle) the arm needs to brake from
        it, so that a stream that stops coming ends with the arm at rest on `target`, not past it."""
        offsets = []
        for part, (_, accel, jerk) in ((velocity[:3], self._dynamics[:, 0]), (velocity[3:], self._dynamics[:, 1])):
            speed = float(np.linalg.norm(part))
            braking = speed * speed / (2.0 * accel) + speed * accel / (2.0 * jerk)  # jerk-limited ramp included
            offsets.append(-_BRAKING_MARGIN * braking / speed * part if speed > 0.0 else np.zeros(3))
        quat = quat_multiply(_rotation_vector_quat(offsets[1]), np.asarray(target.quat, dtype=float))
        quat /= np.linalg.norm(quat)
        return Pose(tuple(float(v) for v in target.xyz + offsets[0]), tuple(float(v) for v in quat))

    def _motion_to(self, target: Pose, velocity: np.ndarray):
        """The franky motion that replaces the running one for `target` (see the module docstring)."""
        franky = self._franky
        if self._motion_mode == "waypoint":
            return franky.CartesianWaypointMotion([franky.CartesianWaypoint(self._affine(target))],
                                                  return_when_finished=False)
        horizon = franky.Duration(int(round(STREAM_HORIZON_PERIODS * self.control_period * 1000.0)))
        if not np.any(velocity):
            waypoints = [franky.CartesianWaypoint(self._affine(target), minimum_time=horizon)]
        else:
            passing = franky.CartesianState(self._affine(self._short_of(target, velocity)),
                                            franky.Twist(velocity[:3], velocity[3:]))
            waypoints = [franky.CartesianWaypoint(passing, minimum_time=horizon),
                         franky.CartesianWaypoint(self._affine(target))]
        return franky.CartesianWaypointMotion(waypoints, return_when_finished=False)

    def _affine(self, pose: Pose):
        w, x, y, z = pose.quat
        return self._franky.Affine(np.asarray(pose.position, dtype=float), np.array([x, y, z, w], dtype=float))

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


def _rotation_vector_quat(rv: np.ndarray) -> np.ndarray:
    """The unit (w, x, y, z) quaternion of a rotation vector (axis * angle, rad)."""
    angle = float(np.linalg.norm(rv))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    return np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * np.asarray(rv, dtype=float) / angle])


def _rotation_vector(q: np.ndarray) -> np.ndarray:
    """(3,) axis * angle (rad) of a unit (w, x, y, z) quaternion, the short way round."""
    w, v = float(q[0]), np.asarray(q[1:], dtype=float)
    if w < 0.0:
        w, v = -w, -v
    s = float(np.linalg.norm(v))
    if s < 1e-12:
        return 2.0 * v  # small angles: sin(a/2) ~ a/2
    return v * (2.0 * math.atan2(s, w) / s)
