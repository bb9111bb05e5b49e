"""Guided hand-eye calibration in the Record workspace: the "Camera calibration" box (each camera's
calibrated state, "Calibrate...") and the non-modal dialog that walks through one calibration.

    Start      -> session.start_calibration(camera, poses)  (a simulated workcell shows its boards)
    Next pose  -> session.calibration_step(): the arm to the next planned pose, capture the board
    Run all    -> the next step is sent when the previous step's status arrives (never blocking), until
                  every pose is done, an error line arrives, or Run all is pressed again
    Solve      -> session.finish_calibration(): solve, save with the workcell, use the new camera pose
    Cancel     -> session.cancel_calibration()
    snapshot.calibration (CalibrationStatus) -> progress "pose i/N, K captures", the last capture with
                  the detected board drawn, the residual in mm and degrees and where it was saved
    snapshot.cameras -> each camera's calibrated state

On a real arm (snapshot.simulated False) the dialog first says where the board goes and where to put
the arm: the planned poses turn about where the arm stands when Start is pressed. The widgets hold no
domain data: they render the snapshot and the session's events and send the session requests.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox, QDialog, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSpinBox, QVBoxLayout,
)

from widgets.live_views import CAMERA_TITLES

DEFAULT_POSES = 12
POSES_RANGE = (4, 40)
OK_COLOUR, MISSING_COLOUR = "#2e7d32", "#c62828"
NOTE_STYLE = "color: #555;"
ERROR_STYLE = "color: #c62828;"
REAL_ARM_STEPS = {
    "wrist": "Put the ChArUco board flat on the table. Move the arm (teleop, or by hand in guiding mode) so that "
             "the wrist camera looks down at the whole board from about 30 cm, then press Start.",
    "front": "Fix the ChArUco board to the hand, facing the front camera. Move the arm so that the front camera "
             "sees the whole board, close to the middle of its image, then press Start.",
}
SIM_NOTE = ("The simulated workcell shows its calibration boards while calibrating (the board on the table for the "
            "wrist camera, the board on the hand for the front camera); the task's scene returns after Solve or "
            "Cancel.")


class CalibrationDialog(QDialog):
    """One camera's calibration, step by step; non-modal (the live views and the e-stop stay usable)."""

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Camera calibration (hand-eye, ChArUco board)")
        self.setModal(False)
        self.session = session
        self._status = None
        self._cameras: tuple[str, ...] = ()
        self._calibrated: dict[str, bool] = {}
        self._waiting = False  # a request was sent: the next status (or error line) answers it
        self._live = False
        self._recording = False
        self._simulated = True

        self.instructions = QLabel()
        self.instructions.setWordWrap(True)
        self.instructions.setStyleSheet("background: #fff8e1; border: 1px solid #ffcc80; padding: 6px;")
        self.camera = QComboBox()
        self.camera.currentIndexChanged.connect(self._show_choice)
        self.poses = QSpinBox()
        self.poses.setRange(*POSES_RANGE)
        self.poses.setValue(DEFAULT_POSES)
        self.poses.setToolTip("How many arm poses to capture the board from (more: a steadier result, slower)")
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Plan the poses around where the arm stands now")
        self.start_button.clicked.connect(self.start)
        self.camera_state = QLabel()
        top = QHBoxLayout()
        for w in (QLabel("Camera"), self.camera, QLabel("Poses"), self.poses, self.start_button):
            top.addWidget(w)
        top.addWidget(self.camera_state, 1)

        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground("#202020")
        self.view.setMinimumSize(480, 300)
        self._box = self.view.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self._box.addItem(self.image)
        self._image_size: tuple[int, int] | None = None
        self.placeholder = pg.TextItem("the last capture, with the board found in it, shows here",
                                       color="#aaaaaa", anchor=(0.5, 0.5))
        self._box.addItem(self.placeholder)
        self._box.setRange(xRange=(-1, 1), yRange=(-1, 1))

        self.progress = QProgressBar()
        self.progress.setFormat("pose %v/%m")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.captures = QLabel("")
        self.message = QLabel("Choose the camera and press Start.")
        self.message.setWordWrap(True)
        self.message.setStyleSheet(NOTE_STYLE)
        progress = QHBoxLayout()
        progress.addWidget(self.progress, 1)
        progress.addWidget(self.captures)

        self.next_button = QPushButton("Next pose")
        self.next_button.setToolTip("Move the arm to the next planned pose and capture the board")
        self.next_button.clicked.connect(self.step)
        self.run_all_button = QPushButton("Run all")
        self.run_all_button.setCheckable(True)
        self.run_all_button.setToolTip("Visit every remaining pose, one after the other (press again to stop)")
        self.run_all_button.toggled.connect(self._run_all_toggled)
        self.solve_button = QPushButton("Solve")
        self.solve_button.setToolTip("Solve the camera pose from the captures, save it with the workcell and use it")
        self.solve_button.clicked.connect(self.solve)
        self.cancel_button = QPushButton("Cancel calibration")
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close")
        close.setToolTip("Hide this window (a calibration going on continues)")
        close.clicked.connect(self.hide)
        buttons = QHBoxLayout()
        for w in (self.next_button, self.run_all_button, self.solve_button, self.cancel_button):
            buttons.addWidget(w)
        buttons.addStretch(1)
        buttons.addWidget(close)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.addWidget(self.instructions)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addLayout(progress)
        layout.addWidget(self.message)
        layout.addWidget(self.result)
        layout.addLayout(buttons)
        self.resize(760, 660)
        self._enable()

    # ---- intents -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._send(lambda: self.session.start_calibration(self.camera.currentData(), self.poses.value()),
                   f"planning {self.poses.value()} poses for the {self.camera.currentText()} ...")

    def step(self) -> None:
        st = self._status
        self._send(self.session.calibration_step, f"moving to pose {st.pose + 1}/{st.poses} ..." if st else "")

    def solve(self) -> None:
        self.run_all_button.setChecked(False)
        self._send(self.session.finish_calibration, "solving ...")

    def cancel(self) -> None:
        self.run_all_button.setChecked(False)
        self._send(self.session.cancel_calibration, "cancelling ...")

    def _send(self, request, note: str) -> None:
        self._waiting = True
        self._note(note)
        request()
        self._enable()

    def _run_all_toggled(self, on: bool) -> None:
        if on and not self._waiting and self._active():
            self.step()
        self._enable()

    # ---- rendering ---------------------------------------------------------------------------------
    def show_snapshot(self, s) -> None:
        cameras = tuple(c.name for c in s.cameras) or tuple(CAMERA_TITLES)
        calibrated = {c.name: c.calibrated for c in s.cameras}
        live, recording = s.connection == "live", s.recording is not None
        shown = (self._cameras, self._calibrated, self._simulated, self._live, self._recording)
        if (cameras, calibrated, s.simulated, live, recording) != shown:
            self._simulated, self._live, self._recording = s.simulated, live, recording
            self._calibrated = calibrated
            if cameras != self._cameras:
                self._cameras = cameras
                current = self.camera.currentData()
                self.camera.blockSignals(True)
                self.camera.clear()
                for cam in cameras:
                    self.camera.addItem(CAMERA_TITLES.get(cam, cam), cam)
                self.camera.setCurrentIndex(max(0, self.camera.findData(current)))
                self.camera.blockSignals(False)
            self._show_choice()
        if s.calibration is not self._status:
            self._status = s.calibration
            self._waiting = False
            self._show_status(s.calibration)
            if self.run_all_button.isChecked():
                if self._active():
                    self.step()
                else:
                    self.run_all_button.setChecked(False)
        self._enable()

    def show_event(self, event) -> None:
        """An error line while a request is out: that request failed (Run all stops)."""
        if self._waiting and event.kind == "error":
            self._waiting = False
            self.run_all_button.setChecked(False)
            self._note(event.text, error=True)
            self._enable()

    def _show_choice(self) -> None:
        cam = self.camera.currentData()
        if cam is None:
            return
        done = self._calibrated.get(cam, False)
        colour = OK_COLOUR if done else MISSING_COLOUR
        self.camera_state.setText(f"<span style='color:{colour}'>● {self.camera.currentText()}: "
                                  f"{'calibrated' if done else 'not calibrated'}</span>")
        if self._simulated:
            self.instructions.setText(SIM_NOTE)
        else:
            self.instructions.setText(f"<b>Before Start</b>: {REAL_ARM_STEPS.get(cam, REAL_ARM_STEPS['front'])}")

    def _show_status(self, st) -> None:
        if st is None:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.captures.setText("")
            self._note("Choose the camera and press Start.")
            return
        self.progress.setRange(0, max(1, st.poses))
        self.progress.setValue(st.pose)
        self.captures.setText(f"pose {st.pose}/{st.poses}, {st.captures} capture{'s' if st.captures != 1 else ''}")
        self._note(st.message if st.residual_mm is None else
                   "Solved and in use. Start again to calibrate another camera, or Close.")
        if st.image is not None:
            self._show_image(st.image)
        if st.residual_mm is not None:
            saved = f"<br>saved in {st.saved}" if st.saved else "<br>(not saved: this workcell has no folder)"
            self.result.setText(f"<b>{CAMERA_TITLES.get(st.camera, st.camera)} calibrated: residual "
                                f"{st.residual_mm:.1f} mm, {st.residual_deg:.2f} deg</b> from {st.captures} "
                                f"captures{saved}")
        else:
            self.result.setText("")

    def _show_image(self, rgb: np.ndarray) -> None:
        size = (rgb.shape[1], rgb.shape[0])
        if size != self._image_size:
            self._image_size = size
            self._box.setRange(xRange=(0, size[0]), yRange=(0, size[1]), padding=0)
            self.placeholder.hide()
        self.image.setImage(rgb, autoLevels=False, levels=(0, 255))

    def _note(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet(ERROR_STYLE if error else NOTE_STYLE)
        self.message.setText(text)

    def _active(self) -> bool:
        """A calibration is going on with poses left to visit."""
        st = self._status
        return st is not None and st.residual_mm is None and st.pose < st.poses

    def _enable(self) -> None:
        st = self._status
        going = st is not None and st.residual_mm is None
        run_all = self.run_all_button.isChecked()
        idle = not self._waiting and not run_all
        self.start_button.setEnabled(self._live and not self._recording and not going and not self._waiting)
        self.camera.setEnabled(not going)
        self.poses.setEnabled(not going)
        self.next_button.setEnabled(idle and self._active())
        self.run_all_button.setEnabled(run_all or (idle and self._active()))
        self.solve_button.setEnabled(idle and going and st.captures > 0)
        self.cancel_button.setEnabled(going)


class CalibrationBox(QGroupBox):
    """Each camera's calibrated state and the button that opens the calibration dialog."""

    def __init__(self, session, parent=None):
        super().__init__("Camera calibration", parent)
        self.session = session
        self.dialog: CalibrationDialog | None = None
        self._snap = None
        self._shown: tuple | None = None
        self.state = QLabel("not connected")
        self.state.setWordWrap(True)
        self.calibrate_button = QPushButton("Calibrate...")
        self.calibrate_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.calibrate_button.setToolTip("Hand-eye calibration of a camera with the ChArUco board: the arm visits "
                                         "a few poses, the board is found in each image, the camera pose is solved")
        self.calibrate_button.clicked.connect(self.open_dialog)
        row = QHBoxLayout(self)
        row.addWidget(self.state, 1)
        row.addWidget(self.calibrate_button)

    def open_dialog(self) -> CalibrationDialog:
        if self.dialog is None:
            self.dialog = CalibrationDialog(self.session, self)
            if self._snap is not None:
                self.dialog.show_snapshot(self._snap)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def show_snapshot(self, s) -> None:
        self._snap = s
        shown = (s.connection, tuple((c.name, c.calibrated) for c in s.cameras))
        if shown != self._shown:
            self._shown = shown
            if s.connection != "live" or not s.cameras:
                self.state.setText("connect to a workcell with cameras to calibrate them")
            else:
                self.state.setText(" &nbsp; ".join(
                    f"<span style='color:{OK_COLOUR if c.calibrated else MISSING_COLOUR}'>●</span> {c.name}: "
                    f"{'calibrated' if c.calibrated else 'not calibrated'}" for c in s.cameras))
        self.calibrate_button.setEnabled(s.connection == "live" or s.calibration is not None)
        if self.dialog is not None:
            self.dialog.show_snapshot(s)

    def show_event(self, event) -> None:
        if self.dialog is not None:
            self.dialog.show_event(event)
