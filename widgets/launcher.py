"""Starts the desktop app (`python main.py [gui ...]`), renders `screenshots`, runs `bench annotate`.

The composition root of the GUI: builds the Record session (app/record_session.py) and the Run
session (app/run_session.py), the workspaces and the main window, and runs the Qt event loop. The
two sessions never hold the workcell at once: starting a run disconnects the Record workspace, and
the window's e-stop stops whichever is moving. Command-line parsing and the one-line
error contract are app/cli.py's.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from app.cli import UserError, parse_args


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv or ["gui"])
        if args.command == "screenshots":
            return run_screenshots(args.out)
        if args.command == "bench" and args.what == "run":
            return run_bench_run(args)
        if args.command == "bench":
            return run_bench_annotate(args.json)
        return run_gui(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _application():
    from PySide6.QtWidgets import QApplication

    import pyqtgraph as pg

    # Antialiasing stays off globally: it makes long curves ~4x slower to draw (scrubbing a
    # 10-minute episode fell from 47 to 11 frames/s); short live curves turn it on themselves.
    pg.setConfigOptions(imageAxisOrder="row-major")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Code2Act")
    return app


def build_window(session, data_dir: Path, run_session=None):
    """The main window around a Record session, a Run session (made here unless given) and the
    Annotate and Train workspaces of `data_dir` (training runs go to `data_dir`/runs; episodes are read
    from the folder's top level only)."""
    from app.run_program import ACTIVE_STATES
    from app.run_session import RunSession
    from widgets.annotate_panel import AnnotatePanel
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

    def annotate_episode(path) -> None:
        window.tabs.setCurrentWidget(annotate)
        annotate.open_episode(path)

    for panel in (record, run):
        panel.open_episode_requested.connect(annotate_episode)
        panel.episode_saved.connect(lambda _path: annotate.browser.rescan())
        panel.episode_saved.connect(lambda _path: train.chooser.rescan())
    return window


def _session(robot: str, robot_ip: str | None, data_dir: Path):
    from app.record_session import RecordSession

    try:
        return RecordSession(out_dir=data_dir, robot=robot, robot_ip=robot_ip)
    except ValueError as e:
        raise UserError(str(e)) from None


def run_gui(args) -> int:
    """The desktop app on the workcell of `args` (parse_args has checked --robot-ip and --camera)."""
    data_dir = args.data
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError(f"--data {data_dir} is a file, not a folder")
    _require_display()
    data_dir.mkdir(parents=True, exist_ok=True)
    app = _application()
    session = _session(args.robot, args.robot_ip, data_dir)
    window = build_window(session, data_dir)
    window.show()
    session.connect_robot()
    return app.exec()


def _require_display() -> None:
    """A one-line error instead of Qt's abort when there is no screen to open a window on."""
    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM") \
            and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset); run it in a "
                        "desktop session, over ssh -X, or use the command-line tools (python main.py --help)")


