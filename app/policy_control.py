"""A learned diffusion policy executing motion calls: the control loop with asynchronous chunking, the
call's outcome check, and the key poses it leaves in memory. Used by unsupervised rollouts
(app/policy_rollout.py, evaluation) and by the Run workspace's engine (app/run_loop.py).

Per motion call (pick, place, push, home) data flows
```
hooks.observe() (arm state, object poses[, cameras]) -> FeatureBuilder (models/policy_features.py): the
    features PolicyDataset builds at training time (window clamped to the call's first frame, call
    vector with poses of the latest frame and the target resolved by the robot API, memory from the
    live Memory)
    -> policy.predict (a background thread) -> chunk (Tp, 8) + P(finished) per step
    -> ArmCommand per tick -> safety layer (cell.arm.command, returns what it sent)
    -> hooks.record(sent, observation) -> cell.arm.wait_tick
```
until the termination head's P(finished) for the step about to run exceeds `done_threshold` (after
`min_call_ticks`) or `max_call_s` of workcell time pass, or `hooks.should_abort()` (CallAborted). The
call's postcondition, read from the workcell's state with the scripted skills' own checks, makes it
ok or failed (with the reason).

Asynchronous chunking: while a chunk executes, the next one is predicted from the latest
observation, launched when `lead_steps` steps of the current chunk remain (default 4: 0.4 s at
10 Hz, many times the CPU inference time of the default model, while the next chunk is conditioned
on an observation only 0.4 s old). A chunk predicted from frame s starts executing at frame s + k
(k = steps that remained), so its first k actions, meant for frames already executed, are skipped,
keeping actions aligned with the frames they were trained for. A *stall* is a chunk whose inference
took longer than the time its predecessor's remaining k steps take at the control rate (for the
stepped simulator, whose ticks take no wall time, this is what a real-time arm would have waited).
The first chunk of a call is predicted before the arm moves (the arm rests between calls), so it
never counts as a stall.
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from models.policy_features import FeatureBuilder, remembered, state_row
from recorders.arms.base import ArmCommand
from recorders.call_log import CallAborted, SkillFailed
from recorders.cell.scene import CUBE_SIZE
from recorders.cell.workcell import Workcell
from recorders.observation import Observation, observe
from recorders.pose import Pose
from recorders.robot_api import RobotAPI
from recorders.robot_api_spec import Call
from recorders.skills import DIRECTIONS, HOME_POSITION
from recorders.task_suite import PLACE_TOLERANCE, in_zone

DEFAULT_LEAD_STEPS = 4
MIN_CALL_TICKS = 3  # the termination head is not trusted on a call's first ticks
HOLD_RADIUS_M = 0.03  # object centre to TCP for "held": the scripted skills' check
GRIPPER_CLOSED_ABOVE = 0.5  # action[7]


@dataclass
class TickHooks:
    """Where the policy's ticks meet the world around it. `observe()` is called just before each command
    (it may also keep the pace), `record(sent, observation)` just after; `should_abort()` is checked
    every tick; `on_chunk(chunk, start)` sees each chunk as it begins executing ((Tp, 8) actions, the
    index of its first step to run) and `on_step(p_finished, step)` each step about to run."""

    observe: Callable[[], Observation]
    record: Callable[[ArmCommand, Observation], None]
    should_abort: Callable[[], bool] = lambda: False
    on_chunk: Callable[[np.ndarray, int], None] | None = None
    on_step: Callable[[float, int], None] | None = None


@dataclass
class ChunkStats:
    inference_ms: list[float] = field(default_factory=list)  # per predicted chunk
    stalls: int = 0  # chunks that were not ready when the arm needed them
    stall_ms: float = 0.0  # total time the arm would have waited


@dataclass
class _Chunk:
    action: np.ndarray  # (Tp, 8)
    done: np.ndarray  # (Tp,)
    next: int  # index of the step to execute next
    stop: int  # one past the last step executed


@dataclass
class _Pending:
    future: Future
    launched: float  # perf_counter
    lead: int  # steps of the current chunk left at launch: the new chunk starts at index `lead`


class PolicyController:
    """A policy driving one workcell, call after call: its feature builder and inference thread.
    `close()` when done (the inference thread ends)."""

    def __init__(self, policy, cell: Workcell, scene, task_id: str, hooks: TickHooks, *, instruction: str = "",
                 lead_steps: int = DEFAULT_LEAD_STEPS, min_call_ticks: int = MIN_CALL_TICKS,
                 done_threshold: float = 0.5, seed: int = 0, fixed_noise: bool = True):
        import torch

        self.policy, self.cell, self.hooks = policy, cell, hooks
        self.config = c = policy.config
        self.features = FeatureBuilder.for_scene(c, scene, task_id, instruction)
        self.lead = max(0, min(lead_steps, c.action_horizon, c.pred_horizon - c.action_horizon))
        self.min_call_ticks, self.done_threshold = min_call_ticks, done_threshold
        params = getattr(policy, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        self.device = first.device if first is not None else torch.device("cpu")
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.seed, self.fixed_noise = seed, fixed_noise
        self.dt = cell.arm.control_period
        self.cameras = c.obs == "rgb"
        self.frames = 0
        self.call_ticks: dict[tuple[str, float], int] = {}  # ticks run per motion call (its code, start time)
        self.stats = ChunkStats()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-inference")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    # ---- inference ----
    def _infer(self, item: dict) -> tuple[np.ndarray, np.ndarray, float]:
        """On the inference thread: the chunk, P(finished) per step and when it was ready (perf_counter)."""
        batch = {k: v.unsqueeze(0).to(self.device) for k, v in item.items()}
        if self.fixed_noise:
            self.generator.manual_seed(self.seed)
        out = self.policy.predict(batch, generator=self.generator)
        action = out["action"][0].detach().float().cpu().numpy()  # (Tp, 8)
        done = out["done"][0].detach().float().cpu().numpy()  # (Tp,)
        return action, done, time.perf_counter()

    def _launch(self, memory, lead: int) -> _Pending:
        item = self.features.features(remembered(memory))  # built here: the frame is the latest
        return _Pending(self.pool.submit(self._infer, item), time.perf_counter(), lead)

    def _collect(self, pending: _Pending, stall_counts: bool) -> _Chunk:
        needed = time.perf_counter()
        action, done, finished = pending.future.result()
        took = finished - pending.launched
        self.stats.inference_ms.append(1000 * took)
        budget = max(pending.lead * self.dt, needed - pending.launched)
        if stall_counts and took > budget:
            self.stats.stalls += 1
            self.stats.stall_ms += 1000 * (took - budget)
        start = pending.lead
        chunk = _Chunk(action, done, start, min(start + self.config.action_horizon, len(action)))
        if self.hooks.on_chunk is not None:
            self.hooks.on_chunk(action, start)
        return chunk

    # ---- ticks ----
    def drive(self, memory, max_ticks: int) -> tuple[int, bool]:
        """Run the policy until its termination head says finished (True) or `max_ticks` pass (False);
        returns the ticks run. CallAborted when `hooks.should_abort()` says so."""
        chunk, pending, ticks = None, None, 0
        try:
            while ticks < max_ticks:
                if self.hooks.should_abort():
                    raise CallAborted("aborted by the operator")
                ob = self.hooks.observe()
                self.features.add_frame(state_row(ob, self.features.names),
                                        {f"{cam}_rgb": rgb for cam, (rgb, _) in ob.images.items()})
                if chunk is None:  # the call's first chunk: the arm is at rest, waiting is no stall
                    chunk = self._collect(self._launch(memory, 0), stall_counts=False)
                elif chunk.next >= chunk.stop:
                    chunk = self._collect(pending or self._launch(memory, 0), stall_counts=True)
                    pending = None
                j = chunk.next
                if self.hooks.on_step is not None:
                    self.hooks.on_step(float(chunk.done[j]), j)
                if ticks >= self.min_call_ticks and chunk.done[j] > self.done_threshold:
                    self.features.drop_frame()  # no command follows this observation
                    return ticks, True
                if pending is None and chunk.stop - j == self.lead and self.lead > 0:
                    pending = self._launch(memory, self.lead)
                self._tick(ob, chunk.action[j])
                chunk.next += 1
                ticks += 1
            return ticks, False
        finally:
            if pending is not None:
                pending.future.result()  # the generator and model are not shared across calls mid-step

    def _tick(self, ob: Observation, action: np.ndarray) -> None:
        cmd = ArmCommand(Pose.from_array(action[:7]), bool(action[7] > GRIPPER_CLOSED_ABOVE))
        sent = self.cell.arm.command(cmd)  # the safety layer clamps it
        self.hooks.record(sent, ob)
        self.frames += 1
        self.cell.arm.wait_tick()


def plain_hooks(cell: Workcell, cameras: bool, record: Callable[[ArmCommand, Observation], None]) -> TickHooks:
    """Hooks of an unsupervised rollout: observe the workcell as it is, record with `record`."""
    return TickHooks(observe=lambda: observe(cell, cameras=cameras), record=record)


# ---- one motion call ---------------------------------------------------------------------------------
def run_motion_call(controller: PolicyController, api: RobotAPI, call: Call, source: str, max_ticks: int,
                    max_call_s: float) -> int:
    """Execute the motion `call` with the policy, logged in the robot API's call log like a skill, then
    its key poses and history; returns the ticks it ran (also kept in `controller.call_ticks` when the
    call fails). SkillFailed when the policy does not finish in
    time or the call's postcondition fails; CallAborted when the hooks abort it."""
    args = [api.resolve(a, source) for a in call.args]
    resolved = next((a.to_array().astype(np.float32) for a in args if isinstance(a, Pose)), None)
    before = api.cell.object_poses()
    with api.log.record(call, source) as rec:
        controller.features.begin_call(call, resolved)
        n, finished = controller.drive(api.memory, max_ticks)
        controller.call_ticks[rec.code, rec.t_start] = n
        if not finished:
            raise SkillFailed(f"the policy did not finish {call.code} within {max_call_s:g} s")
        reason = check_outcome(api.cell, call, args, before)
        if reason is not None:
            raise SkillFailed(reason)
    capture_key_poses(api, call, args)
    api.memory.history.append(call.code)
    return n


