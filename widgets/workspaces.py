"""The window of every workspace: the Record and Run sessions' panels, Annotate and Train, wired to each
other and to the main window's safety bar. The two sessions never hold the workcell at once:
starting a run disconnects the Record workspace, and the window's e-stop stops whichever is moving.
"""
from __future__ import annotations

from pathlib import Path


def build_window(session, data_dir: Path, run_session=None):
    """The main window around a Record session, a Run session (made here unless given) and the
    Annotate and Train workspaces of `data_dir` (training runs go to `data_dir`/runs; episodes are read
    from the folder's top level only)."""
    from app.run_program import ACTIVE_STATES
    from app.run_session import RunSession
    from PySide6.QtWidgets import QApplication

    from widgets.annotate_panel import AnnotatePanel
    from widgets.gui_thread_gc import GuiThreadGarbageCollector
    from widgets.main_window import MainWindow
    from widgets.record_panel import RecordPanel
    from widgets.run_panel import RunPanel
    from widgets.train_panel import TrainPanel

    runs_dir = Path(data_dir) / "runs"
    run_session = run_session or RunSession(data_dir, robot=session.robot, robot_ip=session.robot_ip)
    record = RecordPanel(session)
    annotate = AnnotatePanel(data_dir)
    train = TrainPanel(data_dir, runs_dir)

    def free_the_workcell(robot: str) -> str | None:
        """A run opens its own workcell: the Record workspace lets go of its connection first."""
        if session.snapshot().connection in ("live", "connecting"):
            session.disconnect()
            return f"the Record workspace was disconnected: this run opens the {robot} workcell"
        return None

    run = RunPanel(run_session, runs_dir, before_run=free_the_workcell, teleop_devices=session.teleop_devices)

    def estop() -> None:
        session.estop()
        if run_session.snapshot().state in ACTIVE_STATES:
            run_session.estop()

    def reset_estop() -> None:
        if session.snapshot().estop_reason is not None:
            session.reset_estop()
        if run_session.snapshot().estop_reason is not None:
            run_session.reset_estop()

    def close() -> None:
        train.shutdown()  # a training run stops cleanly: SIGINT, so it writes a checkpoint
        run.shutdown()
        run_session.close()  # a run going on is stopped and saved
        session.close()

    window = MainWindow([("Record", record), ("Annotate", annotate), ("Train", train), ("Run", run)], estop=estop,
                        reset_estop=reset_estop,
                        estop_reason=lambda: session.snapshot().estop_reason or run_session.snapshot().estop_reason,
                        has_unsaved_changes=annotate.has_unsaved_changes, save_changes=annotate.save,
                        on_close=close)
    window.record_panel, window.annotate_panel, window.train_panel, window.run_panel = record, annotate, train, run
    window.run_session = run_session
    collector = QApplication.instance().findChild(GuiThreadGarbageCollector)
    if collector is not None:  # full garbage passes wait while the arm is busy
        collector.defer_full = lambda: (run_session.snapshot().state in ACTIVE_STATES
                                        or session.snapshot().recording is not None)

    def annotate_episode(path) -> None:
        window.tabs.setCurrentWidget(annotate)
        annotate.open_episode(path)

    for panel in (record, run):
        panel.open_episode_requested.connect(annotate_episode)
        panel.episode_saved.connect(lambda _path: annotate.browser.rescan())
        panel.episode_saved.connect(lambda _path: train.chooser.rescan())
    return window
