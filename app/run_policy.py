"""The learned policy inside a supervised run: it executes the run's motion calls (app/policy_control.py)
on the run's own ticks, so pacing, recording, abort and take-over are the run's, and publishes what the
Run workspace's policy view shows (app/run_overlay.py `PolicyTrace`).

    ActiveRun._execute(motion call) -> RunPolicy.execute -> run_motion_call -> PolicyController.drive
        hooks: observe = the run's paced observe, record = the run's take tick, should_abort = the
        run's abort flag, on_chunk / on_step -> PolicyTrace -> publish(policy_view=...)

Memory, query and terminal calls run on the robot API as with the scripted skills.
"""
from __future__ import annotations

import math
from typing import Callable

from app.policy_control import DEFAULT_LEAD_STEPS, PolicyController, TickHooks, run_motion_call
from app.run_overlay import PolicyTrace
from recorders.observation import Observation
from recorders.robot_api import RobotAPI
from recorders.robot_api_spec import Call

DEFAULT_MAX_CALL_S = 30.0  # a motion call the policy has not finished by then fails
DONE_THRESHOLD = 0.5


class RunPolicy:
    """A learned policy bound to one run's robot API and ticks. `close()` ends its inference thread."""

    def __init__(self, policy, api: RobotAPI, task_id: str, observe: Callable[[], Observation],
                 record: Callable, should_abort: Callable[[], bool], clock: Callable[[], float],
                 publish: Callable[..., None], control_hz: float, max_call_s: float = DEFAULT_MAX_CALL_S,
                 seed: int = 0):
        if policy.config.cond == "flat":
            raise ValueError("a flat policy knows only its task, not calls: a planner cannot drive it; "
                             "choose a policy trained with call conditioning")
        if hasattr(policy, "eval"):
            policy.eval()
        self.api, self.clock, self.publish = api, clock, publish
        self.max_call_s = max_call_s
        self.max_ticks = max(1, math.ceil(max_call_s * control_hz - 1e-9))
        self.trace = PolicyTrace(DONE_THRESHOLD, policy.config.action_horizon)
        hooks = TickHooks(observe=observe, record=record, should_abort=should_abort,
                          on_chunk=self.trace.on_chunk, on_step=self._on_step)
        self.controller = PolicyController(policy, api.cell, api.cell.spec, task_id, hooks,
                                           lead_steps=DEFAULT_LEAD_STEPS, done_threshold=DONE_THRESHOLD, seed=seed)
        self.publish(policy_view=self.view())

    @property
    def wants_cameras(self) -> bool:
        return self.controller.cameras

    def execute(self, call: Call, source: str) -> None:
        """Run one top-level call: a motion call by the policy, any other on the robot API."""
        if call.spec.kind != "motion":
            self.api.execute(call, source)
            return
        self.trace.begin_call(call.code)
        try:
            run_motion_call(self.controller, self.api, call, source, self.max_ticks, self.max_call_s)
        finally:
            self.trace.begin_call(None)
            self.publish(policy_view=self.view())

    def path_xyz(self):
        return self.trace.path_xyz()

    def view(self):
        return self.trace.view(self.controller.stats)

    def close(self) -> None:
        self.controller.close()

    def _on_step(self, p_finished: float, step: int) -> None:
        self.trace.on_step(p_finished, step, self.clock())
