"""Evaluation of a trained policy or planner from the Train workspace: `main.py eval --policy ...
--json` (a planner: `--planner ... --policy oracle`) as a subprocess, its result as a table
(success per task with 95% intervals, then per call type).

The panel hands it a target (a run folder, whose newest model is evaluated, or one checkpoint);
the result is kept beside the run (app/eval_results.save_eval) and shown again when the run is
selected later.
"""
from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout)

from app.eval_results import eval_summary, eval_table, latest_eval, parse_eval_output, save_eval
from app.train_launch import command_env, eval_argv, is_planner_run, parse_tasks
from app.train_runs import RunError
from widgets.command_process import INFO_STYLE, CommandProcess, show_status

COLUMNS = ("task / call", "success", "rate", "95% interval")


class EvaluationWidget(QGroupBox):
    evaluation_finished = Signal(object)  # the result dict, or None when it failed
    command_started = Signal(str)  # the command line, for the log

    def __init__(self, parent=None):
        super().__init__("Evaluation", parent)
        self.run: Path | None = None
        self.policy: Path | None = None
        self.planner = False  # the target is a planner run (evaluated with the oracle skills)
        self.result: dict | None = None
        self._evaluated: tuple[Path | None, Path | None] = (None, None)
        self._cancelled = False
        self.process = CommandProcess(self)
        self.process.extra_env = command_env()
        self.process.finished.connect(self._on_finished)
        self.process.progress_text.connect(lambda text: self.status.setText(text))

        self.tasks = QLineEdit("stack,pick_place")
        self.tasks.setToolTip("Comma-separated tasks of the suite (python main.py tasks lists them)")
        self.episodes = QSpinBox()
        self.episodes.setRange(1, 10_000)
        self.episodes.setValue(10)
        self.episodes.setToolTip("Episodes per task (seeds seed .. seed + episodes - 1)")
        self.seed = QSpinBox()
        self.seed.setRange(0, 1_000_000)
        self.seed.setToolTip("Seed of the first episode; the same seeds give the same scenes")
        self.max_call_s = QDoubleSpinBox()
        self.max_call_s.setRange(1.0, 600.0)
        self.max_call_s.setValue(30.0)
        self.max_call_s.setSuffix(" s")
        self.max_call_s.setToolTip("Workcell time the policy gets for each call before it counts as failed")
        self.target = QLabel("select a run with a checkpoint")
        self.target.setWordWrap(True)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip("Run the tasks with the oracle planner and this policy doing each call")
        self.evaluate_button.clicked.connect(self.evaluate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setStyleSheet(INFO_STYLE)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)

        form = QFormLayout()
        form.addRow("tasks", self.tasks)
        numbers = QHBoxLayout()
        for label, box in (("episodes", self.episodes), ("seed", self.seed), ("per call", self.max_call_s)):
            numbers.addWidget(QLabel(label))
            numbers.addWidget(box, 1)
        form.addRow(numbers)
        buttons = QHBoxLayout()
        buttons.addWidget(self.target, 1)
        buttons.addWidget(self.evaluate_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        self._update_buttons()

    # ---- public API --------------------------------------------------------------------------
    def set_target(self, run: Path | None, policy: Path | None) -> None:
        """Evaluate `policy` (a run folder or a checkpoint folder) of `run`; None: nothing to evaluate."""
        changed_run = run != self.run
        self.run, self.policy = run, policy
        self.planner = run is not None and is_planner_run(run)
        self.evaluate_button.setToolTip("Run the tasks with this planner writing the calls and the scripted skills "
                                        "doing them" if self.planner else
                                        "Run the tasks with the oracle planner and this policy doing each call")
        if policy is None:
            self.target.setText("select a run with a checkpoint" if run is None else f"{run.name}: no checkpoint yet")
        elif policy == run:
            self.target.setText(f"{run.name}: its newest {'planner' if self.planner else 'policy'}")
        else:
            self.target.setText(f"{run.name} / {policy.name}")
        if changed_run and not self.process.is_running():
            saved = latest_eval(run) if run is not None else None
            self.show_result(saved)
            if saved is not None:
                self._info(f"last evaluation of {run.name} ({eval_summary(saved)})")
        self._update_buttons()

    def evaluate(self) -> bool:
        if self.process.is_running():
            return False
        if self.policy is None:
            self._error("no policy to evaluate: select a run that has a checkpoint")
            return False
        try:
            argv = eval_argv(self.policy, parse_tasks(self.tasks.text()), self.episodes.value(), self.seed.value(),
                             self.max_call_s.value(), planner=self.planner)
        except RunError as e:
            self._error(str(e))
            return False
        self._evaluated, self._cancelled = (self.run, self.policy), False
        self.process.start(argv)
        self.command_started.emit(shlex.join([Path(sys.executable).name, "main.py", *argv]))
        self._info(f"evaluating {self.target.text()} …")
        self._update_buttons()
        return True

    def cancel(self) -> None:
        if self.process.interrupt():
            self._cancelled = True
            self._info("cancelling the evaluation…")

    def is_running(self) -> bool:
        return self.process.is_running()

    def shutdown(self) -> None:
        self.process.shutdown(wait_ms=3000)

    def show_result(self, result: dict | None) -> None:
        self.result = result
        rows = eval_table(result) if result else []
        self.table.setRowCount(len(rows))
        bold = QFont()
        bold.setBold(True)
        for r, row in enumerate(rows):
            values = (f"  {row.name}()" if row.is_call else row.name, f"{row.successes}/{row.episodes}",
                      f"{100 * row.rate:.0f}%", row.interval_text)
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                if not row.is_call and c == 0:
                    item.setFont(bold)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                item.setToolTip("success of the task's episodes" if not row.is_call
                                else f"{row.name} calls that ended ok, over all episodes")
                self.table.setItem(r, c, item)

    # ---- process -----------------------------------------------------------------------------
    def _on_finished(self, code: int, error: str) -> None:
        run, policy = self._evaluated
        result = None
        if code == 0:
            try:
                result = parse_eval_output(self.process.stdout)
            except RunError as e:
                error = str(e)
        if result is None:
            self._error("evaluation cancelled" if self._cancelled else f"evaluation failed: {error}")
        else:
            self.show_result(result)
            try:
                save_eval(run, result)
                kept = ""
            except OSError as e:
                kept = f" (not saved: {e.strerror})"
            self._info(f"{eval_summary(result)}; finished {time.strftime('%H:%M:%S')}{kept}")
        self._update_buttons()
        self.evaluation_finished.emit(result)

    def _update_buttons(self) -> None:
        running = self.process.is_running()
        self.evaluate_button.setEnabled(not running and self.policy is not None)
        self.cancel_button.setEnabled(running)

    def _error(self, text: str) -> None:
        show_status(self.status, text, error=True)

    def _info(self, text: str) -> None:
        show_status(self.status, text)