def check_outcome(cell: Workcell, call: Call, args: Sequence, before: dict[str, Pose]) -> str | None:
    """Why the finished motion `call` did not do what it names (None: it did), from the workcell's
    state with the scripted skills' tolerances. `args`: resolved arguments; `before`: object poses
    when the call began."""
    state, poses = cell.arm.state(), cell.object_poses()
    tcp = state.ee_pose.xyz
    held = lambda o: state.gripper_closed and np.linalg.norm(poses[o].xyz - tcp) < HOLD_RADIUS_M  # noqa: E731
    if call.name == "pick":
        return None if held(args[0]) else f"the policy ended {call.code} without holding the {args[0]}"
    if call.name == "place":
        obj, target = args
        if held(obj):
            return f"the policy ended {call.code} still holding the {obj}"
        p = poses[obj].xyz
        if isinstance(target, Pose):
            goal = target.xyz
        elif target in cell.spec.zone_names:
            ok = in_zone(p, cell.spec, target) and abs(p[2] - CUBE_SIZE / 2) < 0.01
            return None if ok else f"the {obj} is not resting in the {target}"
        else:
            goal = poses[target].xyz + (0.0, 0.0, CUBE_SIZE)
        off = float(np.linalg.norm(p - goal))
        if np.hypot(*(p[:2] - goal[:2])) > PLACE_TOLERANCE or abs(p[2] - goal[2]) > 0.02:
            return f"the {obj} came to rest {100 * off:.1f} cm from its goal"
        return None
    if call.name == "push":
        obj, direction, distance = args
        moved = float(np.dot(poses[obj].xyz[:2] - before[obj].xyz[:2], DIRECTIONS[direction]))
        if moved < 0.7 * float(distance):
            return f"the {obj} moved only {100 * moved:.1f} cm of {100 * float(distance):.1f} cm"
        return None
    if call.name == "home":
        off = float(np.linalg.norm(tcp - np.asarray(HOME_POSITION)))
        return None if off < 0.03 else f"the arm stopped {100 * off:.1f} cm from home"
    raise ValueError(f"{call.name}() is not a motion call")


def capture_key_poses(api: RobotAPI, call: Call, args: Sequence) -> None:
    """Key poses of pick and place, as the robot API's scripted skills store them; here at the end of
    the call (a learned policy's gripper events are not marked), so a pick's pose is the lifted one."""
    if call.name == "pick":
        api.memory.capture("pick", args[0], api.cell.object_pose(args[0]), api.log.clock())
    elif call.name == "place":
        api.memory.capture("place", args[0], api.cell.object_pose(args[0]), api.log.clock())
