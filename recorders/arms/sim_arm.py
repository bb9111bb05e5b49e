"""The in-process simulated arm: the FR3 in the MuJoCo workcell, stepped as fast as the CPU allows.

Each control tick the end-effector target is turned into joint targets by damped-least-squares IK
(with a pull towards the home posture in the null space), and the joint position actuators of
franky-sim's model track a linear interpolation towards them over the tick. The gripper is a
force-limited position servo on the finger tendon, so a closed gripper squeezes a cube with the
commanded force and friction alone holds it.
"""
from __future__ import annotations

import numpy as np

from recorders.arms.base import Arm, ArmCommand, ArmError, ArmInfo, ArmState, DEFAULT_CONTROL_HZ
from recorders.pose import Pose
from recorders.cell.scene import SceneSpec
from recorders.sim.scene import ROBOT_PREFIX
from recorders.sim.world import HOME_JOINTS, SimWorld

import mujoco  # noqa: E402 - after recorders.sim, which chooses MuJoCo's rendering backend before it loads

FINGER_OPEN = 0.04  # m per finger (tendon length of a fully open hand)
GRIPPER_KP = 2000.0  # N/m on the finger tendon
GRIPPER_KV = 30.0
GRIPPER_OPEN_FORCE = 60.0  # N, enough to open against nothing but the fingers' own inertia
MAX_JOINT_SPEED = 1.5  # rad/s per joint, below the FR3's limits (2.0-2.6 rad/s)
MAX_TCP_SPEED = 0.6  # m/s; a joint step that would sweep the tool faster is shortened


