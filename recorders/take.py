"""One take: an episode being recorded from a workcell, whoever drives the arm.

Scripted demonstrations (recorders/demo_recorder.py), the Record workspace (app/recording.py),
policy rollouts (app/policy_rollout.py) and Run all record through a `Take`:
```
Take(path, cell, provenance, ...)    episode metadata (task, scene, roles, program, provenance),
                                     the episode writer, the task monitor, the call log
take.log                             the robot API logs its calls here, on the workcell's clock
take.log_intervention(i)             a supervised run's operator stepped in (recorders/intervention.py)
take.tick(sent, ob)                  once per control tick: the command the safety layer sent, with
                                     the observation taken just before it (and rendered camera frames)
device cameras, microphone           their threads append each frame / audio block at its own time
take.poll_faults()                   devices that failed since the last poll: noted in the episode,
                                     the take goes on with the other streams
take.finish(memory) / discard()      labels from auto-segmentation, success, memory -> EPISODE.h5
```
Leaving a `with Take(...)` block without finish or discard keeps the flushed `.partial` file, which
`recover_partial` turns into an episode (a crash loses at most the last second).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from recorders.arms.base import ArmCommand
from recorders.call_log import CallLog, CallRecord
from recorders.episode_meta import EpisodeMeta, Provenance
from recorders.episode_writer import EpisodeWriter
from recorders.intervention import Intervention
from recorders.memory import Memory
from recorders.observation import Observation, append_tick, stream_specs
from recorders.audio_input import stream_spec as audio_stream_spec
from recorders.segmentation import segment_calls
from recorders.task_suite import TaskInstance, TaskMonitor
from recorders.cell.workcell import Workcell
from recorders.video_quality import DEFAULT_DEVICE_QUALITY, DEFAULT_RENDERED_QUALITY, check_quality

AUDIO_STREAM = "audio"  # the microphone's stream in an episode
FREE_TASK = "teleop"  # the task id of a take recorded without a task of the suite
FREE_INSTRUCTION_TASK = "instruction"  # ... and of a planner following a free instruction in a suite scene


def take_video_quality(cell: Workcell, chosen: str | None = None) -> str:
    """`chosen`, or by default: device cameras (noisy frames that lossless storage barely shrinks) are
    video-coded; rendered ones are kept as rendered, so a policy trains on exactly what it sees live."""
    if chosen is not None:
        return check_quality(chosen)
    device = any(cell.camera(cam).free_running for cam in cell.cameras)
    return DEFAULT_DEVICE_QUALITY if device else DEFAULT_RENDERED_QUALITY


@dataclass(frozen=True)
class TakeResult:
    path: Path | None  # None: nothing was recorded, the take was discarded
    frames: int
    success: bool | None  # None: unknown (the workcell cannot see the objects, or no task)
    calls: tuple[CallRecord, ...]


class Take:
    """An episode of `cell` being recorded into `path`.

    `inst`: the task being done (its scene, roles and program are stored, and its monitor decides
    success) or None for free teleoperation. `does_task=False`: `inst` only lays out the scene (stored
    with its seed) for a free `instruction` a planner follows, so the task id is FREE_INSTRUCTION_TASK,
    no program or roles are stored and success is unknown. `realtime`: a live arm that must never wait
    on the disk, so samples are dropped (and counted) when the writer falls behind; otherwise ticks wait.
    `video_quality` (recorders/video_quality.py): how camera streams are stored; None: `take_video_quality`'s default."""

    def __init__(self, path, cell: Workcell, provenance: Provenance, *, obs: str, control_hz: float,
                 inst: TaskInstance | None = None, instruction: str | None = None, realtime: bool = False,
                 does_task: bool = True, audio=None, video_quality: str | None = None):
        self.cell = cell
        sees_objects = inst is not None and bool(cell.spec.cubes)
        checks_task = sees_objects and does_task
        if inst is None:  # the operator's own take, or a written program with its instruction
            task = FREE_TASK if provenance.driver == "gui" else FREE_INSTRUCTION_TASK
        else:
            task = inst.task.id if does_task else FREE_INSTRUCTION_TASK
        if cell.perceived_objects:
            provenance = replace(provenance, objects="perceived")
        meta = EpisodeMeta(task=task,
                           instruction=instruction if instruction is not None else inst.instruction if inst else "",
                           robot=cell.kind, control_hz=control_hz, seed=inst.seed if inst else -1,
                           split=inst.split if inst else "", clock=cell.clock_name,
                           scene=cell.spec if cell.spec.cubes or cell.spec.zones else None, roles=inst.roles if checks_task else {},
                           program=inst.program_code if checks_task else "", provenance=provenance)
        specs = stream_specs(cell, obs, control_hz)
        if audio is not None:
            specs.append(audio_stream_spec(AUDIO_STREAM, audio))
        self.video_quality = take_video_quality(cell, video_quality)
        self.writer = EpisodeWriter(path, meta, specs, drop_when_full=realtime, video_quality=self.video_quality)
        self.monitor = TaskMonitor(inst, cell.true_object_poses()) if checks_task else None
        self.t0 = cell.arm.time()  # the take's time starts now, whatever the arm's clock reads
        # Devices stamp on time.monotonic(): on a wall-clock cell that is the arm's clock; on a simulated
        # one the take's start on the monotonic clock anchors them (the Record workspace paces it in real time).
        self._device_t0 = self.t0 if cell.clock_name == "monotonic" else time.monotonic()
        self.log = CallLog(clock=self.clock, sink=self.writer.log_call)
        self.frame_times: list[float] = []
        self._devices: dict[str, object] = {}  # episode stream -> the device camera or microphone feeding it
        self._faulted: set[str] = set()
        self._sinks: list[tuple] = []
        if obs == "rgb":
            for cam in cell.cameras:
                stream = cell.camera(cam)
                if stream.free_running:
                    sink = self._camera_sink(cam)
                    stream.add_sink(sink)
                    self._sinks.append((stream, sink))
                    self._devices[f"{cam}_rgb"] = stream
        self._skip_cameras = frozenset(stream.name for stream, _ in self._sinks)
        self._audio = audio
        if audio is not None:
            audio.on_block = self._audio_sink
            self._devices[AUDIO_STREAM] = audio

    @property
    def path(self) -> Path:
        return self.writer.path

    @property
    def frames(self) -> int:
        return len(self.frame_times)

    def clock(self) -> float:
        """Seconds since the take started, on the workcell's clock."""
        return self.cell.arm.time() - self.t0

    def tick(self, sent: ArmCommand, ob: Observation) -> dict[str, bool]:
        """Write one control tick: `sent`, the command the arm was given after the safety layer, and
        `ob`, observed just before it. Returns per stream whether the sample was kept (False: dropped
        because the writer is behind a real-time arm)."""
        t = ob.state.time - self.t0
        kept = append_tick(self.writer, t, sent, ob, self._skip_cameras)
        if self.monitor is not None:
            self.monitor.update(self.cell.true_object_poses() if self.cell.perceived_objects else ob.object_poses)
        self.frame_times.append(t)
        return kept

    def poll_faults(self) -> list[str]:
        """One line per device (camera, microphone) that failed since the last poll. Each is noted in
        the episode (its stream, and from when); the take goes on recording the other streams."""
        lines = []
        for stream, device in self._devices.items():
            error = _device_error(device)
            if error and stream not in self._faulted:
                self._faulted.add(stream)
                self.note_fault(stream, error)
                lines.append(f"{stream}: {error}")
        return lines

    def note_fault(self, stream: str, text: str) -> None:
        """Note in the episode that `stream` (or "arm") failed now, with what happened."""
        self.writer.log_fault(self.clock(), stream, text)

    def log_intervention(self, intervention: Intervention) -> None:
        """Store one intervention of the operator (recorders/intervention.py) as it ends."""
        self.writer.log_intervention(intervention.to_dict())

    def finish(self, memory: Memory | None = None, failed: bool = False, marked: bool | None = None) -> TakeResult:
        """Close an open hotkey stretch, label the frames from the logged calls, decide success and
        save the episode with `memory`. `failed`: a call of the take's program failed, so it did not
        succeed whatever the objects show. `marked`: the operator's verdict, used where no task monitor
        can judge (a real take). A take without ticks is discarded (path None)."""
        if self.log.open_record is not None:
            self.log.close_call("ok")  # the stretch ended when the take did
        self._detach_devices()
        self.poll_faults()
        calls = tuple(self.log.records)
        if not self.frame_times:
            self.writer.discard()
            return TakeResult(None, 0, None, calls)
        success = False if failed else None
        if not failed and self.monitor is not None:
            success = self.monitor.success(self.cell.true_object_poses())
        elif not failed:
            success = marked
        labels = segment_calls(calls, np.asarray(self.frame_times))
        path = self.writer.finish(success, [s.to_dict() for s in labels],
                                  None if memory is None else memory.to_json())
        return TakeResult(path, self.frames, success, calls)

    def discard(self) -> None:
        """Stop and delete what was recorded."""
        self._detach_devices()
        if self.log.open_record is not None:
            self.log.close_call("aborted", "the take was discarded")
        self.writer.discard()

    def __enter__(self) -> "Take":
        return self

    def __exit__(self, *exc) -> None:
        self._detach_devices()
        self.writer.close_unfinished()  # after finish or discard: nothing left to do

    # ---- device streams (called on the devices' own threads) -----------------------------------------
    def _camera_sink(self, cam: str):
        depth_stream = f"{cam}_depth"

        def sink(t: float, rgb, depth) -> None:
            te = t - self._device_t0
            if te < 0.0:
                return  # taken before the take started
            self.writer.append(f"{cam}_rgb", te, rgb)
            if depth is not None and depth_stream in self.writer.specs:
                self.writer.append(depth_stream, te, depth)
        return sink

    def _audio_sink(self, t: float, block) -> None:
        te = t - self._device_t0
        if te >= 0.0:
            self.writer.append(AUDIO_STREAM, te, block)

    def _detach_devices(self) -> None:
        """Stop writing device frames (before the writer closes); the devices themselves keep running."""
        for stream, sink in self._sinks:
            stream.remove_sink(sink)
        self._sinks = []
        if self._audio is not None and self._audio.on_block == self._audio_sink:
            self._audio.on_block = None


def _device_error(device) -> str | None:
    """Why a device camera or microphone stopped, or None while it works."""
    if hasattr(device, "stats"):
        return device.stats().error
    error = getattr(device, "error", None)
    return None if error is None else str(error)
