"""The franky backend against a franky-sim server process: connect, track, grasp, lift, release."""
from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from franky_sim_support import (MAX_RECOVERIES, MIN_REALTIME_FACTOR_WAITS, is_transient, loop_rate,
                                skip_if_below_real_time)
from recorders.arms.base import ArmCommand, ArmError
from recorders.pose import Pose, quat_angle
from recorders.sim.franky_sim_server import FrankySimUnavailable
from recorders.cell.scene import CUBE_SIZE, CubeSpec, SceneSpec

pytestmark = pytest.mark.slow

CUBE = CubeSpec("red cube", "red", (0.5, 0.1), 0.3)
RATE_CHECK_TICKS = 10  # control ticks (1 s) over which the server's loop rate is measured first
MAX_DRIVE_TICKS = 200  # wall-clock ticks a wait may take; conditions end it much earlier
STILL_OVER_SIM_S = 0.05  # "standing still" is judged over at least this much simulated time


@pytest.fixture(scope="module")
def cell():
    from recorders.cell.franky_sim_workcell import FrankySimWorkcell

    try:
        wc = FrankySimWorkcell(SceneSpec((CUBE,), ()), control_hz=10.0)
    except FrankySimUnavailable as e:  # only "cannot run here" skips; any other failure fails
        pytest.skip(f"franky-sim cannot start here: {e}")
    wc.recoveries = 0  # transient planner errors recovered from, as the operator would
    try:
        before = wc.server.stats()
        for _ in range(RATE_CHECK_TICKS):  # holding still
            wc.arm.wait_tick()
        skip_if_below_real_time(loop_rate(before, wc.server.stats()), MIN_REALTIME_FACTOR_WAITS, "the franky-sim tests")
    except BaseException:
        wc.close()
        raise
    yield wc
    wc.close()
    assert not wc.server.alive


def tick(cell) -> None:
    """One control tick; a transient planner error is recovered from, as the operator would."""
    try:
        cell.arm.wait_tick()
    except ArmError as e:
        if not is_transient(e) or cell.recoveries >= MAX_RECOVERIES:
            raise
        cell.recoveries += 1
        cell.arm.recover()


def drive(cell, target: Pose | None, closed: bool, ticks: int, until=None, max_ticks: int = MAX_DRIVE_TICKS) -> int:
    """Command `target` (None: command nothing) for `ticks` ticks, then on until `until()` holds (or
    `max_ticks`); ticks used.

    The server runs in real time only while it gets a core; on a loaded machine its simulated time
    falls behind, so waits end on the arm's state and simulated time rather than after a fixed time.
    """
    for n in range(1, max_ticks + 1):
        if target is not None:
            cell.arm.command(ArmCommand(target, closed))
        tick(cell)
        if n >= ticks and (until is None or until()):
            return n
    return max_ticks


def sim_time(cell) -> float:
    return cell.server.stats()["sim_time"]


def unchanged(cell, measure, tol: float):
    """A condition: `measure()` changed by less than `tol` over at least STILL_OVER_SIM_S of simulated
    time, so a server starved of CPU (whose time hardly advances) is never taken for a still arm."""
    last = [measure(), sim_time(cell)]

    def check() -> bool:
        value, t = measure(), sim_time(cell)
        if t - last[1] < STILL_OVER_SIM_S:
            return False
        still = np.linalg.norm(np.asarray(value) - np.asarray(last[0])) < tol
        last[:] = [value, t]
        return bool(still)
    return check


def at_rest(cell, target: Pose | None = None, tol: float = 0.003):
    """A condition: the TCP stands still (and is within `tol` of `target`).

    The TCP rather than the joints: franky-sim's joint 7 chatters at its torque limit (its default
    joint damping is unstable at a 1 ms step), so its reported velocity never settles.
    """
    still = unchanged(cell, lambda: cell.arm.state().ee_pose.xyz, 3e-4)

    def check() -> bool:
        near = target is None or np.linalg.norm(cell.arm.state().ee_pose.xyz - target.xyz) < tol
        return bool(still() and near)
    return check


def gripper_settled(cell):
    return unchanged(cell, lambda: cell.arm.state().gripper_width, 2e-4)


