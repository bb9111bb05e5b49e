"""One `python main.py ...` subprocess for the GUI: start, stream its output as lines, stop it with
SIGINT (the CLI's clean stop), and report how it ended.

The Train workspace runs training and evaluation through this, so nothing slow runs on the GUI
thread. stdout and stderr arrive as whole lines (`line_received`); tqdm's carriage-return redraws
arrive as `progress_text` (only the latest state of the line), so the log does not fill with bars.
`finished(exit_code, error_line)` reports the end: error_line is '' on success, else the command's
one-line error (or what the crash left on stderr).
"""
from __future__ import annotations

import os
import signal
import sys

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from app.train_runs import MAIN_SCRIPT, ROOT

LAST_LINES = 40  # stderr lines kept to explain a failure
ERROR_STYLE, INFO_STYLE = "color: #e05050", "color: #757575"  # a command's one-line status


def show_status(label, text: str, error: bool = False) -> None:
    """Put a one-line status (a command's outcome or error) on `label`, red for errors."""
    label.setStyleSheet(ERROR_STYLE if error else INFO_STYLE)
    label.setText(text)


class CommandProcess(QObject):
    line_received = Signal(str)
    progress_text = Signal(str)
    started = Signal()
    finished = Signal(int, str)  # exit code (-1: crashed or killed), one-line error ('' when it succeeded)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.process: QProcess | None = None
        self.extra_env: dict[str, str] = {}  # set on top of this process's environment
        self.stdout = ""  # everything the command printed on stdout (eval --json's result)
        self._partial = {QProcess.ProcessChannel.StandardOutput: "", QProcess.ProcessChannel.StandardError: ""}
        self._stderr_tail: list[str] = []
        self._stopping = False

    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def pid(self) -> int | None:
        return self.process.processId() if self.is_running() else None

    def start(self, argv: list[str]) -> None:
        """Run `python main.py *argv` in the repository root."""
        if self.is_running():
            raise RuntimeError("a command is already running")
        self.stdout, self._stderr_tail, self._stopping = "", [], False
        self._partial = dict.fromkeys(self._partial, "")
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")  # lines arrive as they are printed
        if not env.contains("MUJOCO_GL"):
            env.insert("MUJOCO_GL", "egl")
        for key, value in self.extra_env.items():
            env.insert(key, value)
        process.setProcessEnvironment(env)
        process.setWorkingDirectory(str(ROOT))
        process.setProgram(sys.executable)
        process.setArguments([str(MAIN_SCRIPT), *argv])
        process.readyReadStandardOutput.connect(lambda: self._read(QProcess.ProcessChannel.StandardOutput))
        process.readyReadStandardError.connect(lambda: self._read(QProcess.ProcessChannel.StandardError))
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        process.started.connect(self.started)
        self.process = process
        process.start()

    def interrupt(self) -> bool:
        """Ask the command to stop as Ctrl+C would (training writes a checkpoint first)."""
        pid = self.pid()
        if not pid:
            return False
        self._stopping = True
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return False
        return True

    def shutdown(self, wait_ms: int = 10000) -> None:
        """Stop cleanly (SIGINT), wait up to `wait_ms`, then terminate and kill whatever is left."""
        if not self.is_running():
            return
        process = self.process
        self.interrupt()
        if not process.waitForFinished(wait_ms):
            process.terminate()
            if not process.waitForFinished(2000):
                process.kill()
                process.waitForFinished(2000)

    # ---- output ------------------------------------------------------------------------------
    def _read(self, channel) -> None:
        process = self.process
        if process is None:
            return
        process.setReadChannel(channel)
        text = bytes(process.readAll().data()).decode("utf-8", errors="replace")
        if channel == QProcess.ProcessChannel.StandardOutput:
            self.stdout += text
        *lines, rest = (self._partial[channel] + text).split("\n")
        for line in lines:
            line = line.rstrip("\r").rsplit("\r", 1)[-1].rstrip()  # a redrawn line: its final state
            if line:
                self._emit_line(channel, line)
        if "\r" in rest:  # a progress bar redrawn in place: keep (and show) only its latest state
            rest = rest.rsplit("\r", 1)[-1]
            if rest.strip():
                self.progress_text.emit(rest.strip())
        self._partial[channel] = rest

    def _emit_line(self, channel, line: str) -> None:
        if channel == QProcess.ProcessChannel.StandardError:
            self._stderr_tail = (self._stderr_tail + [line])[-LAST_LINES:]
        self.line_received.emit(line)

    def _flush(self) -> None:
        for channel in list(self._partial):
            self._read(channel)
            rest, self._partial[channel] = self._partial[channel].strip(), ""
            if rest:
                self._emit_line(channel, rest)

    def _on_finished(self, code: int, status) -> None:
        self._flush()
        crashed = status == QProcess.ExitStatus.CrashExit
        if code == 0 and not crashed:
            self.finished.emit(0, "")
            return
        self.finished.emit(-1 if crashed else code, self.error_line(crashed))

    def _on_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.finished.emit(-1, f"could not start {sys.executable}: {self.process.errorString()}")

    def error_line(self, crashed: bool = False) -> str:
        """The command's one-line error, else the last line it wrote to stderr."""
        errors = [line for line in self._stderr_tail if line.startswith("error:")]
        if errors:
            return errors[-1].removeprefix("error:").strip()
        if self._stopping and crashed:
            return "stopped before it could write a checkpoint"
        tail = [line for line in self._stderr_tail if not line.startswith(("train policy:", "eval:"))]
        last = tail[-1] if tail else "no output"
        return ("crashed: " if crashed else "failed: ") + last
