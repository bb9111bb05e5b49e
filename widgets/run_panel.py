"""The Run workspace: run a planner and a policy on the workcell and watch over them.

Renders a `RunSession` (app/run_session.py) and sends it the operator's intents; it polls the
session's snapshot and events on a timer, so nothing here waits on the arm, a camera or a model.

    set-up: planner, policy (what each was trained on), workcell, scene, instruction, mode   [Run] [Stop]
    operator bar: state · Pause/Resume · Abort call · Take over · re-instruct
    cameras with memory markers and the predicted path  | program (running call, alternatives, step box)
    policy: P(finished) over time, latency, stalls      | memory: key poses, call history
                                                        | take-over: hand back, skill palette · log

Keys (inside this workspace; the teleop keys drive the arm only while taken over):
Ctrl+Return start a run (or approve the waiting call), Ctrl+E edit the waiting call, Ctrl+K skip it,
Ctrl+P pause / resume, Ctrl+B abort the running call, Ctrl+T take over, Ctrl+H hand back (run the call
again), Ctrl+D hand back (the call is done), Ctrl+I re-instruct, Ctrl+Shift+S stop the run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton, QSplitter,
    QVBoxLayout, QWidget,
)

from app.run_program import ACTIVE_STATES, RunEvent, RunSnapshot
from app.domain import SPEED_LEVELS_M_S
from app.run_session import RunSession
from widgets.run_cameras import RunCameras
from widgets.run_memory_view import MemoryTable
from widgets.run_policy_view import PolicyPanel
from widgets.run_program_view import ProgramView
from widgets.run_setup import RunSetup
from widgets.skill_palette import SkillPalette
from widgets.teleop_keys import TeleopKeys, help_label

POLL_MS = 33
EVENT_COLOURS = {"error": "#c62828", "refused": "#c62828", "saved": "#2e7d32", "call": "#1565c0"}
STATE_TEXT = {"idle": "no run yet", "running": "running", "waiting_approval": "waiting for your approval",
              "paused": "paused", "taken_over": "TAKEN OVER: you drive (teleop keys or the skill palette)",
              "finished": "finished", "failed": "ended"}
STATE_STYLE = {"waiting_approval": "background: #fff3c4;", "paused": "background: #e0e0e0;",
               "taken_over": "background: #ffe0b2; font-weight: bold;", "failed": "color: #c62828;",
               "finished": "color: #2e7d32;"}


class RunPanel(QWidget):
    episode_saved = Signal(object)  # Path
    open_episode_requested = Signal(object)  # Path

    def __init__(self, session: RunSession, runs_dir: Path,
                 before_run: Callable[[str], str | None] = lambda robot: None,
                 teleop_devices: Callable[[], tuple] = tuple, parent=None):
        """`before_run(robot)`: called as a run starts (the window frees the workcell from the Record
        workspace), returns a note for the log or None; `teleop_devices()`: gamepads / SpaceMice to
        drive with while taken over."""
        super().__init__(parent)
        self.session = session
        self._before_run, self._teleop_devices = before_run, teleop_devices
        self._snap = RunSnapshot()
        self._shown_state = ""

        self.setup = RunSetup(runs_dir, session.robot)
        self.cameras = RunCameras()
        self.policy_view = PolicyPanel()
        self.program = ProgramView()
        self.memory = MemoryTable()
        self.palette = SkillPalette(label_hotkeys=False)
        self.keys = TeleopKeys(self)

        views = QSplitter(Qt.Orientation.Vertical)
        views.addWidget(self.cameras)
        views.addWidget(self.policy_view)
        views.setSizes([520, 240])
        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(self._program_box())
        side.addWidget(self._takeover_box())  # shown only while taken over
        side.addWidget(self.memory)
        side.addWidget(self._log_box())
        side.setSizes([330, 330, 220, 140])
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(views)
        body.addWidget(side)
        body.setSizes([760, 640])

        layout = QVBoxLayout(self)
        layout.addLayout(self._setup_row())
        layout.addLayout(self._operator_bar())
        layout.addWidget(body, 1)

        self.setup.error.connect(lambda text: self._log(RunEvent("error", text)))
        self.setup.mode.currentTextChanged.connect(self._mode_changed)
        self.palette.call_requested.connect(self.session.call)
        self.keys.intent_changed.connect(self.session.set_teleop)
        self.keys.speed_step.connect(lambda step: self.speed.setCurrentIndex(
            min(self.speed.count() - 1, max(0, self.speed.currentIndex() + step))))
        for keys, slot in (("Ctrl+Return", self.primary_action), ("Ctrl+Enter", self.primary_action),
                           ("Ctrl+E", self.focus_edit), ("Ctrl+K", self.session.skip),
                           ("Ctrl+P", self.toggle_pause), ("Ctrl+B", self.session.abort_call),
                           ("Ctrl+T", self.take_over), ("Ctrl+H", lambda: self.hand_back(False)),
                           ("Ctrl+D", lambda: self.hand_back(True)), ("Ctrl+I", self.reinstruct_field_focus),
                           ("Ctrl+Shift+S", self.session.stop)):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.poll)
        self._timer.start(POLL_MS)
        self._render(self._snap)

    # ---- layout ------------------------------------------------------------------------------------
    def _setup_row(self) -> QHBoxLayout:
        self.run_button = QPushButton("▶ Run  (Ctrl+Return)")
        self.run_button.setStyleSheet("QPushButton { font-weight: bold; padding: 6px 14px; }")
        self.run_button.setToolTip("Start the planner and the policy on the workcell")
        self.run_button.clicked.connect(self.start_run)
        self.stop_button = QPushButton("■ Stop run")
        self.stop_button.setToolTip("End the run now and save it (Ctrl+Shift+S); the e-stop is the red button above")
        self.stop_button.clicked.connect(self.session.stop)
        buttons = QVBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.setup, 1)
        row.addLayout(buttons)
        return row

    def _operator_bar(self) -> QHBoxLayout:
        self.state_label = QLabel()
        self.state_label.setMinimumWidth(300)
        self.state_label.setStyleSheet("padding: 3px 8px;")
        self.pause_button = QPushButton("Pause  (Ctrl+P)")
        self.pause_button.setToolTip("Hold the run once the running call ends; resume goes on")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.abort_button = QPushButton("Abort call  (Ctrl+B)")
        self.abort_button.setToolTip("Stop the running call now (logged as aborted); the run pauses and resume "
                                     "runs it again")
        self.abort_button.clicked.connect(self.session.abort_call)
        self.takeover_button = QPushButton("Take over  (Ctrl+T)")
        self.takeover_button.setToolTip("Drive the arm yourself (teleop keys, gamepad, SpaceMouse or the skill "
                                        "palette); the policy stops until you hand back")
        self.takeover_button.clicked.connect(self.take_over)
        self.reinstruct_text = QLineEdit()
        self.reinstruct_text.setPlaceholderText("new instruction (learned planner): goes on from the memory")
        self.reinstruct_text.returnPressed.connect(self.reinstruct)
        self.reinstruct_button = QPushButton("Re-instruct")
        self.reinstruct_button.setToolTip("The planner goes on from the current memory and calls with this text "
                                          "(Ctrl+I to type)")
        self.reinstruct_button.clicked.connect(self.reinstruct)
        bar = QHBoxLayout()
        for w in (self.state_label, self.pause_button, self.abort_button, self.takeover_button):
            bar.addWidget(w)
        bar.addSpacing(16)
        bar.addWidget(self.reinstruct_text, 1)
        bar.addWidget(self.reinstruct_button)
        return bar

    def _program_box(self) -> QGroupBox:
        box = QGroupBox("Program")
        layout = QVBoxLayout(box)
        layout.addWidget(self.program, 1)
        self.step_box = QWidget()
        row = QHBoxLayout(self.step_box)
        row.setContentsMargins(0, 0, 0, 0)
        self.approve_button = QPushButton("Approve  (Ctrl+Return)")
        self.approve_button.setStyleSheet("QPushButton { font-weight: bold; }")
        self.approve_button.clicked.connect(self.session.approve)
        self.edit_text = QLineEdit()
        self.edit_text.setPlaceholderText("edit the call, e.g. place(\"red cube\", \"blue zone\")")
        self.edit_text.setToolTip("Checked against the robot API and the scene before it runs (Ctrl+E)")
        self.edit_text.returnPressed.connect(self.submit_edit)
        self.edit_button = QPushButton("Run edit")
        self.edit_button.clicked.connect(self.submit_edit)
        self.skip_button = QPushButton("Skip  (Ctrl+K)")
        self.skip_button.clicked.connect(self.session.skip)
        for w in (self.approve_button, self.edit_text, self.edit_button, self.skip_button):
            row.addWidget(w, 1 if w is self.edit_text else 0)
        self.refusal = QLabel()
        self.refusal.setStyleSheet("color: #c62828;")
        self.refusal.setWordWrap(True)
        layout.addWidget(self.step_box)
        layout.addWidget(self.refusal)
        return box

    def _takeover_box(self) -> QGroupBox:
        self.takeover_box = box = QGroupBox("Taken over: drive with the teleop keys, a gamepad or SpaceMouse, or "
                                            "call skills; then hand back")
        layout = QVBoxLayout(box)
        row = QHBoxLayout()
        self.handback_reason = QLineEdit()
        self.handback_reason.setPlaceholderText("what you corrected (stored with the intervention)")
        self.handback_again = QPushButton("Hand back: run the call again  (Ctrl+H)")
        self.handback_again.clicked.connect(lambda: self.hand_back(False))
        self.handback_done = QPushButton("Hand back: call done  (Ctrl+D)")
        self.handback_done.clicked.connect(lambda: self.hand_back(True))
        self.speed = QComboBox()
        self.speed.addItems([f"{v * 100:g} cm/s" for v in SPEED_LEVELS_M_S])
        self.speed.setCurrentIndex(self.session.snapshot().speed_level)
        self.speed.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with teleop
        self.speed.setToolTip("Teleop speed (+ / - change it)")
        self.speed.currentIndexChanged.connect(self.session.set_speed_level)
        row.addWidget(self.handback_reason, 1)
        row.addWidget(QLabel("speed"))
        row.addWidget(self.speed)
        layout.addLayout(row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.handback_again)
        buttons.addWidget(self.handback_done)
        layout.addLayout(buttons)
        layout.addWidget(self.palette)
        keys = QLabel("<i>teleop keys: hover here</i>")
        keys.setToolTip(help_label().text())
        layout.addWidget(keys)
        box.hide()
        return box

    def _log_box(self) -> QGroupBox:
        box = QGroupBox("Log")
        layout = QVBoxLayout(box)
        self.log = QListWidget()
        self.log.setToolTip("What the run did: calls and their outcome, refusals, the saved episode")
        self.open_button = QPushButton("Open the run in Annotate")
        self.open_button.clicked.connect(self.open_in_annotate)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.open_button)
        return box

    # ---- intents -----------------------------------------------------------------------------------
    def start_run(self) -> bool:
        """Start a run with the set-up's choices; False (with the reason in the log) when it cannot."""
        if self._snap.state in ACTIVE_STATES:
            self._log(RunEvent("error", "a run is going on: stop it first"))
            return False
        c = self.setup.choices()
        if not c.instruction:
            self._log(RunEvent("error", "type an instruction first"))
            return False
        if c.robot == "franky" and not c.robot_ip:
            self._log(RunEvent("error", "enter the arm's IP address (its FCI interface) to run on a Franka arm"))
            return False
        note = self._before_run(c.robot)
        if note:
            self._log(RunEvent("info", note))
        self.session.use_teleop_devices(self._teleop_devices())
        self.session.start(c.task, c.seed, instruction=c.instruction, planner=c.planner, policy=c.policy,
                           mode=c.mode, robot=c.robot, robot_ip=c.robot_ip)
        self._log(RunEvent("info", f"starting: {c.instruction}  ({self.setup.choice('planner').name} + "
                                   f"{self.setup.choice('policy').name} on {c.robot})"))
        return True

    def primary_action(self) -> None:
        """Ctrl+Return: approve the waiting call, else start a run when none goes on."""
        if self._snap.state == "waiting_approval":
            self.session.approve()
        elif self._snap.state not in ACTIVE_STATES:
            self.start_run()

    def focus_edit(self) -> None:
        if self._snap.proposed:
            self.edit_text.setText(self._snap.proposed)
        self.edit_text.setFocus()
        self.edit_text.selectAll()

    def submit_edit(self) -> None:
        code = self.edit_text.text().strip()
        if code:
            self.session.edit(code)

    def toggle_pause(self) -> None:
        if self._snap.state == "paused":
            self.session.resume()
        elif self._snap.state in ACTIVE_STATES:
            self.session.pause()

    def take_over(self) -> None:
        self.session.use_teleop_devices(self._teleop_devices())
        self.session.take_over()

    def hand_back(self, done: bool) -> None:
        self.session.hand_back(done, self.handback_reason.text())
        self.handback_reason.clear()
        self.keys.release_all()

    def reinstruct_field_focus(self) -> None:
        self.reinstruct_text.setFocus()

    def reinstruct(self) -> None:
        text = " ".join(self.reinstruct_text.text().split())
        if text:
            self.session.reinstruct(text)
            self.reinstruct_text.clear()

    def open_in_annotate(self) -> None:
        if self._snap.episode is not None:
            self.open_episode_requested.emit(Path(self._snap.episode))

    def _mode_changed(self, mode: str) -> None:
        if self._snap.state in ACTIVE_STATES:
            self.session.set_mode(mode)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Coming to the workspace lists the runs folder again (Train may have finished a run)."""
        super().showEvent(event)
        if self._snap.state not in ACTIVE_STATES:
            self.setup.rescan()

    # ---- rendering ---------------------------------------------------------------------------------
    def poll(self) -> None:
        for event in self.session.drain_events():
            self._log(event)
            if event.kind == "saved" and event.path is not None:
                self.episode_saved.emit(event.path)
        snap = self.session.snapshot()
        if snap is not self._snap:
            self._render(snap)

    def _render(self, s: RunSnapshot) -> None:
        self._snap = s
        self.program.show_program(s)
        self.memory.show_memory(s.memory)
        self.cameras.show_images(s.images, s.marks)
        self.policy_view.show_policy(s.policy_view)
        self.policy_view.plot.setVisible(s.policy_view is not None)
        active = s.state in ACTIVE_STATES
        self.state_label.setText(self._state_text(s))
        self.state_label.setStyleSheet("padding: 3px 8px; " + STATE_STYLE.get(s.state, ""))
        if s.state != self._shown_state:
            self._state_changed(s)
        self.refusal.setText(s.error if s.state == "waiting_approval" and s.error else "")
        self.open_button.setEnabled(s.episode is not None and not active)

    def _state_changed(self, s: RunSnapshot) -> None:
        self._shown_state = s.state
        active = s.state in ACTIVE_STATES
        taken = s.state == "taken_over"
        self.setup.set_running(active)
        self.run_button.setEnabled(not active)
        self.stop_button.setEnabled(active)
        self.pause_button.setEnabled(active and not taken)
        self.pause_button.setText("Resume  (Ctrl+P)" if s.state == "paused" else "Pause  (Ctrl+P)")
        self.abort_button.setEnabled(s.state == "running")
        self.takeover_button.setEnabled(active and not taken)
        learned = s.planner != "oracle"
        self.reinstruct_text.setEnabled(active and learned)
        self.reinstruct_button.setEnabled(active and learned)
        self.step_box.setEnabled(s.state == "waiting_approval")
        if s.state == "waiting_approval" and s.proposed and not self.edit_text.hasFocus():
            self.edit_text.setText(s.proposed)
        self.takeover_box.setVisible(taken)
        if taken:
            self.palette.set_scene(list(s.objects), list(s.zones), list(s.memory.poses))
        else:
            self.keys.release_all()

    @staticmethod
    def _state_text(s: RunSnapshot) -> str:
        text = STATE_TEXT.get(s.state, s.state)
        running = s.running_call
        if s.state == "running" and running is not None:
            text = f"running {running.code}  {running.elapsed(s.clock):.1f} s"
        elif s.state == "finished":
            text = "finished: saved" if s.episode else "finished"
        elif s.state == "failed":
            text = f"ended: {s.error}" if s.error else "ended"
        if s.late_ticks:
            text += f"   ·   {s.late_ticks} late tick" + ("s" if s.late_ticks > 1 else "")
        return f"{text}   ·   {s.mode} mode" if s.state in ACTIVE_STATES else text

    def _log(self, event: RunEvent) -> None:
        item = QListWidgetItem(event.text)
        item.setToolTip(event.text)
        if event.kind in EVENT_COLOURS:
            item.setForeground(QColor(EVENT_COLOURS[event.kind]))
        self.log.addItem(item)
        while self.log.count() > 500:
            self.log.takeItem(0)
        self.log.scrollToBottom()

    # ---- for tests and the window ------------------------------------------------------------------
    def log_texts(self) -> list[str]:
        return [self.log.item(i).text() for i in range(self.log.count())]

    @property
    def snapshot(self) -> RunSnapshot:
        return self._snap

    def shutdown(self) -> None:
        self._timer.stop()
        self.keys.release_all()