def test_connect_and_state_match_the_simulator(cell):
    before = time.monotonic()
    s = cell.arm.state()
    assert before <= s.time <= time.monotonic()  # the monotonic clock
    assert s.joint_positions.shape == (7,) and s.joint_velocities.shape == (7,)
    sim_tcp = cell.tcp_pose()
    assert np.linalg.norm(s.ee_pose.xyz - sim_tcp.xyz) < 0.003
    assert quat_angle(np.asarray(s.ee_pose.quat), np.asarray(sim_tcp.quat)) < 0.01
    assert set(cell.object_poses()) == {CUBE.name}
    rgb, _ = cell.render("front")
    assert rgb.shape == (128, 128, 3) and rgb.std() > 5
    assert cell.camera_intrinsics("wrist")["width"] == 128


def test_tcp_tracks_a_5cm_move_and_matches_the_simulator_pose(cell):
    start = cell.arm.state().ee_pose
    goal = Pose.top_down(start.xyz + (0.0, 0.05, -0.03), 0.4)
    drive(cell, goal, False, 8, until=at_rest(cell, goal))
    s = cell.arm.state()
    assert np.linalg.norm(s.ee_pose.xyz - goal.xyz) < 0.01
    assert quat_angle(np.asarray(s.ee_pose.quat), np.asarray(goal.quat)) < 0.05
    sim_tcp = cell.tcp_pose()  # the TCP convention holds away from home, rotated too
    assert np.linalg.norm(s.ee_pose.xyz - sim_tcp.xyz) < 0.003
    assert quat_angle(np.asarray(s.ee_pose.quat), np.asarray(sim_tcp.quat)) < 0.01


def test_grasp_lift_and_release_a_cube(cell):
    cube0 = cell.object_pose(CUBE.name).xyz
    above = Pose.top_down((cube0[0], cube0[1], 0.15), CUBE.yaw)
    grasp = above.with_position((cube0[0], cube0[1], cube0[2]))
    drive(cell, above, False, 10, until=at_rest(cell, above))
    drive(cell, grasp, False, 5, until=at_rest(cell, grasp))
    drive(cell, grasp, True, 5, until=gripper_settled(cell))  # the grasp settles in ~1 s
    width = cell.arm.state().gripper_width
    assert 0.9 * CUBE_SIZE < width < 1.05 * CUBE_SIZE  # squeezing the cube, not closed through it
    lifted = above.with_position((cube0[0], cube0[1], 0.15))
    drive(cell, lifted, True, 5, until=at_rest(cell, lifted))
    held = cell.object_pose(CUBE.name).xyz
    tcp = cell.arm.state().ee_pose.xyz
    assert held[2] > cube0[2] + 0.1, f"the cube stayed at z={held[2]:.3f}"
    assert np.linalg.norm(held - tcp) < 0.02  # rose with the gripper
    drive(cell, lifted, False, 5, until=lambda: cell.object_pose(CUBE.name).xyz[2] < CUBE_SIZE)
    assert cell.arm.state().gripper_width > CUBE_SIZE + 0.02
    assert cell.object_pose(CUBE.name).xyz[2] < CUBE_SIZE  # released: it fell back to the table


def test_estop_holds_the_arm_until_reset(cell):
    here = cell.arm.state().ee_pose
    cell.arm.command(ArmCommand(here.moved(dz=0.05)))
    cell.arm.estop("test")
    with pytest.raises(ArmError, match="e-stop engaged"):
        cell.arm.command(ArmCommand(here.moved(dz=0.1)))
    drive(cell, None, False, 1, until=at_rest(cell))
    a, t = cell.arm.state().ee_pose.xyz, sim_time(cell)
    drive(cell, None, False, 1, until=lambda: sim_time(cell) - t >= 0.5)
    assert sim_time(cell) - t >= 0.5
    assert np.linalg.norm(cell.arm.state().ee_pose.xyz - a) < 0.002  # standing still for 0.5 s
    cell.arm.reset_estop()
    goal = Pose(tuple(a + (0.0, -0.03, 0.0)), here.quat)
    drive(cell, goal, False, 5, until=at_rest(cell, goal))  # moves again after the reset
    assert np.linalg.norm(cell.arm.state().ee_pose.xyz - goal.xyz) < 0.01
    stats = cell.server.stats()  # real time needs a free core, so only check that time advanced
    assert stats["ticks"] > 1000 and 0 < stats["realtime_factor"] <= 1.05, stats


