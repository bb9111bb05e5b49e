"""The franky-sim server process: the workcell scene served over the libfranka protocol.

franky-sim's 1 kHz loop needs a core of its own, so it runs in a child process, started with
`python -m recorders.sim.franky_sim_server` (a fresh interpreter, like multiprocessing's "spawn",
but without re-running the parent's main script) and tied to the parent by a socket pair that
carries `multiprocessing.connection` messages:

    parent (FrankySimServer)                      child (`serve`)
    ------------------------                      ---------------
    start() --- spec JSON, host -------------->   build new_franky_simulator(spec), bind
                                                  SimulationServer on host:1337 (gripper :1338)
            <-- (ready | unavailable | failed, message)
    franky.Robot(host) <== libfranka TCP/UDP ==>  process commands, mj_step, send state (1 kHz)
    request(op) --- side channel ------------->   answered between two ticks: object poses,
            <-- ("ok", value) | ("error", msg)    TCP pose, render, camera intrinsics, camera pose
                                                  and mount, stats
    stop() ----- ("shutdown",) --------------->   close the sockets, exit

Only plain data crosses the channel (strings, numbers, lists, dicts, numpy arrays). The child exits
when the parent dies (the channel reads EOF, or its parent pid changes), so it never outlives it.
The child also makes franky-sim report the measured end-effector pose, as a real arm does
(`_report_measured_poses`), and serve only on its loopback host: franky-sim binds its TCP command
sockets to the given host but its UDP state/command sockets to every interface, which would let
anyone on the network drive the simulated arm (`_bind_udp_sockets_to_host`).
"""
from __future__ import annotations

import argparse
import atexit
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from recorders.arms.base import ArmError
from recorders.cell.camera_geometry import CameraMount
from recorders.pose import Pose
from recorders.cell.scene import SceneSpec

DEFAULT_HOST = "127.0.0.1"
ROBOT_PORT = 1337  # libfranka's command port; the gripper server listens on 1338
GRIPPER_PORT = 1338
TICK_S = 0.001  # franky-sim steps MuJoCo and exchanges state at 1 kHz
STARTUP_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 10.0
_MAX_LAG_S = 0.05  # behind schedule by more than this: stop catching up, restart the schedule
_PARENT_CHECK_TICKS = 200
_REPO_ROOT = Path(__file__).resolve().parents[2]

# Side-channel operations.
OP_OBJECT_POSES = "object_poses"
OP_TCP_POSE = "tcp_pose"
OP_RENDER = "render"
OP_INTRINSICS = "camera_intrinsics"
OP_CAMERA_POSE = "camera_pose"
OP_CAMERA_MOUNT = "camera_mount"
OP_STATS = "stats"
OP_SHUTDOWN = "shutdown"

# Startup outcomes the child reports.
_READY = "ready"
_UNAVAILABLE = "unavailable"  # this machine cannot run franky-sim: FrankySimUnavailable
_FAILED = "failed"  # franky-sim runs but the workcell did not build: a bug, ArmError


class FrankySimUnavailable(ArmError):
    """franky-sim cannot run here (not installed, ports busy); the message says why and what to do."""


@dataclass(frozen=True)
class ServerInfo:
    host: str
    pid: int
    startup_s: float  # from spawning the process to the server listening


