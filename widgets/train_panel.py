"""The Train workspace: choose episodes and settings, train the diffusion policy or the planner in a subprocess,
watch it (progress, ETA, loss curves, checkpoints), stop / resume it, and evaluate it.

    episodes (filter, ticks)      progress bar, step / loss / ETA     runs of the runs folder
    model and training settings   loss and learning-rate curves        checkpoints of the selected run
    Train  Stop  Resume           output of the commands               evaluation and its table

Training is `python main.py train policy|planner ...` (app/train_launch.py builds the command) in a
`CommandProcess`; Stop sends SIGINT, which makes the trainer write a checkpoint and exit. Progress
comes from the run's metrics.jsonl, read incrementally on a 2 Hz timer, never from parsing the
progress bar. The panel keeps only what it last read of each run's log.
"""
from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFont, QKeySequence
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QScrollArea,
                               QSizePolicy, QSplitter, QVBoxLayout, QWidget)

from app.train_launch import command_env, resume_argv, train_argv
from app.train_runs import (METRICS_FILE, MetricsReader, RunError, RunProgress, format_duration, holds_run,
                            list_checkpoints)
from widgets.command_process import INFO_STYLE, CommandProcess, show_status
from widgets.episode_chooser import EpisodeChooserWidget
from widgets.evaluation_box import EvaluationWidget
from widgets.loss_plot import LossPlotWidget
from widgets.run_browser import RunBrowserWidget
from widgets.train_settings_form import TrainSettingsForm

POLL_MS = 500


