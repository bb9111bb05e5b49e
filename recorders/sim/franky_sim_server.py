"""The franky-sim server process: the workcell scene served over the libfranka protocol.

franky-sim's 1 kHz loop needs a core of its own, so it runs in a child process ("spawn" context):

    parent (FrankySimServer)                      child (`_serve`)
    ------------------------                      ----------------
    start() --- spec JSON, host -------------->   build new_franky_simulator(spec), bind
                                                  SimulationServer on host:1337 (gripper :1338)
            <-- ("ready", info) | ("error", msg)
    franky.Robot(host) <== libfranka TCP/UDP ==>  process commands, mj_step, send state (1 kHz)
    request(op) --- side channel (Pipe) ------>   answered between two ticks: object poses,
            <-- ("ok", value) | ("error", msg)    TCP pose, render, camera intrinsics, stats
    stop() ----- ("shutdown",) --------------->   close the sockets, exit

Only plain data crosses the pipe (lists, numbers, numpy arrays). The child exits when the parent
dies (the pipe reads EOF, or its parent pid changes), so it never outlives it.
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np

from recorders.arms.base import ArmError
from recorders.pose import Pose
from recorders.sim.scene import SceneSpec

DEFAULT_HOST = "127.0.0.1"
ROBOT_PORT = 1337  # libfranka's command port; the gripper server listens on 1338
GRIPPER_PORT = 1338
TICK_S = 0.001  # franky-sim steps MuJoCo and exchanges state at 1 kHz
STARTUP_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 10.0
_MAX_LAG_S = 0.05  # behind schedule by more than this: stop catching up, restart the schedule
_PARENT_CHECK_TICKS = 200

# Side-channel operations.
OP_OBJECT_POSES = "object_poses"
OP_TCP_POSE = "tcp_pose"
OP_RENDER = "render"
OP_INTRINSICS = "camera_intrinsics"
OP_STATS = "stats"
OP_SHUTDOWN = "shutdown"


class FrankySimUnavailable(ArmError):
    """franky-sim cannot start here (not installed, port busy, no process); the message says why."""


# Startup outcomes the child reports.
_READY = "ready"
_UNAVAILABLE = "unavailable"  # this machine cannot run franky-sim: FrankySimUnavailable
_FAILED = "failed"  # franky-sim runs but the workcell did not build: a bug, ArmError


@dataclass(frozen=True)
class ServerInfo:
    host: str
    pid: int
    startup_s: float  # from spawning the process to the server listening


class FrankySimServer:
    """Parent-side handle of a franky-sim server process serving the workcell of `spec`."""

    def __init__(self, spec: SceneSpec, host: str = DEFAULT_HOST, startup_timeout: float = STARTUP_TIMEOUT_S):
        self.spec = spec
        self.host = host
        self.startup_timeout = startup_timeout
        self.info: ServerInfo | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn = None
        self._lock = threading.Lock()  # one request/answer on the pipe at a time, from any thread

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> ServerInfo:
        """Spawn the server and wait until it listens; raises FrankySimUnavailable with the reason."""
        if self._process is not None:
            raise ArmError("this franky-sim server was already started")
        t0 = time.monotonic()
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe(duplex=True)
        self._process = ctx.Process(target=_serve, args=(self.spec.to_json(), self.host, child_conn, os.getpid()),
                                    name="franky-sim-server", daemon=True)
        try:
            self._process.start()
        except OSError as e:
            self.stop()
            raise FrankySimUnavailable(f"could not start the franky-sim server process: {e}") from e
        child_conn.close()
        atexit.register(self.stop)
        try:
            if not self._conn.poll(self.startup_timeout):
                raise FrankySimUnavailable(f"the franky-sim server did not start within {self.startup_timeout:.0f} s")
            status, payload = self._conn.recv()
        except (EOFError, OSError) as e:
            self._process.join(5.0)
            self.stop()
            raise FrankySimUnavailable(f"the franky-sim server process died while starting "
                                       f"(exit code {self._process.exitcode})") from e
        except BaseException:
            self.stop()
            raise
        if status != _READY:
            self.stop()
            raise (FrankySimUnavailable if status == _UNAVAILABLE else ArmError)(str(payload))
        self.info = ServerInfo(host=self.host, pid=self._process.pid, startup_s=time.monotonic() - t0)
        return self.info

    def stop(self, timeout: float = 3.0) -> None:
        """Shut the server down (politely, then by force); safe to call twice."""
        atexit.unregister(self.stop)
        process, conn = self._process, self._conn
        if process is not None and process.is_alive() and conn is not None:
            try:
                with self._lock:
                    conn.send((OP_SHUTDOWN,))
            except (OSError, ValueError):
                pass
            process.join(timeout)
        if process is not None and process.is_alive():
            process.terminate()
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(timeout)
        if conn is not None:
            conn.close()
        self._conn = None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive() and self._conn is not None

    # ---- side channel --------------------------------------------------------------------------
    def request(self, op: str, *args, timeout: float = REQUEST_TIMEOUT_S):
        """Ask the server process; answered between two simulation ticks."""
        if not self.alive:
            raise ArmError("the franky-sim server is not running; reconnect the workcell")
        with self._lock:
            try:
                self._conn.send((op, *args))
                if not self._conn.poll(timeout):
                    raise ArmError(f"the franky-sim server did not answer {op!r} within {timeout:.0f} s")
                status, payload = self._conn.recv()
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

    def stats(self) -> dict:
        """ticks, sim_time, wall_time, realtime_factor, overruns of the server loop so far."""
        return self.request(OP_STATS)


# ---- child process ---------------------------------------------------------------------------------
def _serve(spec_json: str, host: str, conn, parent_pid: int) -> None:
    """Child process entry point: start franky-sim, report readiness, loop until told or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the parent, which shuts us down
    if os.getppid() != parent_pid:
        return
    try:
        import franky_sim.mujoco_simulator  # noqa: F401  (MuJoCo, pinocchio)
        from franky_sim import SimulationServer
    except ImportError as e:
        conn.send((_UNAVAILABLE, f"franky-sim cannot be imported ({e}); install it with: pip install franky-sim"))
        return
    from recorders.sim.world import SimWorld, new_franky_simulator

    try:
        spec = SceneSpec.from_json(spec_json)
        sim = new_franky_simulator(spec)
        sim.init()
        server = SimulationServer(sim, hostname_candidates=[host])
    except Exception as e:  # a broken scene or asset: report it instead of dying silently
        conn.send((_FAILED, f"franky-sim could not build the workcell: {type(e).__name__}: {e}"))
        return
    try:
        server.init()
    except OSError:
        conn.send((_UNAVAILABLE, f"ports {ROBOT_PORT}/{GRIPPER_PORT} on {host} are busy (another franky-sim server or "
                            f"libfranka program is running there); stop it or use another loopback host"))
        return
    try:
        world = SimWorld(spec, sim.model, sim.data)
        conn.send((_READY, {"host": host}))
        _loop(server, world, conn, parent_pid)
    finally:
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
            if request[0] == OP_SHUTDOWN:
                return
            conn.send(_answer(request, world, ticks, time.perf_counter() - t_start, overruns))
        if ticks % _PARENT_CHECK_TICKS == 0 and os.getppid() != parent_pid:
            return
        deadline += TICK_S
        delay = deadline - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        elif delay < -_MAX_LAG_S:
            deadline = time.perf_counter()
            overruns += 1


def _answer(request: tuple, world, ticks: int, wall: float, overruns: int) -> tuple[str, object]:
    op, args = request[0], request[1:]
    try:
        if op == OP_OBJECT_POSES:
            return "ok", {name: pose.to_array() for name, pose in world.object_poses().items()}
        if op == OP_TCP_POSE:
            return "ok", world.tcp_pose().to_array()
        if op == OP_RENDER:
            return "ok", world.render(*args)
        if op == OP_INTRINSICS:
            return "ok", world.camera_intrinsics(*args)
        if op == OP_STATS:
            sim_time = ticks * TICK_S
            return "ok", {"ticks": ticks, "sim_time": sim_time, "wall_time": wall,
                          "realtime_factor": sim_time / wall if wall > 0 else 0.0, "overruns": overruns}
        return "error", f"unknown franky-sim server request {op!r}"
    except KeyError as e:  # an unknown camera or object: the message names the known ones
        return "error", str(e.args[0]) if e.args else str(e)
    except Exception as e:  # e.g. no OpenGL for rendering: report it and keep the arm served
        return "error", f"franky-sim server could not answer {op!r}: {type(e).__name__}: {e}"