class FrankySimServer:
    """Parent-side handle of a franky-sim server process serving the workcell of `spec`."""

    def __init__(self, spec: SceneSpec, host: str = DEFAULT_HOST, startup_timeout: float = STARTUP_TIMEOUT_S):
        if not _is_loopback(host):
            raise ArmError(f"a franky-sim server serves on the loopback only; {host!r} is not a loopback "
                           f"address (use 127.x.y.z, default {DEFAULT_HOST})")
        self.spec = spec
        self.host = host
        self.startup_timeout = startup_timeout
        self.info: ServerInfo | None = None
        self._process: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()  # one request/answer on the channel at a time, from any thread
        self._seq = 0  # numbers requests, so an answer that came too late is never taken for the next one

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> ServerInfo:
        """Start the server and wait until it listens.

        Raises FrankySimUnavailable when franky-sim cannot run here (not installed, ports busy) and
        ArmError for anything else (a crash, a timeout, a scene that does not build).
        """
        if self._process is not None:
            raise ArmError("this franky-sim server was already started")
        t0 = time.monotonic()
        parent_sock, child_sock = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "recorders.sim.franky_sim_server", "--fd", str(child_sock.fileno()),
                 "--parent-pid", str(os.getpid())],
                pass_fds=(child_sock.fileno(),), stdin=subprocess.DEVNULL, cwd=_REPO_ROOT)  # -m imports from cwd
        except OSError as e:
            parent_sock.close()
            raise ArmError(f"could not start the franky-sim server process: {e}") from e
        finally:
            child_sock.close()
        self._conn = Connection(parent_sock.detach())
        atexit.register(self.stop)
        try:
            self._conn.send((self.spec.to_json(), self.host))
            if not self._conn.poll(self.startup_timeout):
                raise ArmError(f"the franky-sim server did not start within {self.startup_timeout:.0f} s")
            status, message = self._conn.recv()
        except (EOFError, OSError) as e:
            code = self._process.poll()
            self.stop()
            raise ArmError(f"the franky-sim server process died while starting (exit code {code}); "
                           f"its error is printed above") from e
        except BaseException:
            self.stop()
            raise
        if status != _READY:
            self.stop()
            raise (FrankySimUnavailable if status == _UNAVAILABLE else ArmError)(message)
        self.info = ServerInfo(host=self.host, pid=self._process.pid, startup_s=time.monotonic() - t0)
        return self.info

    def stop(self, timeout: float = 3.0) -> None:
        """Shut the server down (politely, then by force); safe to call twice."""
        atexit.unregister(self.stop)
        process, conn = self._process, self._conn
        if process is not None and process.poll() is None and conn is not None:
            try:
                with self._lock:
                    conn.send((0, OP_SHUTDOWN))
                process.wait(timeout)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if conn is not None:
            conn.close()
        self._conn = None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None and self._conn is not None

    # ---- side channel --------------------------------------------------------------------------
    def request(self, op: str, *args, timeout: float = REQUEST_TIMEOUT_S):
        """Ask the server process; answered between two simulation ticks."""
        if not self.alive:
            raise ArmError("the franky-sim server is not running; reconnect the workcell")
        with self._lock:
            self._seq += 1
            deadline = time.monotonic() + timeout
            try:
                self._conn.send((self._seq, op, *args))
                while True:
                    if not self._conn.poll(max(0.0, deadline - time.monotonic())):
                        raise ArmError(f"the franky-sim server did not answer {op!r} within {timeout:.0f} s")
                    seq, status, payload = self._conn.recv()
                    if seq == self._seq:
                        break
            except (EOFError, OSError) as e:
                raise ArmError(f"lost the franky-sim server while asking for {op!r}: {e}") from e
        if status != "ok":
            raise ArmError(str(payload))
        return payload

    def object_poses(self) -> dict[str, Pose]:
        return {name: Pose.from_array(a) for name, a in self.request(OP_OBJECT_POSES).items()}

    def tcp_pose(self) -> Pose:
        """The simulator's own TCP pose (the `tcp` site), to check the franky convention against."""
        return Pose.from_array(self.request(OP_TCP_POSE))

    def render(self, camera: str) -> tuple[np.ndarray, np.ndarray | None]:
        return self.request(OP_RENDER, camera)

    def camera_intrinsics(self, camera: str) -> dict:
        return self.request(OP_INTRINSICS, camera)

    def camera_pose(self, camera: str) -> Pose:
        return Pose.from_array(self.request(OP_CAMERA_POSE, camera))

    def camera_mount(self, camera: str) -> CameraMount:
        return CameraMount.from_dict(self.request(OP_CAMERA_MOUNT, camera))

    def stats(self) -> dict:
        """ticks, sim_time, wall_time, realtime_factor, overruns of the server loop so far."""
        return self.request(OP_STATS)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---- child process ---------------------------------------------------------------------------------
def _report_measured_poses() -> None:
    """Make franky-sim report the measured end-effector pose (O_T_EE), as a real arm does.

    franky-sim 1.0.4's `BaseRobot.kinematics` returns a view into pinocchio's data, so the O_T_EE it
    stores is overwritten when the desired pose (from q_d) is computed next: clients are sent the
    commanded pose instead of the measured one, and a moving arm seems ahead of where it is.
    Returning a copy restores the measured pose; nothing else changes.
    """
    from franky_sim.base_simulator import BaseRobot

    kinematics = BaseRobot.kinematics
    if getattr(kinematics, "returns_copy", False):
        return

    def copying_kinematics(self, q):
        return kinematics(self, q).copy()

    copying_kinematics.returns_copy = True
    BaseRobot.kinematics = copying_kinematics


# What franky-sim 1.0.4's `FrankaServer._setup_udp_connection` sets (private, name-mangled attributes).
_UDP_CONNECTION_ATTRIBUTES = ("_FrankaServer__client_udp_port", "_FrankaServer__udp_socket",
                              "_FrankaServer__udp_receiver", "_FrankaServer__message_id")


