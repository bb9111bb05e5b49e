"""The Record workspace: connect, watch, teleoperate, call skills, record takes.

Renders a `RecordSession` (app/record_session.py) and sends it the operator's intents; it polls
the session's snapshot and events on a timer, so nothing here waits on the arm or a camera.

    connection bar   robot, IP, connect, status            scene: task, seed, task text
    cameras          front | wrist                          skill palette (+ abort)
    state curves     TCP x y z, gripper                     teleop: speed, key help
                                                            cameras, objects and sound (record_devices.py)
                                                            recording: record/stop/discard, streams
                                                            episodes, log
                                                            objects and targets: teach by clicking (teach_box.py)
                                                            camera calibration (calibration_dialog.py)
                                                            workspace box (workspace_box_editor.py)
On a real arm a take has no task of the suite: the task text is the operator's own, and stopping a take
asks whether it succeeded.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QListWidget, QListWidgetItem,
    QMessageBox, QPushButton, QScrollArea, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from app.record_session import ROBOTS, TASK_IDS, RecordSession, SessionSnapshot
from app.domain import SPEED_LEVELS_M_S
from widgets.calibration_dialog import CalibrationBox
from widgets.live_views import LiveCameras, LiveStateCurves
from widgets.main_window import RESET_ESTOP_STYLE, RESET_KEYS
from widgets.record_devices import CaptureDevicesBox
from widgets.skill_palette import SkillPalette
from widgets.teach_box import TeachBox
from widgets.teleop_keys import TeleopKeys, device_help_text, help_label
from widgets.workspace_box_editor import WorkspaceBoxEditor

POLL_MS = 33
STATUS_COLOURS = {"live": "#2e7d32", "connecting": "#f9a825", "error": "#c62828", "disconnected": "#757575"}
EVENT_COLOURS = {"error": "#c62828", "saved": "#2e7d32", "discarded": "#8d6e63", "call": "#1565c0"}


class RecordPanel(QWidget):
    episode_saved = Signal(object)  # Path
    open_episode_requested = Signal(object)  # Path

    def __init__(self, session: RecordSession, parent=None):
        super().__init__(parent)
        self.session = session
        self._snap = SessionSnapshot()
        self._shown_tick = -1
        self._shown_instruction: str | None = None
        self._shown_setup = None

        self.cameras = LiveCameras()
        self.curves = LiveStateCurves()
        self.palette = SkillPalette()
        self.keys = TeleopKeys(self)
        self.devices = CaptureDevicesBox()
        self.devices.setup_chosen.connect(self._use_setup)
        self.devices.microphone_chosen.connect(self.session.set_microphone)
        self.devices.video_quality_chosen.connect(self.session.set_video_quality)
        self.devices.rescan_requested.connect(self.session.scan_capture_devices)
        # Setting the workcell up: each renders the snapshot and its requests' outcome lines (show_event).
        self.teach = TeachBox(session, self.cameras)
        self.calibration = CalibrationBox(session)
        self.workspace_box = WorkspaceBoxEditor(session)
        self._setup_tools = (self.teach, self.calibration, self.workspace_box)

        views = QSplitter(Qt.Orientation.Vertical)
        views.addWidget(self.cameras)
        views.addWidget(self.curves)
        views.setSizes([560, 260])
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        for box in (self._palette_box(), self._teleop_box(), self.devices, self._recording_box(), self._episodes_box(),
                    self.teach, self.calibration, self.workspace_box):  # setting up: below the everyday boxes
            side_layout.addWidget(box)
        side_layout.addStretch(1)
        body = QSplitter(Qt.Orientation.Horizontal)
        side_scroll = QScrollArea()  # fits small screens: the controls scroll, the views keep their size
        side_scroll.setWidgetResizable(True)
        side_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        side_scroll.setWidget(side)
        side_scroll.setMinimumWidth(side.sizeHint().width() + 20)
        body.addWidget(views)
        body.addWidget(side_scroll)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 2)
        body.setSizes([860, 560])

        self.estop_banner = QWidget()
        banner = QHBoxLayout(self.estop_banner)
        self._estop_text = QLabel()
        self._estop_text.setStyleSheet("color: white; font-weight: bold;")
        self.reset_estop_button = QPushButton(f"Reset e-stop  ({RESET_KEYS})")
        self.reset_estop_button.setStyleSheet(RESET_ESTOP_STYLE)
        self.reset_estop_button.setToolTip("Make sure the workspace is clear, then let the arm move again")
        self.reset_estop_button.clicked.connect(self.session.reset_estop)
        banner.addWidget(self._estop_text, 1)
        banner.addWidget(self.reset_estop_button)
        self.estop_banner.setObjectName("estopBanner")  # the red is the banner's only, not its button's
        self.estop_banner.setStyleSheet("#estopBanner { background: #c62828; border-radius: 4px; }")
        self.estop_banner.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.estop_banner.hide()

        layout = QVBoxLayout(self)
        layout.addLayout(self._connection_bar())
        layout.addWidget(self.estop_banner)
        layout.addWidget(body, 1)

        self.palette.call_requested.connect(self.session.call)
        self.palette.label_requested.connect(self._toggle_label)
        self.keys.intent_changed.connect(self.session.set_teleop)
        self.keys.speed_step.connect(lambda step: self.speed.setCurrentIndex(
            min(self.speed.count() - 1, max(0, self.speed.currentIndex() + step))))
        self.keys.label_hotkey.connect(self._on_label_hotkey)
        self._shortcut("Ctrl+R", self.toggle_recording)
        self._shortcut("Ctrl+Shift+D", self.discard)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.poll)
        self._timer.start(POLL_MS)
        self._load_episode_list()
        self.session.scan_teleop_devices()
        self.session.scan_capture_devices()
        self.devices.show_robot(self.session.robot, self.session.data_dir, None)
        self.robot.currentTextChanged.connect(lambda r: self.devices.show_robot(r, self.session.data_dir, None))

    # ---- layout ------------------------------------------------------------------------------------
    def _connection_bar(self) -> QHBoxLayout:
        self.robot = QComboBox()
        self.robot.addItems(ROBOTS)
        self.robot.setCurrentText(self.session.robot)
        self.robot.setToolTip("sim: the built-in simulated workcell; franky-sim: the same scene through the real-arm "
                              "code path; franky: a Franka arm at the IP address")
        self.robot_ip = QLineEdit()
        self.robot_ip.setPlaceholderText("arm IP, e.g. 172.16.0.2")
        self.robot_ip.setMaximumWidth(170)
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self._connect_clicked)
        self.status = QLabel("not connected")
        self.recover_button = QPushButton("Recover arm")
        self.recover_button.setToolTip("Clear the arm's error state after a reflex or a collision (asks first)")
        self.recover_button.clicked.connect(self.recover_arm)
        self.task = QComboBox()
        self.task.addItems(TASK_IDS)
        self.task.setCurrentText(self._snap.task or "stack")
        self.seed = QSpinBox()
        self.seed.setRange(0, 1_000_000)
        self.new_scene_button = QPushButton("New scene")
        self.new_scene_button.setToolTip("Lay out a fresh scene for this task and seed")
        self.new_scene_button.clicked.connect(lambda: self.session.new_scene(self.task.currentText(), self.seed.value()))
        self.instruction = QLineEdit()
        self.instruction.setPlaceholderText("task text stored with the episode")
        self.robot.currentTextChanged.connect(lambda r: self.robot_ip.setEnabled(r == "franky"))
        self.robot_ip.setEnabled(self.session.robot == "franky")
        bar = QHBoxLayout()
        for w in (QLabel("Robot"), self.robot, self.robot_ip, self.connect_button, self.status, self.recover_button):
            bar.addWidget(w)
        bar.addSpacing(18)
        self.task_label, self.seed_label = QLabel("Task"), QLabel("seed")
        for w in (self.task_label, self.task, self.seed_label, self.seed, self.new_scene_button):
            bar.addWidget(w)
        bar.addWidget(self.instruction, 1)
        return bar

    def _palette_box(self) -> QGroupBox:
        box = QGroupBox("Skill palette: robot-API calls (logged)")
        layout = QVBoxLayout(box)
        layout.addWidget(self.palette)
        row = QHBoxLayout()
        self.running = QLabel("idle")
        self.abort_button = QPushButton("Abort call")
        self.abort_button.setToolTip("Stop the running call (logged as aborted); the arm holds")
        self.abort_button.clicked.connect(self.session.abort_call)
        row.addWidget(self.running, 1)
        row.addWidget(self.abort_button)
        layout.addLayout(row)
        return box

    def _teleop_box(self) -> QGroupBox:
        box = QGroupBox("Teleop: keys move the arm unless a text field has the focus")
        layout = QFormLayout(box)
        self.speed = QComboBox()
        self.speed.addItems([f"{s * 100:g} cm/s" for s in SPEED_LEVELS_M_S])
        self.speed.setCurrentIndex(self._snap.speed_level)
        self.speed.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.speed.currentIndexChanged.connect(self.session.set_speed_level)
        self.open_label = QLabel("no labelled stretch open")
        self.device = QComboBox()
        self.device.addItem("keyboard only", None)
        self.device.setToolTip(device_help_text())
        self.device.activated.connect(lambda i: self.session.use_teleop_device(self.device.itemData(i)))
        self.device_note = QLabel("")
        self.device_note.setStyleSheet("color: #777; font-size: 11px;")
        rescan = QPushButton("Rescan")
        rescan.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        rescan.setToolTip("Look again for gamepads and SpaceMice")
        rescan.clicked.connect(self.session.scan_teleop_devices)
        devices = QHBoxLayout()
        devices.addWidget(self.device, 1)
        devices.addWidget(rescan)
        layout.addRow("Speed", self.speed)
        layout.addRow("Device", devices)
        layout.addRow("", self.device_note)
        layout.addRow("Label", self.open_label)
        layout.addRow(help_label())
        return box

    def _recording_box(self) -> QGroupBox:
        box = QGroupBox("Recording")
        layout = QVBoxLayout(box)
        row = QHBoxLayout()
        self.record_button = QPushButton("● Record  (Ctrl+R)")
        self.record_button.setStyleSheet("QPushButton { color: #c62828; font-weight: bold; }")
        self.record_button.clicked.connect(self.toggle_recording)
        self.discard_button = QPushButton("Discard")
        self.discard_button.setToolTip("Throw the current take away (Ctrl+Shift+D)")
        self.discard_button.clicked.connect(self.discard)
        self.elapsed = QLabel("")
        for w in (self.record_button, self.discard_button, self.elapsed):
            row.addWidget(w)
        layout.addLayout(row)
        self.streams = QTableWidget(0, 3)
        self.streams.setHorizontalHeaderLabels(["stream", "fps", "dropped"])
        self.streams.verticalHeader().hide()
        self.streams.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.streams.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.streams.verticalHeader().setDefaultSectionSize(17)
        self.streams.setMinimumHeight(17 * 9 + 26)  # every stream of a two-camera take, no scrolling
        self.streams.setStyleSheet("font-size: 11px;")
        layout.addWidget(self.streams)
        return box

    def _episodes_box(self) -> QGroupBox:
        box = QGroupBox("Episodes (double-click to annotate)")
        layout = QVBoxLayout(box)
        self.episodes = QListWidget()
        self.episodes.setMaximumHeight(90)
        self.episodes.itemDoubleClicked.connect(lambda item: self.open_episode_requested.emit(
            Path(item.data(Qt.ItemDataRole.UserRole))))
        self.log = QListWidget()
        self.log.setMaximumHeight(90)
        self.log.setToolTip("What the session did: connections, calls and their outcome, saved takes")
        layout.addWidget(self.episodes)
        layout.addWidget(QLabel("Log"))
        layout.addWidget(self.log)
        return box

    def _shortcut(self, keys: str, slot) -> None:
        s = QShortcut(QKeySequence(keys), self)
        s.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        s.activated.connect(slot)

    # ---- intents -----------------------------------------------------------------------------------
    def _connect_clicked(self) -> None:
        robot = self.robot.currentText()
        if self._snap.connection == "live" and robot == self._snap.robot:
            self.session.disconnect()
            return
        ip = self.robot_ip.text().strip() or None
        if robot == "franky" and not ip:
            self.show_error("Enter the arm's IP address (its FCI interface) to connect to a Franka arm.")
            return
        self.session.connect_robot(robot, ip)

    def toggle_recording(self) -> None:
        if self._snap.recording is None:
            self.session.start_recording(self.instruction.text())
        elif self._snap.simulated:
            self.session.stop_recording()  # the task monitor judges the take
        else:
            verdict = self.ask_success()
            if verdict != "cancel":
                self.session.stop_recording(success=verdict)

    def ask_success(self):
        """A real take is judged by the operator: True, False, None (not sure) or "cancel" (keep
        recording). Replaced in tests."""
        box = QMessageBox(self)
        box.setWindowTitle("Stop and save")
        box.setText("Did the take succeed?")
        yes = box.addButton("Succeeded", QMessageBox.ButtonRole.YesRole)
        no = box.addButton("Failed", QMessageBox.ButtonRole.NoRole)
        unsure = box.addButton("Not sure", QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(yes)
        box.exec()
        return {yes: True, no: False, unsure: None}.get(box.clickedButton(), "cancel")

    def _use_setup(self, setup) -> None:
        """New cameras or object source: the session reconnects with them."""
        self.session.set_setup(setup)
        if self._snap.connection in ("live", "error"):
            self.session.connect_robot(self._snap.robot, self.robot_ip.text().strip() or None)

    def discard(self) -> None:
        if self._snap.recording is not None and self.confirm_discard():
            self.session.discard_recording()

    def recover_arm(self) -> None:
        if self.confirm_recover():
            self.session.recover_arm()

    def confirm_recover(self) -> bool:
        """franky errors are cleared only after the operator confirms (DESIGN.md section 8)."""
        return QMessageBox.question(
            self, "Recover the arm", "Clear the arm's errors and let it accept commands again?\n\n"
            "Check first that nothing is in the arm's way.") == QMessageBox.StandardButton.Yes

    def confirm_discard(self) -> bool:
        """Ask before throwing a take away (replaced in tests)."""
        return QMessageBox.question(self, "Discard take", "Discard the take being recorded?") \
            == QMessageBox.StandardButton.Yes

    def show_error(self, text: str) -> None:
        QMessageBox.warning(self, "Record", text)

    def _on_label_hotkey(self, key: str) -> None:
        if self._snap.open_call is not None:
            self.session.close_labelled_call("ok")
        else:
            self.palette.request_label(key)

    def _toggle_label(self, call) -> None:
        self.session.open_labelled_call(call)

    # ---- rendering ---------------------------------------------------------------------------------
    def poll(self) -> None:
        snap = self.session.snapshot()
        previous, self._snap = self._snap, snap
        if snap.tick != self._shown_tick:
            self._shown_tick = snap.tick
            if self.isVisible():
                self.cameras.show_images(snap.images)
                self.curves.show_samples(snap.samples)
            self._show_recording(snap)
        if snap != previous:
            self._show_state(snap)
        for event in self.session.drain_events():
            self._log(event)
            for tool in self._setup_tools:
                tool.show_event(event)

    def _show_state(self, s: SessionSnapshot) -> None:
        colour = STATUS_COLOURS.get(s.connection, "#757575")
        late = f" <span style='color:#c62828'>({s.late_ticks} late tick{'s' if s.late_ticks > 1 else ''})</span>" if s.late_ticks else ""
        stopped = " <b style='color:#c62828'>E-STOP latched</b>" if s.estop_reason is not None else ""
        self.status.setText(f"<span style='color:{colour}'>●</span> {s.message}{stopped}{late}")
        self.status.setToolTip("Late ticks: control ticks that started more than a period late "
                               "(the computer could not keep the simulation in real time)")
        self.connect_button.setText("Disconnect" if s.connection == "live" and self.robot.currentText() == s.robot
                                    else "Connect")
        self.connect_button.setEnabled(s.connection != "connecting" and s.recording is None)
        self.recover_button.setVisible(s.connection == "live" and s.robot in ("franky", "franky-sim"))
        self.palette.set_scene(list(s.objects), list(s.zones), list(s.memory_keys))
        self.palette.setEnabled(s.connection == "live" and s.running_call is None and s.estop_reason is None)
        self.running.setText(f"running: <b>{s.running_call}</b>" if s.running_call else "idle")
        self.abort_button.setEnabled(s.running_call is not None)
        self.open_label.setText(f"<b>{s.open_call}</b> (press its key again to close)" if s.open_call
                                else "no labelled stretch open")
        self.estop_banner.setVisible(s.estop_reason is not None)
        self._estop_text.setText(f"E-STOP latched: {s.estop_reason}. The arm refuses every command until the "
                                 "e-stop is reset." if s.estop_reason is not None else "")
        if s.instruction != self._shown_instruction:  # a new scene's text, or the one a take started with
            self._shown_instruction = s.instruction
            self.instruction.setText(s.instruction)
        recording = s.recording is not None
        self.record_button.setText("■ Stop and save  (Ctrl+R)" if recording else "● Record  (Ctrl+R)")
        self.record_button.setEnabled(s.connection == "live")
        self.discard_button.setEnabled(recording)
        for w in (self.task, self.seed, self.new_scene_button, self.robot, self.robot_ip, self.instruction):
            w.setEnabled(not recording and (w is not self.robot_ip or self.robot.currentText() == "franky"))
        self._show_devices(s)
        for tool in self._setup_tools:
            tool.show_snapshot(s)  # the teach box draws the marks on the cameras too
        self.devices.show_devices(s.realsense, s.microphones, s.capture_note)
        self.devices.show_cameras(s.cameras)
        self.devices.setEnabled(not recording)
        if s.setup is not None and s.setup != self._shown_setup:  # a new connection's set-up
            self._shown_setup = s.setup
            self.devices.show_robot(s.robot, self.session.data_dir, s.setup)
        for w in (self.task_label, self.task, self.seed_label, self.seed, self.new_scene_button):
            w.setVisible(s.simulated)  # a real arm has no task of the suite to lay out
        self.instruction.setPlaceholderText("task text stored with the episode" if s.simulated else
                                            "what this take shows, in your words (e.g. wipe the table)")
        if self.speed.currentIndex() != s.speed_level:
            self.speed.blockSignals(True)
            self.speed.setCurrentIndex(s.speed_level)
            self.speed.blockSignals(False)

    def _show_devices(self, s: SessionSnapshot) -> None:
        self.device_note.setText(s.teleop_devices_note)
        listed = [self.device.itemData(i) for i in range(1, self.device.count())]
        if listed != list(s.teleop_devices):
            current = self.device.currentData()
            self.device.clear()
            self.device.addItem("keyboard only", None)
            for info in s.teleop_devices:
                self.device.addItem(f"{info.name} ({info.kind})", info)
            index = self.device.findData(current) if current is not None else 0
            self.device.setCurrentIndex(max(0, index))

    def _show_recording(self, s: SessionSnapshot) -> None:
        rec = s.recording
        if rec is None:
            self.elapsed.setText("")
            return
        self.elapsed.setText(f"<span style='color:#c62828'>●</span> {rec.path.name}  {rec.elapsed_s:5.1f} s, "
                             f"{rec.calls} calls")
        if self.streams.rowCount() != len(rec.streams):
            self.streams.setRowCount(len(rec.streams))
        for row, st in enumerate(rec.streams):
            for col, text in enumerate((st.name, f"{st.fps:.1f}", str(st.dropped))):
                item = self.streams.item(row, col)
                if item is None:
                    item = QTableWidgetItem()
                    self.streams.setItem(row, col, item)
                item.setText(text)
                if col == 2:
                    item.setForeground(Qt.GlobalColor.red if st.dropped else Qt.GlobalColor.black)

    def _log(self, event) -> None:
        item = QListWidgetItem(event.text)
        if event.kind in EVENT_COLOURS:
            item.setForeground(_colour(EVENT_COLOURS[event.kind]))
        self.log.addItem(item)
        self.log.scrollToBottom()
        if event.kind == "saved" and event.path is not None:
            self._add_episode(Path(event.path), event.text.removeprefix("saved ").partition(": ")[2])
            self.episode_saved.emit(Path(event.path))

    # ---- episode list ------------------------------------------------------------------------------
    def _load_episode_list(self) -> None:
        """Names only: the Annotate browser reads the files; start-up does not read them twice."""
        folder = self.session.out_dir
        for path in sorted(folder.glob("*.h5")) if folder.is_dir() else []:
            self._add_episode(path)

    def _add_episode(self, path: Path, summary: str = "") -> None:
        item = QListWidgetItem(f"{path.name}   {summary}".rstrip())
        item.setData(Qt.ItemDataRole.UserRole, str(path))
        self.episodes.addItem(item)
        self.episodes.scrollToBottom()

    def episode_paths(self) -> list[Path]:
        return [Path(self.episodes.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.episodes.count())]

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override: keys go to teleop, not the task text
        super().showEvent(event)
        self.cameras.setFocus()

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt override: no key stays held in a hidden tab
        self.keys.release_all()
        super().hideEvent(event)


def _colour(hex_colour: str):
    from PySide6.QtGui import QBrush, QColor

    return QBrush(QColor(hex_colour))
