"""The Record workspace's engine: one worker thread owns the workcell; callers only send requests
and read snapshots, so a window that uses it never waits on a device.

    caller (GUI thread) --requests (queue)--> worker: connect, teleop at the control rate,
                                              robot-API calls, recording, e-stop
    caller <--snapshot() / drain_events()---  (copied under a lock, never blocks on a device)

Every control tick, whether teleop or a skill drives the arm, goes the same way: `_observe_tick`
keeps the pace (simulated arms run in real time here, unless `realtime=False`) and observes; the
command goes through the safety layer; `_record_tick` writes the command actually sent, with that
observation, into the take if recording, and publishes.
Calls from the skill palette are logged with source "gui"; stretches labelled with hotkeys with
source "hotkey". The workcell opens as its `WorkcellSetup` says (app/workcell_setup.py: rendered or
RealSense cameras, true or perceived objects); device cameras and the microphone record at their own
rate, and a device that fails mid-take is noted in the episode and told to the operator while the
take goes on. A real take has no task of the suite: its instruction is free text and the operator
marks its success when stopping it. The e-stop acts from the caller's thread at once, without waiting for the worker.
Callers and tests wait on the session's condition (`wait_for`, `wait_for_event`), notified whenever
the snapshot changes or an event is posted, never on the wall clock.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable


from app.recording import Recording, next_episode_path
from app.errors import one_line
from app.capture_devices import CaptureDevices, camera_statuses
from app.record_snapshot import SessionEvent, SessionSnapshot, TickSample  # noqa: F401 - widgets import them here
from app.record_setup_requests import WorkcellSetupRequests
from app.record_teleop_devices import TeleopDeviceRequests
from app.workcell_tools import WorkcellTools
from app.session_state import PublishedState, estop_arm
from app.workcell_setup import WorkcellSetup, default_setup, open_setup_workcell
from recorders.arms.base import ArmCommand, ArmError
from recorders.call_log import CallAborted, CallLog, SkillFailed
from recorders.observation import Observation, observe
from recorders.robot_api import RobotAPI
from recorders.robot_api_spec import Call, InvalidCallError  # noqa: F401 - Call is re-exported for widgets
from recorders.take import FREE_TASK
from recorders.video_quality import check_quality
from recorders.task_suite import TASKS, TaskError, TaskInstance, make_instance
from recorders.teleop import TeleopInputs, TeleopIntegrator, TeleopIntent
from recorders.cell.workcell import Workcell

from recorders.cell.registry import ROBOT_KINDS as ROBOTS, workcell_kind  # the registry owns the robot kinds
TASK_IDS = tuple(TASKS)
CONNECTIONS = ("disconnected", "connecting", "live", "error")
HISTORY_S = 30.0  # seconds of state curves kept for the plots
WARMUP_TICKS = 3  # ticks after connecting not counted late (first renders and caches)


class RecordSession(WorkcellSetupRequests, TeleopDeviceRequests, PublishedState):
    """A connection to one workcell, teleop, robot-API calls and recording, run by a worker thread."""

    event_type = SessionEvent

    def __init__(self, out_dir, robot: str = "sim", robot_ip: str | None = None, task: str = "stack",
                 seed: int = 0, control_hz: float = 10.0, obs: str = "rgb",
                 workcell_factory: Callable[..., Workcell] | None = None, realtime: bool = True,
                 setup: WorkcellSetup | None = None, data_dir=None):
        if robot not in ROBOTS:
            raise ValueError(f"robot must be one of {', '.join(ROBOTS)}, got {robot!r}")
        self.out_dir = Path(out_dir)
        self.control_hz = float(control_hz)
        self.obs = obs
        self.realtime = realtime  # False: a stepped simulation runs as fast as it can (logic tests)
        self._robot, self._robot_ip = robot, robot_ip
        self._inst: TaskInstance | None = make_instance(task, seed)
        self._factory = workcell_factory or self._open_cell
        self._data_dir = Path(data_dir) if data_dir is not None else self.out_dir  # holds workcells/<kind>/
        self._setup = setup  # None: the default of each robot kind (app/workcell_setup.py)
        self._capture = CaptureDevices(self._update, self._event)  # cameras' status, microphone, scans
        self._tools = WorkcellTools(None)  # teaching, calibration, the workspace box (folder set on connect)
        self._scene_override = None  # a scene shown instead of the task's (the calibration boards)
        self._arm_fault: str | None = None
        self._requests: queue.Queue = queue.Queue()
        self._lock = threading.RLock()  # re-entrant: a `wait_for` predicate may read the snapshot again
        self._changed = threading.Condition(self._lock)  # notified on every snapshot change and event
        self._events: deque[SessionEvent] = deque(maxlen=1000)
        self._abort = threading.Event()
        self._closing = threading.Event()
        self._live = threading.Event()
        self._teleop = TeleopInputs()  # the keys and the opened gamepad / SpaceMouse
        self._cell: Workcell | None = None
        self._api: RobotAPI | None = None
        self._idle_log: CallLog | None = None
        self._rec: Recording | None = None
        self._integrator = TeleopIntegrator(self.control_hz)
        self._samples: deque[TickSample] = deque(maxlen=int(HISTORY_S * self.control_hz))
        self._next_tick: float | None = None
        self._observed: Observation | None = None  # this tick's observation, until its command is recorded
        self._late = 0
        self._warmup_ticks = WARMUP_TICKS  # the first ticks after connecting warm caches up: never counted late
        self._tick = 0
        self._running_call: str | None = None
        # The e-stop as the operator latched it, published at once (the arm's own stop runs in its own
        # thread, and its watchdog may stop it too); cleared only by a reset, so no status lags behind.
        self._estop_reason: str | None = None
        self._estops = 0  # e-stops pressed so far: a reset asked for before the latest one does not clear it
        self._instruction = self._inst.instruction
        self._snap = SessionSnapshot(robot=robot, task=task, seed=seed, instruction=self._instruction)
        self._thread = threading.Thread(target=self._run, name="record-session", daemon=True)
        self._thread.start()

    # ---- requests (any thread; never block) ---------------------------------------------------------
    def connect_robot(self, robot: str | None = None, robot_ip: str | None = None) -> None:
        self._submit(lambda: self._connect(robot or self._robot, robot_ip if robot else self._robot_ip))

    def disconnect(self) -> None:
        self._submit(self._disconnect)

    def set_setup(self, setup: WorkcellSetup | None) -> None:
        """Cameras and object source for the next connection (None: the robot kind's default); a
        chosen camera rig is saved with the workcell."""
        self._submit(lambda: self._apply_setup(setup))

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    def set_microphone(self, device, label: str = "") -> None:
        """Record sound from `device` (a PortAudio index, or anything with AudioRecorder's interface)
        in every take from the next one; None: no sound."""
        self._submit(lambda: self._capture.choose_microphone(device, label))

    def set_video_quality(self, quality: str | None) -> None:
        """How the next takes store their camera streams (recorders/video_quality.py); None: the default
        for the workcell's cameras."""
        if quality is not None:
            check_quality(quality)
        self._submit(lambda: self._capture.choose_video_quality(quality, self._cell, self.obs))

    def scan_capture_devices(self) -> None:
        """Look for RealSense cameras and microphones (in the worker: listing touches USB and PortAudio)."""
        self._submit(self._capture.scan)

    def setup_for(self, robot: str) -> WorkcellSetup:
        return self._setup or default_setup(robot, self._data_dir)

    def new_scene(self, task: str, seed: int) -> None:
        """A fresh scene of `task` laid out from `seed` (reconnects the workcell)."""
        self._submit(lambda: self._new_scene(task, seed))

    def set_teleop(self, intent: TeleopIntent) -> None:
        """The keyboard's intent now; a gripper request is kept until the next tick takes it."""
        self._teleop.set_keys(intent)

    def set_speed_level(self, level: int) -> None:
        self._integrator.speed_level = level
        self._update(speed_level=self._integrator.speed_level)

    def call(self, call: Call) -> None:
        """Run a robot-API call (source gui) once the worker is free."""
        self._submit(lambda: self._execute(call))

    def open_labelled_call(self, call: Call) -> None:
        """Start a hotkey stretch: what the operator teleoperates next is labelled `call`."""
        self._submit(lambda: self._open_labelled(call))

    def close_labelled_call(self, status: str = "ok") -> None:
        self._submit(lambda: self._close_labelled(status))

    def start_recording(self, instruction: str | None = None) -> None:
        self._submit(lambda: self._start_recording(instruction))

    def stop_recording(self, success: bool | None = None) -> None:
        """Save the episode; a running call is aborted first. `success`: the operator's verdict, kept
        where the workcell cannot judge the take itself (a real arm)."""
        if self._running_call is not None:
            self._abort.set()
        self._submit(lambda: self._stop_recording(keep=True, success=success))

    def discard_recording(self) -> None:
        if self._running_call is not None:
            self._abort.set()
        self._submit(lambda: self._stop_recording(keep=False))

    def abort_call(self) -> None:
        self._abort.set()

    def estop(self, reason: str = "e-stop pressed") -> None:
        """Stop the arm now, from any thread: the running call is aborted and commands refused. The
        snapshot's `estop_reason` says so at once, until `reset_estop()`."""
        self._abort.set()
        cell = self._cell
        if cell is None:
            self._event("error", f"E-STOP: {reason} (no arm connected: nothing to stop)")
            return
        with self._lock:
            self._estops += 1
            self._estop_reason = reason
            self._update(estop_reason=reason)
        threading.Thread(target=estop_arm, args=(cell, reason), name="estop", daemon=True).start()
        self._event("error", f"E-STOP: {reason}")

    def reset_estop(self) -> None:
        """Let the arm move again (the operator has checked the workspace); an e-stop pressed after this
        request stays latched."""
        estops = self._estops
        self._submit(lambda: self._reset_estop(estops))

    def recover_arm(self) -> None:
        """Clear a real arm's errors (franky's recover_from_errors); call only after the operator confirmed."""
        self._submit(self._recover_arm)

    def close(self, timeout: float = 10.0) -> None:
        """Save any recording, release the workcell and end the worker."""
        self._closing.set()
        self._abort.set()
        self._requests.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # ---- reading (any thread; snapshot, events and waits: app/session_state.py) ---------------------
    def wait_until_live(self, timeout: float) -> bool:
        return self._live.wait(timeout)

    def wait_until_idle(self, timeout: float) -> bool:
        """True once every request sent so far has been handled (for scripts and tests)."""
        done = threading.Event()
        self._submit(done.set)
        return done.wait(timeout)

    @property
    def robot(self) -> str:
        return self._robot

    @property
    def robot_ip(self) -> str | None:
        return self._robot_ip

    # ---- worker ------------------------------------------------------------------------------------
    def _submit(self, fn: Callable[[], None]) -> None:
        if not self._closing.is_set():
            self._requests.put(fn)

    def _run(self) -> None:
        try:
            while not self._closing.is_set():
                if self._cell is None:
                    self._handle(self._requests.get())
                    continue
                while True:
                    try:
                        self._handle(self._requests.get_nowait())
                    except queue.Empty:
                        break
                if self._cell is not None and not self._closing.is_set():
                    self._guarded(self._teleop_tick)
        finally:
            self._guarded(self._shutdown)

    def _handle(self, fn) -> None:
        if fn is not None and not self._closing.is_set():
            self._guarded(fn)

    def _guarded(self, fn) -> None:
        """Run `fn`; whatever it raises becomes an error event, never the end of the worker."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - the worker reports and goes on
            self._event("error", one_line(e))
            if isinstance(e, ArmError):
                self._note_arm_fault(one_line(e))
            if isinstance(e, ArmError) and self._cell is not None and not self._cell_alive():
                self._drop_cell(f"connection lost: {one_line(e)}")

    def _connect(self, robot: str, robot_ip: str | None) -> None:
        if robot not in ROBOTS:
            raise ValueError(f"unknown robot {robot!r}; choose one of: {', '.join(ROBOTS)}")
        if self._rec is not None:
            raise RuntimeError("stop the recording before reconnecting")
        self._release_cell()
        self._robot, self._robot_ip = robot, robot_ip
        self._tools.folder = self.setup_for(robot).folder
        where = f" at {robot_ip}" if workcell_kind(robot).needs_ip else ""
        self._update(connection="connecting", message=f"connecting to {robot}{where} ...", robot=robot)
        try:
            cell = self._factory(robot, self._inst, self.control_hz, robot_ip)
        except Exception as e:  # noqa: BLE001 - any failure to connect is shown, never raised
            self._update(connection="error", message=f"could not connect to {robot}{where}: {one_line(e)}")
            self._event("error", f"could not connect to {robot}{where}: {one_line(e)}")
            return
        self._cell = cell
        self._capture.warm_up_encoder(cell, self.obs)
        self._idle_log = CallLog(clock=cell.arm.time)
        self._api = RobotAPI(cell, self._idle_log, on_tick=self._record_tick, should_abort=self._abort.is_set,
                             before_tick=self._observe_tick)
        self._integrator.resync()
        self._samples.clear()
        self._next_tick, self._late, self._warmup_ticks = None, 0, WARMUP_TICKS
        spec = cell.spec
        simulated = workcell_kind(cell.kind).simulated
        if not simulated and self._inst is not None and self._instruction == self._inst.instruction:
            self._instruction = ""  # a real take says what it shows in its own words
        self._update(instruction=self._instruction)
        self._update(connection="live", message=f"connected to {cell.kind}{where}", objects=tuple(spec.object_names),
                     zones=tuple(spec.zone_names), estop_reason=None, images={}, samples=(),
                     simulated=simulated, cameras=camera_statuses(cell), setup=self.setup_for(robot),
                     taught=self._tools.taught_names(cell),
                     workspace=(tuple(cell.arm.limits.workspace_min), tuple(cell.arm.limits.workspace_max)))
        self._event("info", f"connected to {cell.kind}{where}")
        self._live.set()

    def _disconnect(self) -> None:
        if self._rec is not None:
            self._stop_recording(keep=True)
        self._release_cell()
        self._update(connection="disconnected", message="not connected")

    def _new_scene(self, task: str, seed: int) -> None:
        if self._rec is not None:
            raise RuntimeError("stop the recording before changing the scene")
        try:
            self._inst = make_instance(task, int(seed))
        except TaskError as e:
            raise RuntimeError(str(e)) from None
        self._instruction = self._inst.instruction
        self._update(task=task, seed=int(seed), instruction=self._instruction)
        if self._cell is not None or not workcell_kind(self._robot).needs_ip:  # a real arm waits for Connect
            self._connect(self._robot, self._robot_ip)

    def _release_cell(self) -> None:
        cell, self._cell, self._api = self._cell, None, None
        self._live.clear()
        with self._lock:  # an e-stop belongs to the arm it stopped: a new connection starts unlatched
            self._estop_reason = None
            self._update(estop_reason=None)
        if cell is not None:
            cell.close()

    def _drop_cell(self, reason: str) -> None:
        if self._rec is not None:
            self._stop_recording(keep=True)
        try:
            self._release_cell()
        except Exception:  # noqa: BLE001 - the connection is already gone
            pass
        self._update(connection="error", message=reason)

    def _cell_alive(self) -> bool:
        try:
            self._cell.arm.state()
            return True
        except Exception:  # noqa: BLE001
            return False

    def _shutdown(self) -> None:
        if self._rec is not None:
            self._stop_recording(keep=True)  # closing the window never loses a take
        for device in self._teleop.devices:
            getattr(device, "close", lambda: None)()
        self._release_cell()
        self._update(connection="disconnected", message="closed")

    # ---- control ticks -----------------------------------------------------------------------------
    def _teleop_tick(self) -> None:
        cell = self._cell
        intent = self._teleop.take()
        for device in self._teleop.devices:
            if getattr(device, "error", None) and self._snap.teleop_devices_note != device.error:
                self._update(teleop_devices_note=device.error)
                self._event("error", f"{device.name}: {device.error}")
        try:
            ob = self._observe_tick()
            if cell.arm.estopped:  # nothing is sent: the arm holds where it is
                self._record_tick(ArmCommand(ob.state.ee_pose, ob.state.gripper_closed))
                return
            try:
                sent = cell.arm.command(self._integrator.step(intent, ob.state))
            except ArmError:
                self._integrator.resync()
                raise
            self._record_tick(sent)
        finally:
            cell.arm.wait_tick()

    def _observe_tick(self) -> Observation:
        """Just before a command is sent (skills and teleop alike): keep the pace and observe."""
        self._pace()
        cell = self._cell
        self._observed = observe(cell, cameras=bool(cell.cameras))
        return self._observed

    def _record_tick(self, sent: ArmCommand) -> None:
        """After the command: write `sent`, what the safety layer gave the arm, with the observation
        taken before it, then publish."""
        ob, self._observed = self._observed, None
        if self._rec is not None:
            self._rec.write(sent, ob)
            for line in self._rec.take.poll_faults():
                self._event("error", f"{line} (the take goes on and keeps everything recorded so far)")
        self._publish(ob)

    def _pace(self) -> None:
        """Simulated arms advance only when stepped: hold them to the wall clock (unless pacing is off)."""
        if not (self.realtime and self._cell.arm.stepped):
            return
        dt = 1.0 / self.control_hz
        now = time.monotonic()
        deadline = now if self._next_tick is None else self._next_tick
        if deadline > now:
            time.sleep(deadline - now)
        elif now - deadline > dt:
            self._late += self._warmup_ticks == 0
            deadline = now
        self._warmup_ticks = max(0, self._warmup_ticks - 1)
        self._next_tick = deadline + dt

    def _publish(self, ob: Observation) -> None:
        s = ob.state
        self._tick += 1
        self._samples.append(TickSample(s.time, tuple(float(v) for v in s.ee_pose.position), float(s.gripper_width)))
        log = self._api.log if self._api is not None else None
        open_rec = log.open_record if log is not None else None
        self._update(tick=self._tick, images={cam: rgb.copy() for cam, (rgb, _) in ob.images.items()},
                     samples=tuple(self._samples),
                     estop_reason=self._estop_reason or self._cell.arm.estop_reason,  # the watchdog's too
                     running_call=self._running_call, open_call=open_rec.code if open_rec else None,
                     memory_keys=tuple(self._api.memory.poses) if self._api is not None else (),
                     recording=self._rec.status() if self._rec is not None else None, late_ticks=self._late,
                     cameras=camera_statuses(self._cell), marks=self._tools.marks(self._cell))

    # ---- robot-API calls ---------------------------------------------------------------------------
    def _execute(self, call: Call) -> None:
        api = self._require_api()
        try:
            call.validate(self._scene_names())
        except InvalidCallError as e:
            raise RuntimeError(f"{call.code}: {e}") from None
        if self._api.log.open_record is not None:
            raise RuntimeError(f"close the labelled stretch {self._api.log.open_record.code} before calling {call.code}")
        self._abort.clear()
        api.skills.sync_held()
        self._running_call = call.code
        self._update(running_call=call.code)
        try:
            api.execute(call, "gui")
            self._event("call", f"{call.code}  ok")
        except (SkillFailed, CallAborted, ArmError) as e:
            self._event("error", f"{call.code}  {'aborted' if isinstance(e, CallAborted) else 'failed'}: "
                                 f"{one_line(e)}")
        finally:
            api.finished = False
            self._running_call = None
            self._abort.clear()
            self._integrator.resync()
            self._update(running_call=None)

    def _open_labelled(self, call: Call) -> None:
        self._require_api()
        if self._rec is None:
            raise RuntimeError("start recording before labelling a teleoperated stretch")
        call.validate(self._scene_names())
        self._rec.log.open_call(call, "hotkey")
        self._event("call", f"{call.code}  opened (teleoperate, then close it)")

    def _close_labelled(self, status: str) -> None:
        if self._rec is None or self._rec.log.open_record is None:
            raise RuntimeError("no labelled stretch is open")
        rec = self._rec.log.close_call(status)
        self._event("call", f"{rec.code}  closed ({status}, {rec.duration:.1f} s)")

    def _scene_names(self) -> list[str]:
        return [*self._cell.spec.object_names, *self._cell.spec.zone_names]

    def _require_api(self) -> RobotAPI:
        if self._api is None:
            raise RuntimeError("connect to a workcell first")
        return self._api

    # ---- recording ---------------------------------------------------------------------------------
    def _start_recording(self, instruction: str | None) -> None:
        api = self._require_api()
        if self._rec is not None:
            raise RuntimeError("already recording")
        text = (instruction or "").strip() or self._instruction
        inst = self._inst if workcell_kind(self._cell.kind).simulated else None  # a real take has no suite task
        if inst is None and not text:
            raise RuntimeError("type what the take shows (its instruction) before recording")
        self._instruction = text
        task = inst.task.id if inst is not None else FREE_TASK
        path = next_episode_path(self.out_dir, task)
        audio = self._capture.start_microphone()
        try:
            self._rec = Recording(path, self._cell, inst, text, self.obs, self.control_hz, audio=audio,
                                  video_quality=self._capture.video_quality)
        except BaseException:
            self._capture.stop_microphone()
            raise
        self._arm_fault = None
        api.log = self._rec.log
        api.memory.poses.clear()
        api.memory.history.clear()
        self._update(instruction=text, recording=self._rec.status())
        self._event("info", f"recording {path.name}")

    def _stop_recording(self, keep: bool, success: bool | None = None) -> None:
        rec, self._rec = self._rec, None
        if rec is None:
            raise RuntimeError("not recording")
        if self._api is not None:
            self._api.log = self._idle_log
        self._capture.stop_microphone()
        if not keep:
            rec.discard()
            self._event("discarded", f"discarded {rec.path.name}")
        else:
            result = rec.finish(self._api.memory if self._api is not None else None, success)
            if result.path is None:
                self._event("discarded", f"nothing recorded in {rec.path.name}; discarded")
            else:
                verdict = {True: "success", False: "not successful", None: "success unknown"}[result.success]
                self._event("saved", f"saved {result.path.name}: {result.frames} ticks, {verdict}", result.path)
        self._update(recording=None, open_call=None)

    def _reset_estop(self, estops: int) -> None:
        cell = self._cell
        latched = self._estop_reason is not None or (cell is not None and cell.arm.estopped)
        if estops != self._estops:
            return  # pressed again since the reset was asked for
        if not latched:
            self._abort.clear()
            return
        if cell is not None:
            cell.arm.reset_estop()  # not under the snapshot's lock: a real arm's reset may wait on a command
            self._integrator.resync()
        with self._lock:
            pressed_again = estops != self._estops
            if not pressed_again:
                self._estop_reason = None
                self._update(estop_reason=None)
        if pressed_again:  # during the reset: the arm is stopped again, and stays so
            if cell is not None:
                estop_arm(cell, self._estop_reason or "e-stop pressed")
            return
        self._abort.clear()
        self._event("info", "e-stop reset; the arm accepts commands again")

    def _recover_arm(self) -> None:
        self._require_api()
        self._cell.arm.recover()  # ArmError ("a sim arm has no errors ...") becomes an error event
        self._integrator.resync()
        self._event("info", "arm errors cleared (recover_from_errors)")

    # ---- devices -------------------------------------------------------------------------------------
    def _open_cell(self, robot: str, inst: TaskInstance | None, control_hz: float, robot_ip: str | None) -> Workcell:
        """The workcell of `robot` as its set-up says; a simulated one gets the task's scene (or the
        calibration boards' while calibrating)."""
        spec = self._scene_override or (inst.scene if inst is not None else None)
        return open_setup_workcell(robot, spec, control_hz, robot_ip, self.setup_for(robot))

    def _apply_setup(self, setup: WorkcellSetup | None) -> None:
        from app.workcell_setup import save_rig

        if setup is not None and setup.rig is not None and setup.folder is not None:
            save_rig(setup.folder, setup.rig)
        self._setup = setup

    def _note_arm_fault(self, text: str) -> None:
        """An arm error (a reflex, a lost connection) during a take is noted in it, once per error."""
        if self._rec is not None and text != self._arm_fault:
            self._arm_fault = text
            self._rec.take.note_fault("arm", text)