def run_screenshots(out: Path) -> int:
    """Every workspace rendered offscreen to PNG, with a recorded episode loaded (and, for Train, a
    real tiny training run on it and an evaluation of that run)."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from app.record_command import run_record

    out.mkdir(parents=True, exist_ok=True)
    app = _application()
    with tempfile.TemporaryDirectory(prefix="code2act-shots-") as tmp:
        data = Path(tmp)
        if run_record(parse_args(["record", "--task", "swap", "--out", str(data)])) != 0:
            raise UserError("screenshots: the scripted swap demonstration failed")
        episode = next(data.glob("swap_*.h5"))
        session = _session("sim", None, data)
        window = build_window(session, data)
        window.resize(1440, 920)
        window.show()
        try:
            session.connect_robot()
            if not session.wait_until_live(timeout=30.0):
                raise UserError("the simulated workcell did not start within 30 s")
            window.annotate_panel.open_episode(episode)
            window.annotate_panel.player.set_frame(60)
            shots = [_shoot_record_take(app, window, session, out / "record.png")]
            window.tabs.setCurrentWidget(window.annotate_panel)
            _pump(app, 0.3)
            window.grab().save(str(out / "annotate.png"))
            shots.append(str(out / "annotate.png"))
            shots.append(_shoot_train(app, window, out / "train.png"))
        finally:
            window.train_panel.shutdown()
            session.close()
            window.close()
    print("\n".join(shots))
    return 0


def _pump(app, seconds: float) -> None:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _shoot_record_take(app, window, session, path: Path) -> str:
    """The Record workspace halfway through a take: a pick from the palette running, streams counting."""
    from app.record_session import Call

    window.tabs.setCurrentWidget(window.record_panel)
    session.start_recording()
    session.call(Call("pick", (session.snapshot().objects[0],)))
    _pump(app, 3.5)
    window.grab().save(str(path))
    session.discard_recording()
    session.wait_until_idle(30.0)
    return str(path)


def _wait_for(app, done, timeout: float, what: str) -> None:
    import time

    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise UserError(f"screenshots: {what} did not finish within {timeout:.0f} s")
        _pump(app, 0.1)


def _shoot_train(app, window, path: Path) -> str:
    """The Train workspace after a real tiny run on the recorded episode and a short evaluation of it."""
    panel = window.train_panel
    window.tabs.setCurrentWidget(panel)
    # A tiny model trains fastest on one thread; on a busy machine torch's thread pool can make it ~50x slower.
    panel.set_command_env({"OMP_NUM_THREADS": "1"})
    panel.form.tiny.setChecked(True)
    panel.form.steps.setValue(120)
    panel.form.batch_size.setValue(8)
    panel.form.lr.setText("1e-3")
    panel.form.checkpoint_every.setValue(40)
    panel.form.device.setCurrentText("cpu")
    panel.form.run_name.setText("tiny-swap")
    if not panel.start_training():
        raise UserError(f"screenshots: the Train workspace did not start training: {panel.message.text()}")
    _wait_for(app, lambda: not panel.is_training(), 400, "the tiny training run")
    box = panel.evaluation
    box.tasks.setText("swap")
    box.episodes.setValue(2)
    box.max_call_s.setValue(10)
    if not box.evaluate():
        raise UserError(f"screenshots: the evaluation did not start: {box.status.text()}")
    _wait_for(app, lambda: not box.is_running(), 300, "the evaluation")
    _pump(app, 0.3)
    window.grab().save(str(path))
    return str(path)


def run_bench_annotate(as_json: bool) -> int:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from widgets.bench_annotate_gui import bench_annotate_gui

    _application()
    result = bench_annotate_gui()
    if as_json:
        print(json.dumps(result))
    else:
        print(f"10-minute two-camera episode: first frame after {result['open_to_first_frame_s']} s (goal 1 s), "
              f"scrubbing at {result['scrub_frames_per_s']} frames/s (goal 30)")
    return 0


def run_bench_run(args) -> int:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from widgets.bench_run_gui import bench_run_gui

    _application()
    result = bench_run_gui(seconds=args.seconds or 20.0, planner=args.planner, policy=args.policy)
    if args.json:
        print(json.dumps(result))
    else:
        goals = result["goals"]
        print(f"Run workspace, learned planner + policy, both cameras, {result['policy_seconds']} s of policy control:")
        print(f"  GUI thread blocked at most {result['gui_blocked_max_ms']} ms (goal {goals['gui_blocked_max_ms']:g} ms); "
              f"{result['gui_blocked_max_ms_after_start']} ms after each run's first second (its workcell opening)")
        print(f"  late control ticks {result['late_ticks']} (goal 0), policy chunks not ready in time "
              f"{result['chunk_stalls']} (goal 0; {result['stall_ms']} ms waited), mean chunk "
              f"{result['chunk_ms_mean']} ms")
    return 0