class TrainPanel(QWidget):
    training_finished = Signal(int)  # exit code of the training command

    def __init__(self, data_dir: Path | None = None, runs_dir: Path | None = None, parent=None):
        super().__init__(parent)
        self.active_run: Path | None = None  # the run the training process writes
        self.shown_run: Path | None = None  # the run whose curves and checkpoints are shown
        self._readers: dict[Path, tuple[MetricsReader, RunProgress]] = {}
        self._stop_requested = False
        self._eta = (None, 0.0)  # (eta_s of the newest step line, when it was read)

        self.process = CommandProcess(self)
        self.process.extra_env = command_env()
        self.process.line_received.connect(self._log)
        self.process.progress_text.connect(self._show_progress_line)
        self.process.finished.connect(self._on_training_finished)
        self.chooser = EpisodeChooserWidget()
        self.chooser.error_reported.connect(self.show_error)
        self.form = TrainSettingsForm()
        self.plot = LossPlotWidget()
        self.runs_view = RunBrowserWidget(Path(runs_dir) if runs_dir else Path(data_dir or ".") / "runs")
        self.runs_view.run_selected.connect(self.show_run)
        self.runs_view.checkpoint_selected.connect(lambda _path: self._update_eval_target())
        self.runs_view.runs_dir_changed.connect(lambda _folder: self.refresh_runs())
        self.runs_view.refresh_requested.connect(self.refresh_runs)
        self.evaluation = EvaluationWidget()
        self.evaluation.command_started.connect(lambda line: self._log(f"$ {line}"))
        # its stderr (warnings, errors) goes to the log; the JSON result line becomes the table
        self.evaluation.process.line_received.connect(lambda line: line.startswith("{") or self._log(line))

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        episodes = QGroupBox("Episodes")
        QVBoxLayout(episodes).addWidget(self.chooser)
        left_layout.addWidget(episodes, 1)
        left_layout.addWidget(self.form)
        left_layout.addLayout(self._launch_row())
        left_scroll = QScrollArea()  # small screens: the settings scroll, the curves keep their room
        left_scroll.setWidgetResizable(True)
        left_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        left_scroll.setWidget(left)
        left_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left_scroll.setMinimumWidth(left.sizeHint().width() + 16)  # never clipped sideways; the curves give way

        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m steps")
        self.progress_label = QLabel()
        self.progress_label.setWordWrap(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setFont(QFont("monospace", 8))
        self.log.setPlaceholderText("output of the training and evaluation commands")
        self.bar_text = QLabel()
        self.bar_text.setStyleSheet(INFO_STYLE)
        # the command's progress line can be long (a tqdm bar): clipped, never widening the window
        self.bar_text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        log_box = QWidget()
        log_layout = QVBoxLayout(log_box)
        log_layout.setContentsMargins(0, 0, 0, 0)
        log_layout.addWidget(self.log, 1)
        log_layout.addWidget(self.bar_text)
        centre_split = QSplitter(Qt.Orientation.Vertical)
        centre_split.addWidget(self.plot)
        centre_split.addWidget(log_box)
        centre_split.setSizes([560, 200])
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.progress, self.progress_label, self.message):
            centre_layout.addWidget(widget)
        centre_layout.addWidget(centre_split, 1)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.runs_view)
        right.addWidget(self.evaluation)
        right.setSizes([440, 340])
        body = QSplitter(Qt.Orientation.Horizontal)
        for widget in (left_scroll, centre, right):
            body.addWidget(widget)
        body.setStretchFactor(1, 1)
        body.setSizes([400, 620, 380])
        QVBoxLayout(self).addWidget(body)

        self.train_action = QAction("Train", self)
        self.train_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.train_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.train_action.triggered.connect(self.start_training)
        self.addAction(self.train_action)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.poll)
        self._timer.start(POLL_MS)
        if data_dir is not None:
            self.chooser.set_folder(data_dir)
        self.refresh_runs()

    def _launch_row(self) -> QHBoxLayout:
        self.train_button = QPushButton("Train  (Ctrl+Enter)")
        self.train_button.setToolTip("Start a new run on the ticked episodes with these settings")
        self.train_button.clicked.connect(self.start_training)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current step; a checkpoint is written, Resume continues it")
        self.stop_button.clicked.connect(self.stop_training)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the selected stopped run from its newest checkpoint")
        self.resume_button.clicked.connect(self.resume_selected)
        row = QHBoxLayout()
        row.addWidget(self.train_button, 2)
        row.addWidget(self.stop_button, 1)
        row.addWidget(self.resume_button, 1)
        return row

    @property
    def runs_dir(self) -> Path:
        return self.runs_view.runs_dir

    def set_command_env(self, env: dict[str, str]) -> None:
        """Environment variables for the training and evaluation commands (e.g. OMP_NUM_THREADS)."""
        self.process.extra_env = dict(env)
        self.evaluation.process.extra_env = dict(env)

    # ---- training ----------------------------------------------------------------------------
    def is_training(self) -> bool:
        return self.process.is_running()

    def start_training(self) -> bool:
        """Launch a new run; False (and one line saying why) when it cannot start."""
        if self.is_training():
            return False
        if self.chooser.dataset is None:
            self.show_error("no data folder: open a folder of recorded episodes")
            return False
        try:
            settings = self.form.settings([e.path for e in self.chooser.selected()], self.runs_dir,
                                          self.chooser.task_filter(), self.chooser.edited_only.isChecked())
        except ValueError as e:
            self.show_error(str(e))
            return False
        out = Path(settings.out)
        if holds_run(out):
            self.show_error(f"{out.name} already holds a run: select it and Resume, or choose another run name")
            return False
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self.show_error(f"cannot create the runs folder {self.runs_dir}: {e.strerror}")
            return False
        self._launch(out, train_argv(settings), f"training {out.name} on {len(settings.data)} episodes")
        return True

    def resume_selected(self) -> bool:
        run = self.shown_run
        if self.is_training() or run is None:
            return False
        try:
            argv = resume_argv(run)
        except RunError as e:
            self.show_error(str(e))
            return False
        self._launch(run, argv, f"resuming {run.name}")
        return True

    def stop_training(self) -> None:
        if self.process.interrupt():
            self._stop_requested = True
            self.stop_button.setText("Stopping…")
            self.show_info("stopping after the current step; a checkpoint is being written")
        self._update_buttons()

    def shutdown(self) -> None:
        """Window closing: stop training cleanly (SIGINT, so it checkpoints), end an evaluation."""
        self._timer.stop()
        self.process.shutdown(wait_ms=10000)
        self.evaluation.shutdown()

    def _launch(self, run: Path, argv: list[str], what: str) -> None:
        self._stop_requested = False
        self._eta = (None, 0.0)
        self.active_run = run
        self._readers.pop(run, None)  # read its log from the start
        self.bar_text.clear()
        self.process.start(argv)
        self._log(f"$ {shlex.join([Path(sys.executable).name, 'main.py', *argv])}")
        self.show_info(what)
        self.refresh_runs(select=run)

    def _on_training_finished(self, code: int, error: str) -> None:
        run, self.active_run = self.active_run, None
        self.poll_run(run)
        ends = [line for line in self.process.stdout.splitlines() if line.startswith(("trained ", "stopped at"))]
        if code == 0:
            self.show_info(ends[-1] if ends else "training ended")
        elif self._stop_requested:
            self.show_info("stopped before the first step: nothing was trained")
        else:
            self.show_error(f"training failed (exit {code}): {error}")
        self._stop_requested = False
        self.bar_text.clear()  # the bar's final state is the last line of the log
        self.stop_button.setText("Stop")
        self.refresh_runs()
        self.progress_label.setText(self._progress_text(run, finished=True))
        self.training_finished.emit(code)

    # ---- reading runs ------------------------------------------------------------------------
    def poll(self) -> None:
        """Timer: fold in new metrics of the training run and of the run shown."""
        for run in dict.fromkeys((self.active_run, self.shown_run)):
            self.poll_run(run)

    def poll_run(self, run: Path | None) -> None:
        if run is None:
            return
        reader, progress = self._readers.setdefault(run, (MetricsReader(run / METRICS_FILE), RunProgress()))
        changed = progress.add(reader.read_new())
        if run == self.active_run and changed:
            if progress.latest:
                self._eta = (progress.latest.get("eta_s"), time.monotonic())
            self.runs_view.show_running(run, progress)
        if run == (self.active_run or self.shown_run):  # the bar follows training, else the run shown
            total = max(1, progress.total or 0)
            self.progress.setRange(0, total)
            self.progress.setValue(min(progress.step, total))
            self.progress_label.setText(self._progress_text(run, finished=run != self.active_run))
        if run == self.shown_run:
            if changed:
                self.plot.set_steps(progress.steps)
            found = list_checkpoints(run, progress=progress)
            if self.runs_view.show_checkpoints(run, found):
                self.plot.set_checkpoints([c.step for c in found if not c.final and c.step is not None])
                self._update_eval_target()

    def _progress_text(self, run: Path, finished: bool = False) -> str:
        progress = self._readers.get(run, (None, RunProgress()))[1]
        latest, total = progress.latest, progress.total
        if not progress.events:
            return "starting (loading episodes, building the model)…" if not finished else f"{run.name}: nothing logged"
        parts = [f"{run.name}: step {progress.step}" + (f" / {total}" if total else "")]
        if latest:
            nan = float("nan")
            parts += [f"loss {latest.get('loss', nan):.4f}", f"lr {latest.get('lr', nan):.1e}",
                      f"{latest.get('samples_per_s', nan):.0f} samples/s",
                      f"elapsed {format_duration(latest.get('elapsed_s'))}"]
        eta, at = self._eta
        if finished:
            parts.append({"started": "unfinished"}.get(progress.state, progress.state))
        elif eta is not None:
            parts.append(f"ETA {format_duration(max(0.0, eta - (time.monotonic() - at)))}")
        return "  ·  ".join(parts)

    def _show_progress_line(self, text: str) -> None:
        self.bar_text.setText(text)
        self.bar_text.setToolTip(text)

    def refresh_runs(self, select: Path | None = None) -> None:
        """Re-list the runs folder, keeping (or moving to `select`) the selection."""
        active = [self.active_run] if self.active_run else []
        self.show_run(self.runs_view.list(active, select or self.shown_run))

    def show_run(self, run: Path | None) -> None:
        """Show a run's curves, checkpoints and last evaluation."""
        if run != self.shown_run:
            self.shown_run = run
            if run is not None and run != self.active_run:
                self._readers.pop(run, None)  # an old run: read its whole log afresh
            self.plot.clear(run.name if run else "no run selected")
            if run is None:
                self.runs_view.show_checkpoints(None, [])
                self._update_eval_target()
                if self.active_run is None:
                    self.progress.setRange(0, 1)
                    self.progress.setValue(0)
                    self.progress_label.setText("no run selected")
            else:
                self.poll_run(run)
                self.plot.set_steps(self._readers[run][1].steps)
        self._update_buttons()

    def _update_eval_target(self) -> None:
        run, found = self.shown_run, self.runs_view.checkpoints
        self.evaluation.set_target(run, (self.runs_view.selected_checkpoint() or run) if run and found else None)

    # ---- state and messages ------------------------------------------------------------------
    def _update_buttons(self) -> None:
        training = self.is_training()
        self.train_button.setEnabled(not training)
        self.train_action.setEnabled(not training)
        self.stop_button.setEnabled(training and not self._stop_requested)
        shown = self.runs_view.selected_run()
        self.resume_button.setEnabled(not training and shown is not None and shown.resumable)

    def _log(self, line: str) -> None:
        self.log.appendPlainText(line)

    def show_error(self, text: str) -> None:
        show_status(self.message, text, error=True)

    def show_info(self, text: str) -> None:
        show_status(self.message, text)
