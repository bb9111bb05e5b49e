"""The Run workspace's engine: a planner writes the program call by call, the scripted skills or a
learned policy run each call on a workcell, and the operator watches, approves, edits, skips, pauses,
aborts, re-instructs or stops; every run is saved as an episode with its interventions. One worker thread owns the workcell,
the take and the planner, so device I/O and model inference never run on the caller's thread.

    caller --requests (queue)--> worker: start a run; between calls (and while a call awaits
                                 approval or the run is paused) it serves approve / edit / skip /
                                 pause / resume / re-instruct / mode / reset e-stop
    caller --abort_call / stop / estop / close--> at once, from any thread (the running skill checks)
    caller <--snapshot() / drain_events()-------- RunSnapshot (app/run_program.py), RunEvent

A run: the planner (the task's oracle program, or a learned planner through app/planner_eval.py
`planner_proposer`) writes each next call, and the policy (the scripted skills, or a learned
diffusion policy through app/run_policy.py for the motion calls) executes it; app/run_loop.py
`ActiveRun` checks it against the scene, passes it through the step gate (app/step_gate.py, shared with `run --step`: in step mode the
operator approves, edits (validated) or skips it, logged as interventions) and runs it through the
robot API, logged in the take (recorders/take.py) whose control ticks are written as sent. An
aborted call is logged as an abort intervention, the run pauses, and on resume the call is proposed
again (step mode may skip it).

Take over: `take_over()` aborts the running call (or takes the call awaiting approval, or the next
one); the worker then drives the arm by teleop (recorders/teleop.py) at the control rate, that
stretch logged as a call of the corrected code with source hotkey, so its frames are labelled with
it. `hand_back(done, reason)` closes the stretch, logs a takeover intervention and either re-runs
the call or, done, moves on to the next one. While taken over, `call(Call)` runs a skill of the
palette (source gui) inside the stretch. Callers and tests wait on the session's condition (`wait_for`,
`wait_for_event`), notified whenever the snapshot changes or an event is posted.
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from pathlib import Path
from types import MappingProxyType
from typing import Callable

from app.planner_eval import MAX_CALLS, planner_proposer
from app.recording import next_episode_path
from app.run_loop import ActiveRun, RunControls, RunHost
from app.run_policy import DEFAULT_MAX_CALL_S
from app.errors import one_line
from app.session_state import PublishedState, estop_arm, open_session_workcell
from app.run_program import ACTIVE_STATES, MODES, ORACLE, PLANNER_ALTERNATIVES, SCRIPTED, MemoryView, RunEvent, RunSnapshot
from app.step_gate import StepAnswer, program_proposer
from recorders.cell.registry import ROBOT_KINDS, workcell_kind
from recorders.episode_meta import ModelRef, Provenance
from recorders.robot_api_spec import Call
from recorders.take import FREE_INSTRUCTION_TASK, Take, TakeResult
from app.workcell_setup import default_setup, taught_instance
from recorders.task_suite import FREE_INSTRUCTION, TASKS, make_instance
from recorders.teleop import SPEED_LEVELS_M_S, TeleopIntent

TASK_IDS = tuple(TASKS)


class RunSession(PublishedState):
    """Runs of a planner and the scripted skills on one kind of workcell, one run at a time."""

    event_type = RunEvent

    def __init__(self, out_dir, robot: str = "sim", robot_ip: str | None = None, control_hz: float = 10.0,
                 obs: str = "rgb", workcell_factory: Callable | None = None,
                 planner_loader: Callable[[str], tuple[object, ModelRef]] | None = None,
                 policy_loader: Callable[[str], tuple[object, ModelRef]] | None = None,
                 realtime: bool = True, max_calls: int = MAX_CALLS, max_call_s: float = DEFAULT_MAX_CALL_S,
                 setup=None):
        if robot not in ROBOT_KINDS:
            raise ValueError(f"robot must be one of {', '.join(ROBOT_KINDS)}, got {robot!r}")
        self.out_dir = Path(out_dir)
        self.robot, self.robot_ip, self.control_hz, self.obs = robot, robot_ip, float(control_hz), obs
        self.realtime = realtime  # False: a stepped simulation runs as fast as it can (logic tests)
        self.max_calls = max_calls
        self.max_call_s = max_call_s  # a learned policy's motion call fails when not finished by then
        self._factory = workcell_factory or self._open_cell
        self.setup = setup  # app/workcell_setup.py WorkcellSetup; None: the robot kind's default
        self._load_planner = planner_loader or _load_planner
        self._load_policy = policy_loader or _load_policy
        self._requests: queue.Queue = queue.Queue()
        self._lock = threading.RLock()  # re-entrant: a `wait_for` predicate may read the snapshot again
        self._changed = threading.Condition(self._lock)
        self._events: deque[RunEvent] = deque(maxlen=1000)
        self._controls = RunControls()
        self._closing = threading.Event()
        self._run_now: ActiveRun | None = None  # the run in progress (worker only)
        self._cell = None  # its workcell, for the e-stop from any thread
        self._snap = RunSnapshot(robot=robot)
        self._thread = threading.Thread(target=self._work, name="run-session", daemon=True)
        self._thread.start()

    # ---- requests (any thread; never block) ---------------------------------------------------------
    def start(self, task: str = "stack", seed: int = 0, instruction: str | None = None, planner: str = ORACLE,
              policy: str = SCRIPTED, mode: str = "auto", split: str = "train", robot: str | None = None,
              robot_ip: str | None = None) -> None:
        """Run `task`'s instance for `seed`, or any other `instruction` (for a learned planner) in its
        layout, on the `robot` workcell (default: the session's, or the last run's). `planner`: ORACLE or a planner run / checkpoint; `policy`: SCRIPTED (the skills) or a
        policy run / checkpoint (it executes the motion calls)."""
        self._submit(lambda: self._run(task, seed, instruction, str(planner), str(policy), mode, split, robot,
                                       robot_ip))

    def set_mode(self, mode: str) -> None:
        """auto, or step (each next call waits for approve / edit / skip); a waiting call is approved by auto."""
        self._submit(lambda: self._set_mode(mode))

    def approve(self) -> None:
        self._submit(lambda: self._give(StepAnswer("approve")))

    def edit(self, code: str) -> None:
        """Run `code` instead of the proposed call; an invalid edit is refused (a `refused` event) and
        the call keeps waiting."""
        self._submit(lambda: self._give(StepAnswer("edit", code=code)))

    def skip(self) -> None:
        self._submit(lambda: self._give(StepAnswer("skip")))

    def pause(self) -> None:
        """Hold the run once the running call ends."""
        self._submit(lambda: self._set_paused(True))

    def resume(self) -> None:
        self._submit(lambda: self._set_paused(False))

    def abort_call(self) -> None:
        """Stop the running call now (logged as aborted and as an intervention); the run pauses."""
        self._controls.abort.set()

    def take_over(self) -> None:
        """The operator drives the arm by teleop from now on (the running call is aborted) until `hand_back`."""
        if self.snapshot().state not in ACTIVE_STATES:
            self._event("error", "no run to take over")
            return
        self._controls.takeover.set()
        self._controls.abort.set()
        self._submit(lambda: None)  # wakes a worker waiting for an answer or a resume

    def set_teleop(self, intent: TeleopIntent) -> None:
        """The keyboard's teleop intent now (used while taken over); a gripper request is kept until a tick
        takes it."""
        self._controls.teleop.set_keys(intent)

    def set_speed_level(self, level: int) -> None:
        """The teleop speed while taken over: an index of recorders/teleop.py SPEED_LEVELS_M_S (clamped)."""
        self._controls.speed_level = max(0, min(len(SPEED_LEVELS_M_S) - 1, int(level)))
        self._update(speed_level=self._controls.speed_level)

    def use_teleop_devices(self, devices) -> None:
        """Gamepads / SpaceMice (anything with poll() -> TeleopIntent) polled beside the keys while taken over."""
        self._controls.teleop.set_devices(devices)

    def call(self, call: Call) -> None:
        """While taken over: run a call of the skill palette (source gui) from where the arm is."""
        self._submit(lambda: self._palette_call(call))

    def hand_back(self, done: bool, reason: str = "") -> None:
        """Give the arm back: `done`, the corrected call is finished and the planner goes on to the next;
        otherwise the call runs again from where the arm is. `reason`: what the operator corrected."""
        self._submit(lambda: self._give_back(bool(done), reason))

    def reinstruct(self, text: str) -> None:
        """A learned planner goes on from the current memory and call history with `text`."""
        self._submit(lambda: self._reinstruct(text))

    def stop(self) -> None:
        """End the run now (a running call is aborted) and save it, as failed."""
        self._controls.stop.set()
        self._controls.abort.set()
        self._submit(lambda: None)  # wakes a worker waiting for an answer

    def estop(self, reason: str = "e-stop pressed") -> None:
        """Stop the arm now, from any thread; the running call is aborted and the run pauses."""
        self._controls.abort.set()
        cell = self._cell
        if cell is None:
            self._event("error", f"E-STOP: {reason} (no arm connected: nothing to stop)")
            return
        self._update(estop_reason=reason)
        threading.Thread(target=estop_arm, args=(cell, reason), name="estop", daemon=True).start()
        self._event("error", f"E-STOP: {reason}")

    def reset_estop(self) -> None:
        """Let the arm move again (the operator checked the workspace); served while the run is paused."""
        self._submit(self._reset_estop)

    def close(self, timeout: float = 10.0) -> None:
        """Stop and save any run, release the workcell and end the worker."""
        self._closing.set()
        self._controls.stop.set()
        self._controls.abort.set()
        self._requests.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # ---- reading (any thread): snapshot, events and waits come from app/session_state.py ----------

    # ---- worker: requests ---------------------------------------------------------------------------
    def _submit(self, fn: Callable[[], None]) -> None:
        if not self._closing.is_set():
            self._requests.put(fn)

    def _work(self) -> None:
        while not self._closing.is_set():
            fn = self._requests.get()
            if fn is not None:
                self._guarded(fn)

    def _guarded(self, fn) -> None:
        """Run `fn`; whatever it raises becomes an error event, never the end of the worker."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - the worker reports and goes on
            self._update(error=one_line(e))
            self._event("error", one_line(e))

    def _serve_until(self, done: Callable[[], bool]) -> None:
        """Serve requests until `done()` or the run is stopped."""
        while not done() and not self._controls.stop.is_set():
            fn = self._requests.get()
            if fn is not None:
                self._guarded(fn)

    def _serve_pending(self) -> None:
        while True:
            try:
                fn = self._requests.get_nowait()
            except queue.Empty:
                return
            if fn is not None:
                self._guarded(fn)

    def _set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self._controls.mode = mode
        if mode == "auto" and self._snap.state == "waiting_approval":
            self._controls.answer = StepAnswer("approve")
        self._update(mode=mode)

    def _give(self, answer: StepAnswer) -> None:
        if self._snap.state != "waiting_approval":
            raise RuntimeError(f"no call is waiting for approval ({answer.kind} refused)")
        self._controls.answer = answer

    def _set_paused(self, paused: bool) -> None:
        if self._snap.state not in ACTIVE_STATES:
            raise RuntimeError(f"no run to {'pause' if paused else 'resume'}")
        self._controls.paused = paused

    def _palette_call(self, call: Call) -> None:
        if self._snap.state != "taken_over":
            raise RuntimeError(f"take over before calling {call.code} from the skill palette")
        self._run_now.palette_call(call)

    def _give_back(self, done: bool, reason: str) -> None:
        if self._snap.state != "taken_over":
            raise RuntimeError("the arm is not taken over: nothing to hand back")
        self._controls.hand_back = (done, " ".join(reason.split()))

    def _reinstruct(self, text: str) -> None:
        text = " ".join(text.split())
        if self._run_now is None:
            raise RuntimeError("no run to re-instruct")
        if not text:
            raise RuntimeError("a new instruction needs some text")
        self._run_now.reinstruct(text)
        self._update(instruction=text)
        self._event("info", f"new instruction: {text} (the planner goes on from the memory and calls so far)")

    def _reset_estop(self) -> None:
        if self._cell is None:
            raise RuntimeError("no arm connected")
        self._cell.arm.reset_estop()
        self._controls.abort.clear()
        self._update(estop_reason=None)
        self._event("info", "e-stop reset; the arm accepts commands again")

    def _open_cell(self, robot: str, spec, control_hz: float, robot_ip: str | None):
        return open_session_workcell(robot, spec, control_hz, robot_ip, self._setup_for(robot))

    def _setup_for(self, robot: str):
        """How the workcell opens: the given set-up, else the kind's default with its folder in the data dir."""
        return self.setup or default_setup(robot, self.out_dir)

    # ---- worker: one run ----------------------------------------------------------------------------
    def _run(self, task: str, seed: int, instruction: str | None, planner: str, policy: str, mode: str,
             split: str, robot: str | None, robot_ip: str | None) -> None:
        if self._run_now is not None:
            raise RuntimeError("a run is going on; stop it first")
        if robot is not None:
            if robot not in ROBOT_KINDS:
                raise ValueError(f"robot must be one of {', '.join(ROBOT_KINDS)}, got {robot!r}")
            if workcell_kind(robot).needs_ip and not (robot_ip or "").strip():
                raise RuntimeError(f"the {robot} workcell needs the robot's IP address")
            self.robot, self.robot_ip = robot, (robot_ip or "").strip() or None
            self._update(robot=robot)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if workcell_kind(self.robot).simulated:
            inst = make_instance(task, int(seed), split)
        else:  # a real arm: the instruction in the scene it was taught, for a learned planner
            inst = taught_instance(self._setup_for(self.robot), instruction or "", planner == ORACLE)
        text = " ".join(instruction.split()) if instruction is not None else inst.instruction
        free = text != inst.instruction or inst.task is FREE_INSTRUCTION  # goes to a learned planner as it is
        if not text:
            raise RuntimeError("an instruction needs some text")
        if free and planner == ORACLE:
            raise RuntimeError("only a learned planner follows an instruction of your own: the oracle program "
                               "belongs to its task")
        models: tuple[ModelRef, ...] = ()
        model = None
        if planner == ORACLE:
            propose, source = program_proposer(inst.program), "script"
        else:
            model, ref = self._load_planner(planner)
            propose = planner_proposer(model, text, inst.scene, PLANNER_ALTERNATIVES)
            source, models = "planner", (ref,)
        policy_model = None
        if policy != SCRIPTED:
            policy_model, ref = self._load_policy(policy)
            models = (ref, *models)
        self._controls.reset(mode)
        self._update(state="running", mode=mode, instruction=text, planner=planner, policy=policy, program=(),
                     proposed=None, alternatives=(), memory=MemoryView(), clock=0.0, episode=None, error=None, estop_reason=None,
                     marks=MappingProxyType({}), policy_view=None, objects=tuple(inst.scene.object_names),
                     zones=tuple(inst.scene.zone_names))
        path = next_episode_path(self.out_dir, FREE_INSTRUCTION_TASK if free else task)
        try:
            self._run_on_workcell(inst, path, text if free else None, propose, source, model, policy_model, models)
        except Exception as e:  # e.g. the workcell cannot be reached: the run ends, with the reason shown
            self._update(state="failed", error=one_line(e), proposed=None)
            raise

    def _run_on_workcell(self, inst, path: Path, free_instruction: str | None, propose: Callable, source: str,
                         model, policy_model, models: tuple[ModelRef, ...]) -> None:
        host = RunHost(self._controls, self._update, self._event, self._serve_until, self._serve_pending,
                       self.control_hz, self.obs == "rgb", self.realtime, self.max_calls, self.max_call_s)
        with self._factory(self.robot, inst.scene, self.control_hz, self.robot_ip) as cell:
            driver = source if policy_model is None else "policy"  # script (the oracle program), planner, policy
            provenance = Provenance(driver, cell.kind, models)
            self._cell = cell
            try:
                with Take(path, cell, provenance, obs=self.obs, control_hz=self.control_hz, inst=inst,
                          instruction=free_instruction, realtime=not cell.arm.stepped,
                          does_task=free_instruction is None) as take:
                    self._run_now = ActiveRun(host, take, propose, source, model, policy_model, inst.task.id)
                    try:
                        failure = self._run_now.drive()
                    finally:
                        self._run_now.close()
                    self._saved(self._run_now.finish(failure), failure)
            finally:
                self._run_now, self._cell = None, None

    def _saved(self, result: TakeResult, failure: str | None) -> None:
        if result.path is None:
            self._event("info", "nothing moved; nothing saved")
        else:
            verdict = {True: "success", False: "not successful", None: "success unknown"}[result.success]
            self._event("saved", f"saved {result.path.name}: {result.frames} ticks, {verdict}", result.path)
        if failure is None and result.success is False:
            failure = "the program ran but the task's success check failed"
        self._update(state="failed" if failure else "finished", error=failure, episode=result.path, proposed=None)


def suite_instruction(task: str, seed: int, split: str = "train") -> str:
    """The instruction of a suite task's instance (what a run says when no other text is given)."""
    return make_instance(task, int(seed), split).instruction


def _load_planner(path: str):
    """A planner run or checkpoint, and its provenance."""
    from app.model_loading import load_planner, model_ref

    return load_planner(path), model_ref("planner", path)


def _load_policy(path: str):
    """A policy run or checkpoint that a planner can drive, and its provenance."""
    from app.model_loading import load_policy, model_ref

    return load_policy(path, for_planner=True), model_ref("policy", path)
