"""The Record session's requests that set a workcell up: teach objects and targets, calibrate a camera,
set the workspace box. A mixin of app/record_session.py's RecordSession: the requests go to its worker
(`_submit`), which owns the workcell, and the work itself is app/workcell_tools.py's.

    teach / forget            -> WorkcellTools.teach / forget       -> snapshot taught, marks; a log line
    start_calibration         -> (simulated: reconnect with the boards' scene) -> WorkcellTools.start_calibration
    calibration_step          -> the arm to the next pose (paced and published like any call), capture
    finish_calibration        -> solve, save, use; (simulated: back to the task's scene)
    set_workspace             -> the safety layer's box, saved with the calibration
"""
from __future__ import annotations

from recorders.cell.registry import workcell_kind


class WorkcellSetupRequests:
    """Needs the session's `_submit`, `_event`, `_update`, `_connect`, `_observe_tick`, `_record_tick`,
    `_abort`, `_cell`, `_rec`, `_robot`, `_robot_ip`, `_inst`, `_tools`, `_integrator` and `_scene_override`."""

    # ---- requests (any thread; never block) ----------------------------------------------------------
    def teach(self, camera: str, u: float, v: float, name: str, kind: str = "object") -> None:
        """Teach the object (or target) at pixel (u, v) of `camera` under `name`."""
        self._submit(lambda: self._taught(self._tools.teach(self._require_cell(), camera, u, v, name, kind)))

    def forget(self, name: str) -> None:
        self._submit(lambda: self._taught(self._tools.forget(self._require_cell(), name)))

    def start_calibration(self, camera: str, poses: int = 12) -> None:
        """Plan the calibration of `camera` (a simulated workcell shows its boards for it)."""
        self._submit(lambda: self._start_calibration(camera, poses))

    def calibration_step(self) -> None:
        """Move to the next planned pose and capture the board."""
        self._submit(self._calibration_step)

    def finish_calibration(self) -> None:
        """Solve, save with the workcell, and use the new camera pose."""
        self._submit(self._finish_calibration)

    def cancel_calibration(self) -> None:
        self._submit(self._end_calibration)

    def set_workspace(self, lower, upper) -> None:
        """The safety layer's box for this workcell (saved with its calibration)."""
        self._submit(lambda: self._set_workspace(lower, upper))

    # ---- worker --------------------------------------------------------------------------------------
    def _require_cell(self):
        if self._cell is None:
            raise RuntimeError("connect to a workcell first")
        return self._cell

    def _taught(self, message: str) -> None:
        """The robot API's names changed: the palette's choosers, hotkey labels and the list follow."""
        cell = self._cell
        self._update(objects=tuple(cell.spec.object_names), zones=tuple(cell.spec.zone_names),
                     taught=self._tools.taught_names(cell))
        self._event("info", message)

    def _calibration_step(self) -> None:
        try:
            self._calibration_update(self._tools.calibration_step())
        finally:
            self._integrator.resync()  # teleop goes on from where the calibration left the arm

    def _start_calibration(self, camera: str, poses: int) -> None:
        if self._rec is not None:
            raise RuntimeError("stop the recording before calibrating")
        if workcell_kind(self._robot).simulated and self._scene_override is None:
            from recorders.perception.calibration_procedure import calibration_scene

            self._scene_override = calibration_scene()  # the boards at a resolution that resolves their markers
            self._connect(self._robot, self._robot_ip)  # the scene with the boards
        hooks = {"before_tick": self._observe_tick, "on_tick": self._record_tick, "should_abort": self._abort.is_set}
        self._calibration_update(self._tools.start_calibration(self._require_cell(), camera, poses, hooks))
        self._integrator.resync()

    def _calibration_update(self, status) -> None:
        self._update(calibration=status)
        self._event("info", status.message)

    def _finish_calibration(self) -> None:
        status = self._tools.finish_calibration(self._require_cell())
        self._calibration_update(status)
        if self._scene_override is not None:
            self._end_calibration(keep_status=True)

    def _end_calibration(self, keep_status: bool = False) -> None:
        self._tools.cancel_calibration()
        if not keep_status:
            self._update(calibration=None)
        if self._scene_override is not None:
            self._scene_override = None
            self._connect(self._robot, self._robot_ip)  # back to the task's scene

    def _set_workspace(self, lower, upper) -> None:
        cell = self._require_cell()
        self._event("info", self._tools.set_workspace(cell, lower, upper))
        lim = cell.arm.limits
        self._update(workspace=(tuple(lim.workspace_min), tuple(lim.workspace_max)))
