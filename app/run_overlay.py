"""What a run shows over its cameras and of its policy, built on the run's worker at every tick:
the memory's key poses and the predicted end-effector path projected onto each camera image
(`CameraOverlay`), and the learned policy's chunk, termination head and timing (`PolicyTrace`).

    ActiveRun tick --Observation (images, ee_pose), Memory, chunk path--> CameraOverlay.marks()
        --camera -> CameraMarks (pixels)--> RunSnapshot.marks
    PolicyController hooks --on_chunk / on_step / ChunkStats--> PolicyTrace.view() --> RunSnapshot.policy_view

Cameras are placed at each frame from their mount and the frame's TCP pose, the convention the
episode files store (recorders/cell/camera_geometry.py), so a wrist camera's markers follow the hand.
"""
from __future__ import annotations

from collections import deque
from types import MappingProxyType
from typing import Mapping

import numpy as np

from app.run_program import CameraMarks, PolicyView
from recorders.cell.camera_geometry import camera_pose_at, project
from recorders.cell.workcell import Workcell
from recorders.memory import Memory
from recorders.observation import Observation

DONE_TRACE_TICKS = 600  # P(finished) kept for the plot: a minute at 10 Hz


class CameraOverlay:
    """Projects a run's memory and predicted path onto the cameras of one workcell."""

    def __init__(self, cell: Workcell):
        self._cameras = {cam: (cell.camera_mount(cam), cell.camera_intrinsics(cam)) for cam in cell.cameras}

    def marks(self, ob: Observation, memory: Memory, path_xyz: np.ndarray | None) -> Mapping[str, CameraMarks]:
        """Per camera observed in `ob`: the remembered key poses on its image and the path's pixels."""
        keys = list(memory.poses)
        points = np.array([memory.poses[k].pose.xyz for k in keys], float).reshape(-1, 3)
        out = {}
        for cam in ob.images:
            if cam not in self._cameras:
                continue
            mount, intrinsics = self._cameras[cam]
            pose = camera_pose_at(mount, ob.state.ee_pose)
            uv, visible = project(points, pose, intrinsics)
            memory_marks = tuple((k, float(u), float(v)) for k, (u, v), ok in zip(keys, uv, visible) if ok)
            path = None
            if path_xyz is not None and len(path_xyz):
                path_uv, on_image = project(path_xyz, pose, intrinsics)
                path_uv[~on_image] = np.nan
                path = path_uv
            out[cam] = CameraMarks(memory_marks, path)
        return MappingProxyType(out)


class PolicyTrace:
    """A learned policy's state for the Run workspace, accumulated over the run's motion calls."""

    def __init__(self, threshold: float, action_horizon: int):
        self.threshold, self.horizon = threshold, action_horizon
        self.call: str | None = None
        self._chunk: np.ndarray | None = None  # (Tp, 8) the chunk executing
        self._stop = 0  # one past its last step to run
        self._step = 0  # its step about to run
        self._trace: deque[tuple[float, float]] = deque(maxlen=DONE_TRACE_TICKS)

    def begin_call(self, code: str | None) -> None:
        """A motion call starts (its code), or the policy rests between calls (None)."""
        self.call = code
        if code is None:
            self._chunk = None

    def on_chunk(self, action: np.ndarray, start: int) -> None:
        self._chunk, self._step = action, start
        self._stop = min(start + self.horizon, len(action))

    def on_step(self, p_finished: float, step: int, t: float) -> None:
        self._step = step
        self._trace.append((float(t), float(p_finished)))

    def path_xyz(self) -> np.ndarray | None:
        """The TCP positions of the chunk's steps still to run (None between calls)."""
        if self._chunk is None:
            return None
        return np.asarray(self._chunk[self._step:self._stop, :3], float)

    def view(self, stats) -> PolicyView:
        """The published view, with the controller's ChunkStats."""
        ms = stats.inference_ms
        return PolicyView(tuple(self._trace), self.threshold, self.call, len(ms),
                          ms[-1] if ms else None, float(np.mean(ms)) if ms else None, max(ms) if ms else None,
                          stats.stalls, stats.stall_ms)