def _bind_udp_sockets_to_host() -> None:
    """Make franky-sim open each client's UDP socket on the server's host instead of 0.0.0.0.

    franky-sim 1.0.4 has no option for it: `_setup_udp_connection` binds ("0.0.0.0", 0) whatever host
    the server was given. This is that method with the server's host as the address; it sets the
    same private attributes, and refuses (RuntimeError) a franky-sim whose method sets others.
    """
    from franky_sim.franka_server import FrankaServer, NonBlockingReceiver

    setup = FrankaServer._setup_udp_connection
    if getattr(setup, "binds_to_host", False):
        return
    if not set(_UDP_CONNECTION_ATTRIBUTES) <= set(setup.__code__.co_names):
        raise RuntimeError("this franky-sim opens its UDP sockets differently from 1.0.4; "
                           "update _bind_udp_sockets_to_host in recorders/sim/franky_sim_server.py")

    def setup_on_host(self, network_udp_port: int) -> None:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((self.hostname, 0))
        udp.setblocking(False)
        self._FrankaServer__client_udp_port = network_udp_port
        self._FrankaServer__udp_socket = udp
        self._FrankaServer__udp_receiver = NonBlockingReceiver(udp)
        self._FrankaServer__message_id = 0

    setup_on_host.binds_to_host = True
    FrankaServer._setup_udp_connection = setup_on_host


def serve(conn: Connection, parent_pid: int) -> None:
    """Child process: start franky-sim on the received scene, report readiness, loop until told or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the parent, which shuts us down
    try:
        spec_json, host = conn.recv()
    except (EOFError, OSError):
        return
    try:
        import franky_sim.mujoco_simulator  # noqa: F401  (MuJoCo, pinocchio)
        from franky_sim import SimulationServer
    except ImportError as e:
        conn.send((_UNAVAILABLE, f"franky-sim cannot be imported ({e}); install it with: pip install franky-sim"))
        return
    from recorders.sim.world import SimWorld, new_franky_simulator

    try:
        _report_measured_poses()
        _bind_udp_sockets_to_host()
        spec = SceneSpec.from_json(spec_json)
        sim = new_franky_simulator(spec)
        sim.init()
        server = SimulationServer(sim, hostname_candidates=[host])
    except Exception as e:  # a broken scene or asset: report it to the parent instead of dying silently
        conn.send((_FAILED, f"franky-sim could not build the workcell: {type(e).__name__}: {e}"))
        return
    try:
        server.init()
    except OSError:
        conn.send((_UNAVAILABLE, f"ports {ROBOT_PORT}/{GRIPPER_PORT} on {host} are busy (another franky-sim server "
                                 f"or libfranka program is running there); stop it or use another loopback host"))
        return
    world = SimWorld(spec, sim.model, sim.data)
    try:
        conn.send((_READY, host))
        _loop(server, world, conn, parent_pid)
    finally:
        world.close()
        server.cleanup()
        sim.cleanup()
        conn.close()


def _loop(server, world, conn, parent_pid: int) -> None:
    """The 1 kHz loop on an absolute schedule (sleep overshoot is caught up, long stalls are not)."""
    t_start = time.perf_counter()
    deadline = t_start
    ticks = overruns = 0
    while True:
        server.run_once(realtime=False)
        ticks += 1
        if conn.poll():
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            seq, op, args = request[0], request[1], request[2:]
            if op == OP_SHUTDOWN:
                return
            conn.send((seq, *_answer(op, args, world, ticks, time.perf_counter() - t_start, overruns)))
        if ticks % _PARENT_CHECK_TICKS == 0 and os.getppid() != parent_pid:
            return
        deadline += TICK_S
        delay = deadline - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        elif delay < -_MAX_LAG_S:
            deadline = time.perf_counter()
            overruns += 1


def _answer(op: str, args: tuple, world, ticks: int, wall: float, overruns: int) -> tuple[str, object]:
    try:
        if op == OP_OBJECT_POSES:
            return "ok", {name: pose.to_array() for name, pose in world.object_poses().items()}
        if op == OP_TCP_POSE:
            return "ok", world.tcp_pose().to_array()
        if op == OP_RENDER:
            return "ok", world.render(*args)
        if op == OP_INTRINSICS:
            return "ok", world.camera_intrinsics(*args)
        if op == OP_CAMERA_POSE:
            return "ok", world.camera_pose(*args).to_array()
        if op == OP_CAMERA_MOUNT:
            return "ok", world.camera_mount(*args).to_dict()
        if op == OP_STATS:
            sim_time = ticks * TICK_S
            return "ok", {"ticks": ticks, "sim_time": sim_time, "wall_time": wall,
                          "realtime_factor": sim_time / wall if wall > 0 else 0.0, "overruns": overruns}
        return "error", f"unknown franky-sim server request {op!r}"
    except KeyError as e:  # an unknown camera or object: the message names the known ones
        return "error", str(e.args[0]) if e.args else str(e)
    except Exception as e:  # e.g. no OpenGL for rendering: report it and keep the arm served
        return "error", f"franky-sim server could not answer {op!r}: {type(e).__name__}: {e}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="franky-sim workcell server (started by FrankySimServer)")
    parser.add_argument("--fd", type=int, required=True, help="socket to the parent process")
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    serve(Connection(args.fd), args.parent_pid)


if __name__ == "__main__":
    main()
