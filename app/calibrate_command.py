"""`python main.py calibrate --robot sim|franky-sim|franky`: hand-eye calibration of the workcell's
cameras with a ChArUco board, from the command line (the GUI steps through the same procedure,
recorders/perception/calibration_procedure.py).

    --robot -> workcell (simulated: the calibration scene, both boards shown)
      -> per camera: CalibrationProcedure.run(progress) -> CameraCalibration
         (simulated: its error against the simulator's own camera pose)
      -> Calibration (the cameras kept from --out's file, this run's replaced; the workspace box)
      -> --out FOLDER/calibration.json (atomic) ; a summary, or with --json one JSON object

On a real arm one camera is calibrated per run (`--camera`), since the board moves between them: on
the table for the wrist camera, on the hand for the front camera; the arm starts where the operator
left it, with the camera looking at the board, and turns by small angles around that pose.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Callable

from app.errors import UserError, int_at_least, nonneg_int, one_line, print_json
from recorders.cell.registry import ROBOT_KINDS, WORKCELL_KINDS, workcell_kind

CAMERA_CHOICES = ("front", "wrist")


def add_calibrate_parser(sub) -> None:
    """`calibrate` on the CLI's subcommand parsers."""
    c = sub.add_parser("calibrate", help="hand-eye calibration of the cameras with a ChArUco board")
    c.add_argument("--robot", choices=ROBOT_KINDS, default="sim",
                   help="; ".join(f"{k}: {WORKCELL_KINDS[k].description}" for k in ROBOT_KINDS))
    c.add_argument("--robot-ip", default=None,
                   help="IP of a real arm (with --robot franky); with franky-sim, the loopback address to serve on")
    c.add_argument("--camera", choices=CAMERA_CHOICES, default=None,
                   help="calibrate this camera only (required on a real arm: the board moves between cameras); "
                        "default every camera of a simulated workcell")
    c.add_argument("--poses", type=int_at_least(3, "at least 3"), default=12,
                   help="arm poses per camera (default %(default)s)")
    c.add_argument("--seed", type=nonneg_int, default=0, help="varies the planned poses (default 0)")
    c.add_argument("--out", type=Path, default=None,
                   help="folder to save calibration.json in (cameras already calibrated there are kept)")
    c.add_argument("--data", type=Path, default=Path("data"),
                   help="the app's data folder: the calibration is saved in DATA/workcells/ROBOT unless --out says "
                        "otherwise, and a real arm's RealSense cameras are the ones chosen there")
    c.add_argument("--json", action="store_true", help="print one JSON object")


def run_calibrate_command(args) -> int:
    """`calibrate` as the CLI runs it: saved with the workcell in --data, the real arm's cameras from there."""
    from app.workcell_setup import calibration_opener, workcell_folder

    return run_calibrate(args, workcell_folder(args.data, args.robot), calibration_opener(args.data))


def run_calibrate(args, out: Path | None = None, open_cell: Callable | None = None) -> int:
    """Run the calibration `args` asks for; `out` is the folder used when --out is not given (None:
    not saved) and `open_cell(kind, spec, control_hz, **options)` opens the workcell (default the
    registry's open_workcell)."""
    from recorders.arms.base import ArmError
    from recorders.perception.calibration import CalibrationFileError, load_calibration
    from recorders.perception.calibration_procedure import CalibrationError

    entry = workcell_kind(args.robot)
    if entry.needs_ip and not args.robot_ip:
        raise UserError(f"--robot {args.robot} needs --robot-ip (the arm's FCI address)")
    if not entry.simulated and args.camera is None:
        raise UserError(f"--robot {args.robot}: calibrate one camera per run, --camera wrist with the board on the "
                        "table or --camera front with the board on the hand, the arm placed so the camera sees it")
    folder = args.out if args.out is not None else out
    if folder is not None and folder.exists() and not folder.is_dir():
        raise UserError(f"--out must be a folder, but {folder} is a file")
    try:
        previous = None if folder is None else load_calibration(folder)
    except CalibrationFileError as e:
        raise UserError(f"{one_line(e)} (or remove it)") from None
    if previous is not None and previous.robot != args.robot:
        raise UserError(f"{folder} holds the calibration of a {previous.robot} workcell, not {args.robot}; "
                        "choose another --out")
    t0 = time.monotonic()
    try:
        calibration, report = _calibrate(args, previous, open_cell)
    except (ArmError, CalibrationError) as e:
        raise UserError(f"--robot {args.robot}: {one_line(e)}") from None
    saved = None
    if folder is not None:
        from recorders.perception.calibration import save_calibration

        saved = save_calibration(folder, calibration)
    seconds = time.monotonic() - t0
    if args.json:
        print_json({"robot": args.robot, "cameras": report, "saved": None if saved is None else str(saved),
                    "workspace": None if calibration.workspace is None else calibration.workspace.to_dict(),
                    "seconds": round(seconds, 2)})
    else:
        _print_summary(report, saved, seconds)
    return 0


