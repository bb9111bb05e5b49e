"""One run in progress on the Run session's worker thread: the loop that asks for each next call,
lets the operator have a say, runs it with the scripted skills and records every control tick.

    RunSession (app/run_session.py) --RunControls (what the operator asked)--> ActiveRun
    ActiveRun --RunHost.update / event (snapshot changes, events)--> RunSession --> callers

Per call: `between_calls` serves the session's requests and holds while paused; the step gate
(app/step_gate.py) takes the next proposal (an aborted call again, else the planner's, checked
against the scene) and asks this run, its operator, in step mode; `execute` runs it through the
robot API with the scripted skills, or a motion call with the learned policy (app/run_policy.py),
logged in the take, and publishes its row. Every tick publishes the camera images with the memory's
key poses and the policy's predicted path projected on them (app/run_overlay.py). An abort pauses the run with the call kept
for a retry; a take-over drives the arm by teleop in a stretch labelled with the corrected call.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Callable

from app.errors import one_line
from app.planner_eval import PlannerRefused, planner_proposer
from app.run_overlay import CameraOverlay
from app.run_policy import RunPolicy
from app.run_program import PLANNER_ALTERNATIVES, Alternative, CallRow, MemoryView
from app.step_gate import StepAnswer, StepGate
from recorders.arms.base import ArmCommand, ArmError
from recorders.call_log import CallAborted, SkillFailed
from recorders.intervention import Intervention
from recorders.observation import Observation, observe
from recorders.robot_api import RobotAPI
from recorders.robot_api_spec import Call
from recorders.take import Take, TakeResult
from recorders.teleop import DEFAULT_SPEED_LEVEL, TeleopInputs, TeleopIntegrator

STOPPED = "stopped by the operator"


class RunControls:
    """What the operator asked of the run: set by the session's requests (the events from any
    thread, the rest on the worker), read by the run between calls and at every tick."""

    def __init__(self):
        self.abort = threading.Event()  # the running call stops at its next tick
        self.stop = threading.Event()  # the run ends (saved) at its next chance
        self.takeover = threading.Event()  # the operator takes the arm at the next chance
        self.mode = "auto"
        self.paused = False
        self.speed_level = DEFAULT_SPEED_LEVEL  # teleop speed while taken over (recorders/teleop.py)
        self.answer: StepAnswer | None = None  # the operator's answer to the call awaiting approval
        self.hand_back: tuple[bool, str] | None = None  # (done, reason) ending a take-over
        self.teleop = TeleopInputs()  # keys and devices, used while taken over

    def reset(self, mode: str) -> None:
        """A new run starts in `mode`."""
        for flag in (self.abort, self.stop, self.takeover):
            flag.clear()
        self.mode, self.paused, self.answer, self.hand_back = mode, False, None, None



@dataclass(frozen=True)
class RunHost:
    """What the run needs of its session."""

    controls: RunControls
    update: Callable[..., None]  # publish snapshot changes
    event: Callable[..., None]  # post an event: (kind, text)
    serve_until: Callable[[Callable[[], bool]], None]  # serve requests until done() or a stop
    serve_pending: Callable[[], None]  # serve the requests queued so far
    control_hz: float
    cameras: bool  # observe the cameras every tick (obs "rgb")
    realtime: bool  # hold a stepped simulation to the wall clock
    max_calls: int
    max_call_s: float  # a learned policy's motion call fails when not finished by then


class ActiveRun:
    """A run of `propose`'s calls (source `source`) on the open `take`'s workcell."""

    def __init__(self, host: RunHost, take: Take, propose: Callable, source: str, planner=None, policy=None,
                 task_id: str = ""):
        """`planner`: the learned planner behind `propose` (None: the oracle program); `policy`: a learned
        policy that executes the motion calls (None: the scripted skills); `task_id`: the task whose
        layout the scene is (the policy's task feature)."""
        self.host, self.controls, self.take, self.cell = host, host.controls, take, take.cell
        self.propose, self.source = propose, source
        self.planner = planner  # the learned planner behind `propose` (None: the oracle program)
        self.names = tuple(self.cell.spec.object_names + self.cell.spec.zone_names)
        self.api = RobotAPI(self.cell, take.log, on_tick=self._record_tick, should_abort=self.controls.abort.is_set,
                            before_tick=self._observe_tick)
        self.gate = StepGate(self._next_proposal, self.names, self)
        self.gate.attach(take)
        self.rows: tuple[CallRow, ...] = ()
        self.retry: Call | None = None  # an aborted call, proposed again on resume
        self._integrator = TeleopIntegrator(host.control_hz)
        self._observed: Observation | None = None
        self._next_tick: float | None = None
        self.overlay = CameraOverlay(self.cell)
        self.learned = None if policy is None else RunPolicy(
            policy, self.api, task_id, observe=self._observe_policy_tick, record=lambda sent, _ob: self._record_tick(sent),
            should_abort=self.controls.abort.is_set, clock=self.take.clock, publish=host.update,
            control_hz=host.control_hz, max_call_s=host.max_call_s)
        self._shown_memory: tuple = ()
        self._last_seen: str | None = None  # the image facts last said in the log
        self.late_ticks = 0  # paced ticks that started more than a control period late
        self._cameras = host.cameras or (self.learned is not None and self.learned.wants_cameras)

    def close(self) -> None:
        """End the learned policy's inference thread, if any."""
        if self.learned is not None:
            self.learned.close()

    def drive(self) -> str | None:
        """Run calls until done(); why the run failed, or None."""
        for _ in range(self.host.max_calls):
            self._between_calls()
            if self.controls.stop.is_set():
                return STOPPED
            try:
                call = self.gate(self.api)
            except (CallAborted, PlannerRefused) as e:  # stopped while a call awaited approval; or refused
                return str(e)
            except Exception as e:  # noqa: BLE001 - whatever the planner did, the run ends with the reason
                return f"the planner could not write a valid next call: {one_line(e)}"
            failure = self._execute(call)
            if failure is not None or self.api.finished:
                return failure
        return f"no done() after {self.host.max_calls} calls"

    def finish(self, failure: str | None) -> TakeResult:
        return self.take.finish(self.api.memory, failed=failure is not None)

    def reinstruct(self, text: str) -> None:
        """The learned planner goes on from the same memory and call history with `text`."""
        if self.planner is None:
            raise RuntimeError("the oracle program belongs to its task; re-instructing needs a learned planner")
        self.propose = planner_proposer(self.planner, text, self.cell.spec, PLANNER_ALTERNATIVES)

    def palette_call(self, call: Call) -> None:
        """While taken over: a call of the skill palette runs now (source gui) inside the take-over's
        stretch (its frames are labelled with it: the later call owns them); failures are shown."""
        call = call.validate(self.names)
        self.controls.abort.clear()
        try:
            self.api.skills.sync_held()
            self.api.execute(call, "gui")
            self.host.event("call", f"{call.code}  ok (skill palette)")
        except (CallAborted, SkillFailed, ArmError) as e:
            status = "aborted" if isinstance(e, CallAborted) else "failed"
            self.host.event("error", f"{call.code}  {status}: {one_line(e)}")
        finally:
            self.api.finished = False  # the operator ends a take-over by handing back, never by done()
            self.controls.abort.clear()
            self._integrator.resync()
            self.host.update(memory=MemoryView.of(self.api.memory))

    # ---- the step gate's operator (app/step_gate.py) ------------------------------------------------
    def answer(self, call: Call, number: int) -> StepAnswer:
        """Auto mode (or a take-over) approves at once; step mode publishes the call and serves the
        session's requests until the operator answers (or stops the run)."""
        c = self.controls
        if c.mode == "auto" or c.takeover.is_set():
            return StepAnswer("approve")
        self.host.update(state="waiting_approval", proposed=call.code)
        self.host.serve_until(lambda: c.answer is not None or c.takeover.is_set())
        answer, c.answer = c.answer, None
        if answer is None:
            answer = StepAnswer("approve") if c.takeover.is_set() else StepAnswer("quit", why=STOPPED)
        self.host.update(state="running", proposed=None)
        return answer

    def refused(self, call: Call, reason: str) -> None:
        self.host.update(state="waiting_approval", error=reason)
        self.host.event("refused", reason)

    # ---- calls --------------------------------------------------------------------------------------
    def _between_calls(self) -> None:
        c = self.controls
        self._hold()
        self.host.serve_pending()
        if c.paused and not c.stop.is_set():
            self.host.update(state="paused")
            self.host.serve_until(lambda: not c.paused or c.takeover.is_set())
        self.host.update(state="running")

    def _hold(self) -> None:
        """The arm rests between calls (while the planner thinks, the operator approves, the run is
        paused): tell the safety layer, so its watchdog does not take the pause for stalled commands."""
        self._next_tick = None  # pacing starts afresh with the next call: a rest is no late tick
        try:
            self.cell.arm.stop()
        except ArmError as e:  # e.g. the connection dropped: the next command says so
            self.host.event("error", one_line(e))

    def _next_proposal(self, api: RobotAPI) -> Call:
        """The aborted call again, else the planner's next call, checked against the scene."""
        if self.retry is not None:
            call, self.retry = self.retry, None
            return call
        read_before = getattr(self.propose, "read_as", None)  # a learned planner's proposer reads its instruction
        call = self.propose(api)  # ... before its first call: said once, when it reads it otherwise
        if getattr(self.propose, "read_as", None) != read_before:
            self.host.event("info", f"the planner reads the instruction as: {self.propose.read_as}")
        seen = getattr(self.propose, "last_seen", None)  # what a planner reading the image's facts saw
        if seen and seen != self._last_seen:
            said = seen.removeprefix("Seen: ")
            objects = self.cell.spec.object_names
            if said == "nothing" and objects:  # e.g. a real camera: the facts know the simulated palette only
                said += (f" of the {len(objects)} objects (its facts are read by the simulated workcell's "
                         "colours; check the front camera's view)")
            self.host.event("info", f"the planner sees: {said}")
        self._last_seen = seen
        if self.planner is not None:  # a learned planner's proposer keeps the best calls it chose from
            self.host.update(alternatives=tuple(Alternative(a.code, a.probability)
                                                for a in self.propose.last_alternatives))
        return call.validate(self.names)

    def _publish_row(self, row: CallRow, new: bool) -> None:
        self.rows = (*self.rows, row) if new else (*self.rows[:-1], row)
        self.host.update(program=self.rows, memory=MemoryView.of(self.api.memory))

    def _execute(self, call: Call) -> str | None:
        """Run one call and publish its row; why the run must end, or None (an abort pauses it)."""
        c = self.controls
        if c.takeover.is_set():  # taken over before the call started
            return self._taken_over(call)
        c.abort.clear()
        row = CallRow(call.code, "running", self.source, self.take.clock())
        self._publish_row(row, new=True)
        status, reason = "ok", None
        try:
            self.api.skills.sync_held()  # the operator may have moved things by teleop
            if self.learned is not None:
                self.learned.execute(call, self.source)
            else:
                self.api.execute(call, self.source)
        except CallAborted as e:
            status, reason = "aborted", one_line(e)
        except ArmError as e:  # refused by the safety layer; after an e-stop or abort, an abort
            status, reason = ("aborted" if c.abort.is_set() else "failed"), one_line(e)
        except SkillFailed as e:
            status, reason = "failed", one_line(e)
        row = replace(row, status=status, t_end=self.take.clock(), reason=reason)
        self._publish_row(row, new=False)
        self.host.event("call", f"{call.code}  {status}" + (f": {reason}" if reason else ""))
        if status == "failed":
            return f"{call.code} failed: {reason}"
        if status == "aborted":
            if c.stop.is_set():
                return STOPPED
            if c.takeover.is_set():
                return self._taken_over(call)
            self.take.log_intervention(Intervention("abort", call.code, row.t_start, row.t_end, reason=reason))
            self.retry, c.paused = call, True  # resume runs it again; step mode may skip it
        return None

    def _taken_over(self, call: Call) -> str | None:
        """Teleop ticks, labelled `call`, until the operator hands back; why the run must end, or None."""
        c = self.controls
        c.takeover.clear()
        c.abort.clear()
        c.hand_back, c.paused = None, False  # handing back goes on running
        opened = self.take.log.open_call(call, "hotkey")
        row = CallRow(call.code, "running", "hotkey", opened.t_start)
        self._publish_row(row, new=True)
        self.host.update(state="taken_over")
        self.host.event("info", f"taken over at {call.code}: teleoperate, then hand back")
        self._integrator.resync()
        while c.hand_back is None and not c.stop.is_set():
            self.host.serve_pending()
            try:
                self._teleop_tick()
            except ArmError as e:  # e.g. the safety layer refused a step: shown, and teleop goes on
                self.host.event("error", one_line(e))
        done, reason = c.hand_back or (False, STOPPED)
        record = self.take.log.close_call("ok" if done else "aborted", None if done else reason or "handed back")
        self.take.log_intervention(Intervention("takeover", call.code, record.t_start, record.t_end, reason=reason))
        if c.stop.is_set():
            self._publish_row(replace(row, status=record.status, t_end=record.t_end, reason=record.reason), new=False)
            return STOPPED
        history = self.api.memory.history
        if not done:
            self.retry = call
        elif history[-1:] != [call.code]:  # done by hand (unless the palette just ran it): the planner goes on
            history.append(call.code)
        self._publish_row(replace(row, status=record.status, t_end=record.t_end, reason=record.reason), new=False)
        self.host.update(state="running")
        return None

    # ---- control ticks ------------------------------------------------------------------------------
    def _teleop_tick(self) -> None:
        intent = self.controls.teleop.take()
        try:
            self._observe_tick()
            state = self._observed.state
            if self.cell.arm.estopped:  # nothing is sent: the arm holds where it is
                self._record_tick(ArmCommand(state.ee_pose, state.gripper_closed))
                return
            self._integrator.speed_level = self.controls.speed_level
            try:
                sent = self.cell.arm.command(self._integrator.step(intent, state))
            except ArmError:
                self._integrator.resync()
                raise
            self._record_tick(sent)
        finally:
            self.cell.arm.wait_tick()

    def _observe_tick(self) -> None:
        """Just before a command (skills and teleop alike): keep the pace and observe."""
        self._pace()
        self._observed = observe(self.cell, cameras=self._cameras)

    def _memory_key(self) -> tuple:
        m = self.api.memory
        return tuple((k, id(kp)) for k, kp in m.poses.items()), len(m.history)

    def _observe_policy_tick(self) -> Observation:
        self._observe_tick()
        return self._observed

    def _record_tick(self, sent: ArmCommand) -> None:
        """After the command: write what the safety layer sent, with the observation taken before it,
        and publish the tick (clock, images with their marks, the policy's view)."""
        ob, self._observed = self._observed, None
        self.take.tick(sent, ob)
        path = None if self.learned is None else self.learned.path_xyz()
        changes = dict(clock=ob.state.time - self.take.t0, estop_reason=self.cell.arm.estop_reason,
                       late_ticks=self.late_ticks)
        memory = self._memory_key()
        if memory != self._shown_memory:  # key poses are stored mid-call, at the gripper events
            self._shown_memory = memory
            changes["memory"] = MemoryView.of(self.api.memory)
        if ob.images:
            changes.update(images=MappingProxyType({cam: rgb for cam, (rgb, _) in ob.images.items()}),
                           marks=self.overlay.marks(ob, self.api.memory, path))
        if self.learned is not None:
            changes["policy_view"] = self.learned.view()
        self.host.update(**changes)

    def _pace(self) -> None:
        """Simulated arms advance only when stepped: hold them to the wall clock (unless pacing is off)."""
        if not (self.host.realtime and self.cell.arm.stepped):
            return
        period = 1.0 / self.host.control_hz
        now = time.monotonic()
        if self._next_tick is not None and now - self._next_tick > period:
            self.late_ticks += 1  # this tick starts more than a period late: the arm waited on the loop
        deadline = now if self._next_tick is None else max(self._next_tick, now - period)
        if deadline > now:
            time.sleep(deadline - now)
        self._next_tick = max(deadline, now) + period

