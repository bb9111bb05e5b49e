"""The Run workspace's set-up form: which planner and policy (each with what it was trained on), which
workcell, which scene and instruction, which mode. It only collects choices; the panel
(widgets/run_panel.py) starts the run with `choices()`.

    runs folder -> app/run_models.py list_models() -> planner / policy lists (+ Browse... a folder)
    task + seed -> the suite instruction, pre-filled and editable (any other text goes to a learned planner)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QFileDialog, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSizePolicy, QSpinBox, QWidget,
)

from app.run_models import ModelChoice, ModelChoiceError, list_models, model_choice
from app.run_program import MODES
from app.run_session import ROBOT_KINDS, TASK_IDS, suite_instruction

ROLE_TITLES = {"planner": "Planner", "policy": "Policy"}
ROBOT_HELP = ("sim: the built-in simulated workcell; franky-sim: the same scene through the real-arm code path; "
              "franky: a Franka arm at the IP address")


@dataclass(frozen=True)
class RunChoices:
    planner: str
    policy: str
    robot: str
    robot_ip: str | None
    task: str
    seed: int
    instruction: str
    mode: str


class RunSetup(QWidget):
    error = Signal(str)  # a browsed folder that holds no model of its role

    def __init__(self, runs_dir: Path, robot: str = "sim", parent=None):
        super().__init__(parent)
        self.runs_dir = Path(runs_dir)
        self.model_lists: dict[str, QComboBox] = {}
        self.trained_on: dict[str, QLabel] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        for row, role in enumerate(("planner", "policy")):
            combo = QComboBox()
            combo.setMinimumWidth(220)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.currentIndexChanged.connect(lambda _i, r=role: self._show_trained_on(r))
            browse = QPushButton("Browse…")
            browse.setToolTip(f"Choose a {role} run folder or checkpoint folder elsewhere")
            browse.clicked.connect(lambda _=False, r=role: self.browse(r))
            label = QLabel()
            label.setStyleSheet("color: #555;")
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # never widens the window
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.model_lists[role], self.trained_on[role] = combo, label
            grid.addWidget(QLabel(ROLE_TITLES[role]), row, 0)
            grid.addWidget(combo, row, 1)
            grid.addWidget(browse, row, 2)
            grid.addWidget(label, row, 3, 1, 3)
        self.robot = QComboBox()
        self.robot.addItems(ROBOT_KINDS)
        self.robot.setCurrentText(robot)
        self.robot.setToolTip(ROBOT_HELP)
        self.robot_ip = QLineEdit()
        self.robot_ip.setPlaceholderText("arm IP, e.g. 172.16.0.2")
        self.robot_ip.setMaximumWidth(170)
        self.robot.currentTextChanged.connect(self._robot_changed)
        self.task = QComboBox()
        self.task.addItems(TASK_IDS)
        self.task.setCurrentText("swap")
        self.task.setToolTip("The scene's layout (and, for the oracle program, the task it runs)")
        self.seed = QSpinBox()
        self.seed.setRange(0, 1_000_000)
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.mode.setToolTip("auto: calls run as the planner writes them; step: each call waits for Approve / "
                             "Edit / Skip")
        scene = QHBoxLayout()
        self._scene_widgets = (QLabel("  Scene"), self.task, QLabel("seed"), self.seed)  # a real arm has none
        for w in (QLabel("Workcell"), self.robot, self.robot_ip, *self._scene_widgets, QLabel("  Mode"), self.mode):
            scene.addWidget(w)
        scene.addStretch(1)
        grid.addLayout(scene, 2, 0, 1, 6)
        self.instruction = QLineEdit()
        self.instruction.setPlaceholderText("what the robot should do; a learned planner takes any text")
        self.instruction.setToolTip("The suite instruction of the scene; type any other text for a learned planner")
        grid.addWidget(QLabel("Instruction"), 3, 0)
        grid.addWidget(self.instruction, 3, 1, 1, 5)
        grid.setColumnStretch(3, 1)
        self.task.currentTextChanged.connect(self._fill_instruction)
        self.seed.valueChanged.connect(self._fill_instruction)
        self._filled = ""
        self._robot_changed(robot)
        self.rescan()
        self._fill_instruction()

    # ---- lists -------------------------------------------------------------------------------------
    def rescan(self) -> None:
        """List the runs folder again, keeping each role's choice where it still exists."""
        found = list_models(self.runs_dir)
        for role, combo in self.model_lists.items():
            keep = combo.currentData()
            extra = [combo.itemData(i) for i in range(combo.count())
                     if combo.itemData(i) is not None and combo.itemData(i).key not in {c.key for c in found[role]}]
            combo.blockSignals(True)
            combo.clear()
            for choice in (*found[role], *extra):
                self._add(combo, choice)
            index = next((i for i in range(combo.count()) if keep and combo.itemData(i).key == keep.key), 0)
            combo.setCurrentIndex(index)
            combo.blockSignals(False)
            self._show_trained_on(role)

    def browse(self, role: str, folder: str | None = None) -> bool:
        """Add a run or checkpoint folder of `role` (asks for one unless given) and choose it."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, f"Choose a {role} run or checkpoint", str(self.runs_dir))
            if not folder:
                return False
        try:
            choice = model_choice(folder, role)
        except ModelChoiceError as e:
            self.error.emit(str(e))
            return False
        combo = self.model_lists[role]
        index = next((i for i in range(combo.count()) if combo.itemData(i).key == choice.key), None)
        if index is None:
            self._add(combo, choice)
            index = combo.count() - 1
        combo.setCurrentIndex(index)
        return True

    def choose(self, role: str, key: str) -> None:
        """Select the entry of `key` (ORACLE / SCRIPTED or a path) in `role`'s list."""
        combo = self.model_lists[role]
        index = next((i for i in range(combo.count()) if combo.itemData(i).key == str(key)), None)
        if index is None:
            raise KeyError(f"no {role} {key} in the list")
        combo.setCurrentIndex(index)

    def choice(self, role: str) -> ModelChoice:
        return self.model_lists[role].currentData()

    def names(self, role: str) -> list[str]:
        combo = self.model_lists[role]
        return [combo.itemText(i) for i in range(combo.count())]

    # ---- the run's choices -------------------------------------------------------------------------
    def choices(self) -> RunChoices:
        ip = self.robot_ip.text().strip() or None
        return RunChoices(self.choice("planner").key, self.choice("policy").key, self.robot.currentText(), ip,
                          self.task.currentText(), self.seed.value(), " ".join(self.instruction.text().split()),
                          self.mode.currentText())

    def set_running(self, running: bool) -> None:
        """While a run goes on, only the mode may change (through the panel); the rest is locked."""
        for w in (*self.model_lists.values(), self.robot, self.robot_ip, self.task, self.seed, self.instruction):
            w.setEnabled(not running and (w is not self.robot_ip or self.robot.currentText() == "franky"))

    # ---- helpers -----------------------------------------------------------------------------------
    @staticmethod
    def _add(combo: QComboBox, choice: ModelChoice) -> None:
        combo.addItem(choice.name, choice)
        combo.setItemData(combo.count() - 1, f"{choice.key}\n{choice.trained_on}", Qt.ItemDataRole.ToolTipRole)

    def _show_trained_on(self, role: str) -> None:
        choice = self.choice(role)
        text = "" if choice is None else (choice.trained_on if choice.built_in else f"trained on {choice.trained_on}")
        self.trained_on[role].setText(text)
        self.trained_on[role].setToolTip(text if choice is None or choice.built_in else f"{choice.key}\n{text}")

    def _robot_changed(self, robot: str) -> None:
        """A real arm runs in the scene it was taught: no suite layout to choose, the instruction is typed."""
        real = robot == "franky"
        self.robot_ip.setEnabled(real)
        for w in self._scene_widgets:
            w.setVisible(not real)
        if real and self.instruction.text() == self._filled:
            self.instruction.clear()
        self.instruction.setPlaceholderText("what the arm should do, for a learned planner, with the objects taught "
                                            "in Record" if real else
                                            "what the robot should do; a learned planner takes any text")

    def _fill_instruction(self) -> None:
        """The scene's suite instruction, unless the operator typed text of their own."""
        text = suite_instruction(self.task.currentText(), self.seed.value())
        if self.instruction.text() in ("", self._filled):
            self.instruction.setText(text)
        self._filled = text