def _calibrate(args, previous, open_cell) -> tuple:
    """Open the workcell, calibrate each camera; the Calibration and the per-camera report."""
    from recorders.cell.registry import open_workcell
    from recorders.perception.calibration import Calibration, WorkspaceBox, mount_error
    from recorders.perception.calibration_procedure import (CalibrationProcedure, arm_view, calibration_scene,
                                                            sim_views, true_mount)

    entry = workcell_kind(args.robot)
    options: dict = {"host": args.robot_ip} if args.robot_ip else {}  # franky-sim: a loopback address to serve on
    if previous is not None and previous.workspace is not None:
        options["safety"] = previous.workspace.limits()  # the box the operator chose for this workcell
    spec = calibration_scene() if entry.simulated else None
    cell = (open_cell or open_workcell)(args.robot, spec, **options)
    try:
        views = sim_views() if entry.simulated else {args.camera: arm_view(args.camera)}
        cameras = [args.camera] if args.camera else [c for c in cell.cameras if c in views]
        if not cameras:
            raise UserError(f"--robot {args.robot}: the workcell has no camera to calibrate")
        calibration = previous or Calibration(args.robot)
        report = {}
        progress, done = _progress(len(cameras) * args.poses)
        try:
            for camera in cameras:
                procedure = CalibrationProcedure(cell, views[camera], args.poses, args.seed)
                result = procedure.run(progress)
                calibration = calibration.with_camera(camera, result)
                report[camera] = {"mount": result.mount.to_dict(), "residual_mm": round(result.residual_mm, 3),
                                  "residual_deg": round(result.residual_deg, 4),
                                  "reprojection_px": _rounded(result.reprojection_px, 3), "captures": result.captures,
                                  "poses": len(procedure.poses)}
                truth = true_mount(cell, camera)
                if truth is not None:
                    mm, deg = mount_error(result.mount, truth)
                    report[camera]["error"] = {"translation_mm": round(mm, 3), "rotation_deg": round(deg, 4)}
        finally:
            done()
        calibration = calibration.with_workspace(WorkspaceBox.from_limits(cell.arm.limits))
        return calibration, report
    finally:
        cell.close()


def _progress(total: int) -> tuple[Callable[[int, int, str], None], Callable[[], None]]:
    """A tqdm bar on a terminal, otherwise one line per pose (logs, the GUI's process view); both on
    stderr, so --json's stdout stays one object. Returns (the procedure's callback, close)."""
    if not sys.stderr.isatty():
        def line(done: int, total_poses: int, message: str) -> None:
            print(f"calibrate: {message}", file=sys.stderr, flush=True)
        return line, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="pose", desc="calibrate", file=sys.stderr)

    def update(done: int, total_poses: int, message: str) -> None:
        bar.update(1)
        bar.set_postfix_str(message)
        if "skipped" in message:
            bar.write(message, file=sys.stderr)
    return update, bar.close


def _rounded(value: float, digits: int) -> float | None:
    return None if math.isnan(value) else round(value, digits)


def _print_summary(report: dict, saved: Path | None, seconds: float) -> None:
    for camera, r in report.items():
        x, y, z, *quat = r["mount"]["pose"]
        where = "relative to the TCP" if r["mount"]["frame"] == "hand" else "in the base frame"
        reprojection = "unknown" if r["reprojection_px"] is None else f"{r['reprojection_px']:.2f} px"
        print(f"{camera}: camera {where} at ({x:.4f}, {y:.4f}, {z:.4f}) m, quaternion "
              f"({', '.join(f'{q:.4f}' for q in quat)}); {r['captures']} of {r['poses']} captures, residual "
              f"{r['residual_mm']:.2f} mm / {r['residual_deg']:.3f} deg, reprojection {reprojection}")
        if "error" in r:
            print(f"{camera}: error against the simulator's camera: {r['error']['translation_mm']:.2f} mm, "
                  f"{r['error']['rotation_deg']:.3f} deg")
    print(f"saved {saved}" if saved is not None else "not saved (give --out FOLDER to keep it)")
    print(f"took {seconds:.1f} s")


def parse_calibrate_args(argv: list[str]) -> argparse.Namespace:
    """The calibrate arguments alone (tests, and callers without the full CLI)."""
    from app.errors import Parser

    parser = Parser(prog="code2act")
    add_calibrate_parser(parser.add_subparsers(dest="command", parser_class=Parser))
    return parser.parse_args(["calibrate", *argv])
