"""Starts the desktop app (`python main.py [gui ...]`), renders `screenshots`, runs `bench annotate`.

The GUI's entry: builds the Record session (app/record_session.py), the window of every workspace
(widgets/workspaces.py) and runs the Qt event loop. Command-line parsing and the one-line
error contract are app/cli.py's.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from app.cli import UserError, parse_args
from widgets.workspaces import build_window


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

    from widgets.gui_thread_gc import collect_on_gui_thread

    # Antialiasing stays off globally: it makes long curves ~4x slower to draw (scrubbing a
    # 10-minute episode fell from 47 to 11 frames/s); short live curves turn it on themselves.
    pg.setConfigOptions(imageAxisOrder="row-major")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Code2Act")
    collect_on_gui_thread(app)  # Qt objects must never be destroyed on a worker thread
    return app


def _session(robot: str, robot_ip: str | None, data_dir: Path, camera: str | None = None, objects: str | None = None):
    from app.record_session import RecordSession
    from app.workcell_setup import default_setup

    try:
        setup = default_setup(robot, data_dir, camera, objects) if camera or objects else None
        return RecordSession(out_dir=data_dir, robot=robot, robot_ip=robot_ip, setup=setup)
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
    session = _session(args.robot, args.robot_ip, data_dir, args.camera, args.objects)
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
    real tiny training run on it and an evaluation of that run; for Run, that policy in a run), and the
    Record workspace setting a workcell up (teaching objects, calibrating a camera)."""
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
            shots.append(_shoot_run(app, window, out / "run.png"))
        finally:
            window.train_panel.shutdown()
            session.close()
            window.close()
        from widgets.setup_screenshots import shoot_setup

        shots += shoot_setup(app, out, data / "setup")
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


def _shoot_run(app, window, path: Path) -> str:
    """The Run workspace in the middle of a run: the oracle program with the tiny policy of the Train
    shot executing the swap's first pick (its predicted path on the cameras), after both cubes' start
    poses were remembered (their markers)."""
    panel = window.run_panel
    window.tabs.setCurrentWidget(panel)
    panel.setup.rescan()
    policy = next((c for c in panel.setup.model_lists["policy"].model().findItems("tiny-swap")), None)
    if policy is None:
        raise UserError("screenshots: the Run workspace does not list the tiny-swap policy")
    panel.setup.model_lists["policy"].setCurrentIndex(policy.row())
    panel.setup.task.setCurrentText("swap")
    panel.setup.seed.setValue(0)
    if not panel.start_run():
        raise UserError("screenshots: the Run workspace did not start a run")
    _wait_for(app, lambda: (panel.snapshot.policy_view is not None and panel.snapshot.policy_view.chunks >= 6
                            and panel.snapshot.policy_view.call is not None) or panel.snapshot.state in ("failed",
                                                                                                       "finished"),
              120, "the run's first policy call")
    _pump(app, 0.3)
    window.grab().save(str(path))
    window.run_session.stop()
    _wait_for(app, lambda: panel.snapshot.state in ("failed", "finished"), 60, "stopping the run")
    return str(path)


def run_bench_annotate(as_json: bool) -> int:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from widgets.bench_annotate_gui import bench_annotate_gui

    _application()
    result = bench_annotate_gui()
    if as_json:
        print(json.dumps(result))
    else:
        for layout, r in result.items():
            print(f"10-minute two-camera episode, {r['camera_size']}: first frame after {r['open_to_first_frame_s']} s "
                  f"(goal 1 s), scrubbing at {r['scrub_frames_per_s']} frames/s (goal 30)")
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