class SimArm(Arm):
    """An `Arm` over a `SimWorld` built in this process."""

    def __init__(self, spec: SceneSpec, control_hz: float = DEFAULT_CONTROL_HZ, timestep: float = 0.004):
        self.spec = spec
        self.info = ArmInfo(kind="sim", control_hz=control_hz, details={"timestep": timestep}, stepped=True)
        self._timestep = timestep
        self.world: SimWorld | None = None
        self._cmd: ArmCommand | None = None
        self._q_target = HOME_JOINTS.copy()
        self._gripper_closed = False

    # ---- lifecycle -----------------------------------------------------------------------------
    def connect(self) -> None:
        if self.world is not None:
            return
        self.world = SimWorld.build(self.spec, self._timestep)
        m = self.world.model
        self._arm_act = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, f"{ROBOT_PREFIX}fr3_joint{i}")
                         for i in range(1, 8)]
        self._hand_act = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, f"{ROBOT_PREFIX}hand")
        # Replace the hand actuator's fixed 0..255 mapping with a force-limited tendon servo.
        m.actuator_gainprm[self._hand_act, :3] = (GRIPPER_KP, 0, 0)
        m.actuator_biasprm[self._hand_act, :3] = (0, -GRIPPER_KP, -GRIPPER_KV)
        m.actuator_ctrlrange[self._hand_act] = (0.0, FINGER_OPEN)
        m.actuator_forcelimited[self._hand_act] = 1
        self._ik_data = mujoco.MjData(m)
        d = self.world.data
        d.ctrl[self._arm_act] = HOME_JOINTS
        self._set_gripper(False, GRIPPER_OPEN_FORCE)
        self._q_target = HOME_JOINTS.copy()
        self._settle(0.3)
        self._cmd = ArmCommand(self.world.tcp_pose(), False)
        self._t0 = float(d.time)

    def disconnect(self) -> None:
        if self.world is not None:
            self.world.close()
        self.world = None

    def _require(self) -> SimWorld:
        if self.world is None:
            raise ArmError("the simulated arm is not connected; call connect() first")
        return self.world

    # ---- Arm -----------------------------------------------------------------------------------
    def state(self) -> ArmState:
        w = self._require()
        return ArmState(
            time=float(w.data.time) - self._t0,
            joint_positions=w.joint_positions(),
            joint_velocities=w.joint_velocities(),
            ee_pose=w.tcp_pose(),
            gripper_width=w.gripper_width(),
            gripper_closed=self._gripper_closed,
        )

    def command(self, cmd: ArmCommand) -> None:
        self._require()
        self._cmd = cmd

    def wait_tick(self) -> None:
        w = self._require()
        cmd = self._cmd
        q_start = self._q_target.copy()
        q_goal = self.solve_ik(cmd.ee_target, seed=q_start)
        # Like the FR3's own controller, never ask a joint for more than its speed limit: an IK
        # solution that flips configuration near a joint limit is approached, not jumped to.
        max_step = MAX_JOINT_SPEED * self.control_period
        q_goal = self._limit_tcp_step(q_start, q_start + np.clip(q_goal - q_start, -max_step, max_step))
        self._set_gripper(cmd.gripper_closed, cmd.gripper_force if cmd.gripper_closed else GRIPPER_OPEN_FORCE)
        n = max(1, int(round(self.control_period / self._timestep)))
        ramp = max(1, int(0.8 * n))  # reach the goal before the tick ends, then hold it
        for i in range(n):
            s = min(1.0, (i + 1) / ramp)
            w.data.ctrl[self._arm_act] = q_start + s * (q_goal - q_start)
            self._step()
        self._q_target = q_goal

    def stop(self) -> None:
        w = self._require()
        self._q_target = w.joint_positions()
        self._cmd = ArmCommand(w.tcp_pose(), self._gripper_closed, self._cmd.gripper_force if self._cmd else 0.0)

    # ---- internals -----------------------------------------------------------------------------
    def _set_gripper(self, closed: bool, force: float) -> None:
        w = self.world
        self._gripper_closed = closed
        w.data.ctrl[self._hand_act] = 0.0 if closed else FINGER_OPEN
        w.model.actuator_forcerange[self._hand_act] = (-force, force)

    def _settle(self, seconds: float) -> None:
        for _ in range(int(seconds / self._timestep)):
            self._step()

    def _step(self) -> None:
        """One physics step; like the FR3's own controller, compensate gravity and Coriolis forces."""
        w = self.world
        w.data.qfrc_applied[w.arm_dof] = w.data.qfrc_bias[w.arm_dof]
        mujoco.mj_step(w.model, w.data)

    def _tcp_of(self, q: np.ndarray) -> np.ndarray:
        d = self._ik_data
        d.qpos[self.world.arm_qpos] = q
        mujoco.mj_kinematics(self.world.model, d)
        return d.site_xpos[self.world.tcp_site].copy()

    def _limit_tcp_step(self, q_start: np.ndarray, q_goal: np.ndarray) -> np.ndarray:
        """Shorten a joint step whose tool displacement exceeds MAX_TCP_SPEED (unreachable targets
        make IK swing the wrist; the tool must not follow at speed)."""
        limit = MAX_TCP_SPEED * self.control_period
        start = self._tcp_of(q_start)
        for scale in (1.0, 0.5, 0.25, 0.125, 0.0625):
            q = q_start + scale * (q_goal - q_start)
            if np.linalg.norm(self._tcp_of(q) - start) <= limit:
                return q
        return q_start

    def solve_ik(self, target: Pose, seed: np.ndarray, iterations: int = 25) -> np.ndarray:
        """Joint positions placing the TCP at `target`, starting from `seed`."""
        m, d = self.world.model, self._ik_data
        qadr, dof = self.world.arm_qpos, self.world.arm_dof
        lo, hi = m.jnt_range[self.world.arm_joints].T
        q = seed.copy()
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        target_quat = np.asarray(target.quat, float)
        cur_quat, neg, err_quat, rot_err = np.empty(4), np.empty(4), np.empty(4), np.empty(3)
        for _ in range(iterations):
            d.qpos[qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            pos_err = target.xyz - d.site_xpos[self.world.tcp_site]
            mujoco.mju_mat2Quat(cur_quat, d.site_xmat[self.world.tcp_site])
            mujoco.mju_negQuat(neg, cur_quat)
            mujoco.mju_mulQuat(err_quat, target_quat, neg)
            mujoco.mju_quat2Vel(rot_err, err_quat, 1.0)
            err = np.concatenate([pos_err, rot_err])  # (6,)
            if np.linalg.norm(pos_err) < 1e-4 and np.linalg.norm(rot_err) < 1e-3:
                break
            mujoco.mj_jacSite(m, d, jacp, jacr, self.world.tcp_site)
            jac = np.vstack([jacp[:, dof], jacr[:, dof]])  # (6, 7)
            jjt = jac @ jac.T + 1e-4 * np.eye(6)
            dq = jac.T @ np.linalg.solve(jjt, err)
            null = np.eye(7) - jac.T @ np.linalg.solve(jjt, jac)
            dq += null @ (0.2 * (HOME_JOINTS - q))
            q = np.clip(q + dq, lo + 1e-3, hi - 1e-3)
        return q