def bound_addresses(pid: int) -> list[tuple[str, str]]:
    """(protocol, local IPv4 address) of every TCP/UDP socket process `pid` holds, read from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = []
    for protocol in ("tcp", "udp", "tcp6", "udp6"):
        for row in Path(f"/proc/net/{protocol}").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[9] in inodes:
                address = fields[1].split(":")[0]
                host = (socket.inet_ntoa(struct.pack("<I", int(address, 16))) if len(address) == 8
                        else f"ipv6:{address}")
                found.append((protocol, host))
    return found


def test_the_server_listens_on_the_loopback_only(cell):
    """franky-sim binds its UDP sockets to 0.0.0.0 by itself; the workcell's server must not."""
    if not Path("/proc/net/udp").exists():
        pytest.skip("needs Linux's /proc to see which addresses the server process bound")
    sockets = bound_addresses(cell.server.info.pid)
    assert {p for p, _ in sockets} >= {"tcp", "udp"}, sockets  # the client is connected: state flows over UDP
    assert {host for _, host in sockets} == {"127.0.0.1"}, sockets


def test_the_workcell_exposes_only_the_safety_wrapped_arm(cell):
    from recorders.arms.franky_arm import FrankyArm
    from recorders.cell.registry import WORKCELL_KINDS
    from recorders.safety import SafeArm

    assert isinstance(cell.arm, SafeArm) and cell.arm.stepped == WORKCELL_KINDS[cell.kind].stepped
    assert not any(isinstance(v, FrankyArm) for k, v in vars(cell).items() if not k.startswith("_"))
    assert np.linalg.norm(cell.tcp_pose().xyz - cell.arm.state().ee_pose.xyz) < 0.01  # tcp_pose stays


def test_a_franky_sim_server_refuses_a_non_loopback_host():
    from recorders.sim.franky_sim_server import FrankySimServer

    with pytest.raises(ArmError, match="loopback only; '0.0.0.0' is not a loopback address"):
        FrankySimServer(SceneSpec((CUBE,), ()), host="0.0.0.0")


def test_an_unreachable_arm_is_a_one_line_error():
    from recorders.arms.franky_arm import FrankyArm

    arm = FrankyArm("127.0.0.9")  # nothing listens there
    with pytest.raises(ArmError, match="could not connect to the Franka at 127.0.0.9") as info:
        arm.connect()
    assert "\n" not in str(info.value)
    with pytest.raises(ArmError, match="not connected"):
        arm.state()



def test_camera_poses_and_mounts_match_the_in_process_simulator(cell):
    """The same scene at the same joint positions puts both cameras in the same place, whichever
    process simulates it, and the wrist camera follows the TCP through its mount."""
    import mujoco

    from recorders.cell.camera_geometry import camera_pose_at
    from recorders.sim.world import SimWorld

    drive(cell, None, False, 1, until=at_rest(cell))
    world = SimWorld.build(cell.spec)
    try:
        world.data.qpos[world.arm_qpos] = cell.arm.state().joint_positions
        mujoco.mj_forward(world.model, world.data)
        for cam in cell.cameras:
            served, local = cell.camera_pose(cam), world.camera_pose(cam)
            assert np.linalg.norm(served.xyz - local.xyz) < 1e-3, cam
            assert np.degrees(quat_angle(np.asarray(served.quat), np.asarray(local.quat))) < 0.5, cam
            mount, local_mount = cell.camera_mount(cam), world.camera_mount(cam)
            assert mount.frame == local_mount.frame
            assert np.linalg.norm(mount.pose.xyz - local_mount.pose.xyz) < 1e-6
            assert quat_angle(np.asarray(mount.pose.quat), np.asarray(local_mount.pose.quat)) < 1e-6
        wrist = camera_pose_at(cell.camera_mount("wrist"), cell.arm.state().ee_pose)  # franky's measured pose
        assert np.linalg.norm(wrist.xyz - cell.camera_pose("wrist").xyz) < 0.003
        assert quat_angle(np.asarray(wrist.quat), np.asarray(cell.camera_pose("wrist").quat)) < 0.01
    finally:
        world.close()
