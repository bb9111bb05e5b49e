"""The command line (DESIGN.md section 2): argument parsing, dispatch and the error contract.

Every command prints a one-line error and exits 2 on bad input (unknown task, bad path, bad seed,
corrupt episode); no user error ever shows a traceback. Dispatch is one table, `HANDLERS`, from a
command to the module and function that run it; that module is imported only when its command runs,
so `--help` and `tasks` answer at once, and the commands import what they share from app/errors.py,
never from here (no import cycle). The `--robot` choices and help come from the workcell registry
(recorders/cell/registry.py).

    argv -> build_parser() -> args -> HANDLERS[command key] -> import module -> function(*arguments(args))
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Callable, NamedTuple

from app.bench_estop import DEFAULT_TRIALS as DEFAULT_ESTOP_TRIALS
from app.errors import EXIT_USER_ERROR, Parser, UserError, nonneg_int, positive_int
from app.calibrate_command import add_calibrate_parser
from app.report_plan import BUDGETS, OBS_KINDS as REPORT_OBS_KINDS
from app.train_command import add_train_parsers
from recorders.video_quality import QUALITIES, QUALITY_CRF
from recorders.cell.registry import ROBOT_KINDS, SCRIPTED_DEMO_KINDS, WORKCELL_KINDS, workcell_kind

# Commands handled by widgets/launcher.py (app/ never imports widgets), by command key.
GUI_COMMANDS = ("gui", "screenshots", "bench annotate", "bench run")
# Commands whose subcommand picks the handler, and the parser attribute that holds the subcommand.
SUBCOMMAND_ATTRIBUTES = {"train": "model", "bench": "what", "export": "format", "import": "format",
                         "report": "what"}


def _given_the_namespace(args: argparse.Namespace) -> tuple:
    return (args,)


class Handler(NamedTuple):
    """Where a command's code lives (imported when the command runs) and the arguments it is given."""

    module: str
    function: str
    arguments: Callable[[argparse.Namespace], tuple] = _given_the_namespace


HANDLERS: dict[str, Handler] = {
    "tasks": Handler("app.task_listing", "print_tasks", lambda args: ()),
    "record": Handler("app.record_command", "run_record"),
    "inspect": Handler("app.inspect_command", "run_inspect", lambda args: (args.episode, args.json)),
    "segment": Handler("app.inspect_command", "run_segment", lambda args: (args.path,)),
    "check": Handler("app.inspect_command", "run_check", lambda args: (args.program,)),
    "train policy": Handler("app.train_command", "run_train_policy"),
    "train planner": Handler("app.train_command", "run_train_planner"),
    "run": Handler("app.run_command", "run_run"),
    "eval": Handler("app.eval_command", "run_eval"),
    "calibrate": Handler("app.calibrate_command", "run_calibrate_command"),
    "export lerobot": Handler("app.lerobot_export", "run_export_lerobot"),
    "import lerobot": Handler("app.lerobot_import", "run_import_lerobot"),
    "bench inference": Handler("app.bench_inference", "run_bench_inference"),
    "bench recording": Handler("app.bench", "run_bench"),
    "bench estop": Handler("app.bench_estop", "run_bench_estop"),
    "bench training": Handler("app.bench_training", "run_bench_training"),
    "bench franky": Handler("app.bench_franky_motion", "run_bench_franky_motion"),
    "report generalisation": Handler("app.report_generalisation", "run_report_generalisation"),
}


def command_key(args: argparse.Namespace) -> str | None:
    """The key of a parsed command line in HANDLERS or GUI_COMMANDS: "record", "train policy", ..."""
    attribute = SUBCOMMAND_ATTRIBUTES.get(args.command)
    return args.command if attribute is None else f"{args.command} {getattr(args, attribute)}"


def _robot_help(kinds: tuple[str, ...]) -> str:
    return "; ".join(f"{kind}: {WORKCELL_KINDS[kind].description}" for kind in kinds)


def _add_video_quality_argument(parser, default: str) -> None:
    crfs = ", ".join(f"{q} CRF {c}" for q, c in QUALITY_CRF.items())
    parser.add_argument("--video-quality", choices=QUALITIES, default=None,
                        help=f"how camera streams are stored: colour as H.264 ({crfs}) with depth as lossless "
                             f"FFV1, or lossless (frames as recorded). Default: {default}")


def _camera_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 128x128, got {text!r}") from None
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="code2act", description="Record, segment, annotate, train and run code-to-action policies.")
    sub = p.add_subparsers(dest="command", parser_class=Parser)

    g = sub.add_parser("gui", help="the desktop app (default when no command is given)")
    g.add_argument("--robot", choices=ROBOT_KINDS, default="sim", help=_robot_help(ROBOT_KINDS))
    g.add_argument("--robot-ip", default=None, help="IP of a real arm (with --robot franky)")
    _add_device_arguments(g)
    g.add_argument("--data", type=Path, default=Path("data"),
                   help="dataset folder (default ./data); data/workcells/ROBOT keeps cameras, calibration, taught objects")

    sc = sub.add_parser("screenshots", help="render every workspace offscreen to PNG")
    sc.add_argument("--out", type=Path, required=True)

    sub.add_parser("tasks", help="list the task suite")

    r = sub.add_parser("record", help="scripted demonstrations, headless: a task's oracle program, or --program "
                                      "FILE on any workcell (a real arm too)")
    what = r.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", help="a task of the suite: its oracle program in its scenes")
    what.add_argument("--program", type=Path, help="a program file (checked like `check`) run on --robot, "
                                                   "--episodes times; on a real arm with a reset pause between")
    r.add_argument("--episodes", type=positive_int, default=1)
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--seed", type=nonneg_int, default=0, help="seed of the first episode (default 0)")
    r.add_argument("--split", choices=("train", "test"), default="train")
    r.add_argument("--robot", choices=ROBOT_KINDS, default="sim",
                   help=_robot_help(ROBOT_KINDS) + " (franky: with --program only)")
    r.add_argument("--robot-ip", default=None, help="IP of a real arm (with --robot franky)")
    _add_device_arguments(r)
    r.add_argument("--data", type=Path, default=Path("data"), help="the app's data folder, whose workcells/ROBOT "
                                                                   "holds the calibration and taught objects")
    r.add_argument("--instruction", default=None, help="with --program: what the episodes show, in words")
    r.add_argument("--scene-task", default="pick_place", metavar="TASK",
                   help="with --program in simulation: the task whose layouts (seeds from --seed) are the scenes")
    r.add_argument("--reset-wait", type=float, default=None, metavar="S",
                   help="with --program on a real arm and no terminal: seconds to reset the scene between episodes")
    r.add_argument("--obs", choices=("state", "rgb"), default="rgb",
                   help="rgb (default) also records the front and wrist cameras")
    r.add_argument("--camera-size", type=_camera_size, default=(128, 128), metavar="WxH")
    r.add_argument("--depth", action="store_true", help="also record depth images")
    _add_video_quality_argument(r, "standard for RealSense cameras, lossless for rendered ones (a policy "
                                   "trains on exactly what it sees)")
    r.add_argument("--keep-failed", action="store_true", help="keep episodes whose oracle run failed")

    i = sub.add_parser("inspect", help="summarise an episode file")
    i.add_argument("episode", type=Path)
    i.add_argument("--json", action="store_true", help="print one JSON object")

    s = sub.add_parser("segment", help="(re)derive segments from logged calls, keeping edits")
    s.add_argument("path", type=Path, help="an episode file or a folder of them")

    c = sub.add_parser("check", help="validate a program against the robot API")
    c.add_argument("program", type=Path)

    add_train_parsers(sub)
    add_calibrate_parser(sub)

    x = sub.add_parser("export", help="convert episodes to another dataset format")
    x.add_argument("format", choices=("lerobot",), help="lerobot: a LeRobotDataset v3 folder (video per camera, "
                                                          "the instruction as task, the call labels as subtasks)")
    x.add_argument("dirs", nargs="+", type=Path, help="episode files or folders of them")
    x.add_argument("--out", type=Path, required=True, help="a new (or empty) LeRobotDataset v3 folder")

    im = sub.add_parser("import", help="bring another dataset format in as episodes")
    im.add_argument("format", choices=("lerobot",), help="lerobot: a LeRobotDataset v3 folder (labels from its "
                                                           "subtasks, else proposals at gripper events)")
    im.add_argument("dir", type=Path, help="the LeRobotDataset v3 folder")
    im.add_argument("--out", type=Path, required=True,
                    help="folder for the episodes (lerobot_NNNN.h5; never overwritten)")
    _add_video_quality_argument(im, "standard (H.264 again, as they came; lossless keeps every decoded frame "
                                    "exactly, at ~1 MB a 640x480 frame)")

    e = sub.add_parser("eval", help="success rates of planner x policy combinations")
    e.add_argument("--planner", default="oracle", help="oracle (the scripted programs) or a planner run folder")
    e.add_argument("--data", type=Path, nargs="+", default=None,
                   help="with --planner RUN: next-call accuracy on these recorded episodes instead of rollouts")
    e.add_argument("--policy", default="oracle", help="oracle (scripted skills) or a policy run folder")
    e.add_argument("--tasks", default="all", help="comma-separated task ids, or all")
    e.add_argument("--episodes", type=positive_int, default=20)
    e.add_argument("--seed", type=nonneg_int, default=0)
    e.add_argument("--split", choices=("train", "test"), default="train")
    e.add_argument("--robot", choices=SCRIPTED_DEMO_KINDS, default="sim", help=_robot_help(SCRIPTED_DEMO_KINDS))
    e.add_argument("--objects", choices=("true", "perceived"), default="true",
                   help="object poses from the simulator (true) or from the tracker on the rendered RGB-D (perceived)")
    e.add_argument("--json", action="store_true")
    e.add_argument("--max-call-s", type=float, default=30.0, help="time a learned policy gets per call")
    e.add_argument("--phrasing", choices=("template", "paraphrase", "paraphrase-b", "impossible"),
                   default="template",
                   help="with --planner RUN: the tasks' own instructions, held-out rephrasings of them "
                        "(recorders/task_phrasings.py; -b: a second set, for pick_place, stack, push, swap and "
                        "sort), or held-out instructions no program can satisfy, where "
                        "success is a refusal (recorders/impossible_instructions.py); none is used in training")
    e.add_argument("--images", choices=("real", "swapped"), default="real",
                   help="with --planner RUN: the planner sees its own episode's camera, or another episode's "
                        "(swapped: does it use the image?)")
    e.add_argument("--verbatim", action="store_true",
                   help="with --planner RUN: give the planner each instruction as written, not read as the "
                        "training instruction it most resembles (models/instruction_canon.py)")
    e.add_argument("--no-lookahead", action="store_true",
                   help="with --planner RUN: choose each pick alone, not with the place it enables")

    rn = sub.add_parser("run", help="run a task or an instruction with a planner and a policy in a workcell")
    what = rn.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", help="a task of the suite: its scene, instruction, oracle program and success check")
    what.add_argument("--instruction", help="any text, given as it is to a learned --planner RUN; the scene is "
                                            "--scene-task's layout for --seed, and success is not checked")
    rn.add_argument("--scene-task", default="pick_place", metavar="TASK",
                    help="with --instruction: the task whose layout for --seed is the scene (default %(default)s: "
                         "3-4 cubes of different colours and 2-3 zones); its program and check are not used")
    rn.add_argument("--planner", default="oracle", help="oracle (the task's scripted program) or a planner run folder")
    rn.add_argument("--policy", default="oracle", help="oracle (scripted skills) or a policy run folder")
    rn.add_argument("--robot", choices=ROBOT_KINDS, default="sim", help=_robot_help(ROBOT_KINDS))
    rn.add_argument("--robot-ip", default=None, help="IP of a real arm (with --robot franky)")
    rn.add_argument("--data", type=Path, default=Path("data"),
                    help="the app's data folder; a real arm's taught objects and calibration are in DATA/workcells/ROBOT")
    rn.add_argument("--objects", choices=("true", "perceived"), default=None,
                    help="object poses from the simulator (true, default in simulation) or the tracker on the "
                         "cameras' RGB-D (perceived)")
    rn.add_argument("--step", action="store_true",
                    help="show each call before it runs and ask: [a]pprove (Enter), [e]dit, [s]kip or [q]uit")
    rn.add_argument("--seed", type=nonneg_int, default=0)
    rn.add_argument("--split", choices=("train", "test"), default="train")
    rn.add_argument("--out", type=Path, default=None,
                    help="episode file (default TASK_SEED_run.h5, or instruction_SEED_run.h5)")
    rn.add_argument("--obs", choices=("state", "rgb"), default="rgb", help="streams saved with --policy oracle")
    rn.add_argument("--max-call-s", type=float, default=30.0, help="time the policy gets per call")

    b = sub.add_parser("bench", help="speed and resource figures")
    b.add_argument("what", choices=("recording", "annotate", "inference", "estop", "run", "franky", "training"),
                   help="recording: demo and live-recording speed; annotate: opening and scrubbing a long episode; "
                        "inference: ms per action chunk and stalls during run; estop: e-stop latency on sim and "
                        "franky-sim; run: GUI heartbeat and control stalls in the Run workspace during a learned "
                        "planner + policy run with both cameras; franky: how smoothly franky executes targets "
                        "streamed at 10 Hz on franky-sim, the old waypoint motions vs the streamed ones (speed "
                        "jumps and dips per s, jerk, lag); training: seconds per training step of the rgb policy "
                        "on lossless and on video-coded episodes, and of the state policy")
    b.add_argument("--policy", default=None, help="bench inference / run: a trained policy instead of the defaults")
    b.add_argument("--planner", default=None, help="bench inference: ms per next call of a planner run; "
                                                     "bench run: the planner to run")
    b.add_argument("--json", action="store_true")
    b.add_argument("--seconds", type=float, default=None,
                   help="bench recording: length of the synthetic recording (default 60); bench run: seconds of "
                        "policy control to measure (default 20)")
    _add_video_quality_argument(b, "standard, as a RealSense take (bench recording)")
    b.add_argument("--runs", type=positive_int, default=None,
                   help="bench franky: runs per motion mode and path (default 3)")
    b.add_argument("--trials", type=positive_int, default=DEFAULT_ESTOP_TRIALS,
                   help="bench estop: e-stops per robot kind (default %(default)s)")

    rp = sub.add_parser("report", help="experiments end to end, written up as Markdown with plots")
    rp.add_argument("what", choices=("generalisation",),
                    help="generalisation: record, train and evaluate the hierarchy (learned planner + policy) "
                         "against flat policies (multi-task and per task, same demonstrations and policy budget) "
                         "on the trained tasks, the held-out compositions with more and more demonstrations, and "
                         "the paraphrase set; resumes where it stopped")
    rp.add_argument("--out", type=Path, required=True, help="the report's folder (data, runs, results, report.md)")
    rp.add_argument("--budget", choices=tuple(BUDGETS), default="full",
                    help="full: the experiment (about 3 h on a 2-core CPU with --jobs 2); large: five trained tasks, "
                         "twice the episodes (about 6 h); small: a smoke run of minutes with tiny models")
    rp.add_argument("--obs", choices=REPORT_OBS_KINDS, default="state",
                    help="what the low-level policies observe (rgb: also both cameras; much slower on a CPU)")
    rp.add_argument("--seed", type=nonneg_int, default=0,
                    help="first evaluation seed and training seed; demonstrations start at SEED+1000")
    rp.add_argument("--jobs", type=positive_int, default=1,
                    help="steps run at once, each a process of one thread (a step waits for the steps whose "
                         "output it reads); 1: one after the other, in this process")
    return p


def _add_device_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--camera", choices=("sim", "realsense", "none"), default=None,
                   help="sim: the simulated workcell's rendered cameras (default there); realsense: RealSense "
                        "cameras (default on a real arm; which is front / wrist is kept per workcell)")
    p.add_argument("--objects", choices=("true", "perceived"), default=None,
                   help="object poses from the simulator (true, default in simulation) or from the tracker on "
                        "the cameras' RGB-D (perceived; the only source on a real arm)")


def parse_args(argv: list[str]):
    """Parse a command line; raises UserError with one line on bad input."""
    args = build_parser().parse_args(argv)
    robot = getattr(args, "robot", None)
    if robot is not None and workcell_kind(robot).needs_ip and not getattr(args, "robot_ip", None):
        raise UserError(f"--robot {robot} needs --robot-ip (the arm's FCI address)")
    if args.command in ("gui", "record", "run", "eval") and (getattr(args, "camera", None) or
                                                              getattr(args, "objects", None)):
        from app.workcell_setup import check_setup, default_setup

        try:
            check_setup(robot, default_setup(robot, None, getattr(args, "camera", None), getattr(args, "objects", None)))
        except ValueError as e:
            raise UserError(str(e)) from None
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
        if args.command is None or command_key(args) in GUI_COMMANDS:
            raise UserError("the desktop app is started by main.py (python main.py gui)")
        return _dispatch(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`tasks | head`): nothing more to say
        sys.stdout = None
        return 0


def is_gui_command(argv: list[str]) -> bool:
    """Commands that need Qt widgets; main.py hands these to widgets/launcher.py."""
    return not argv or argv[0] in GUI_COMMANDS or " ".join(argv[:2]) in GUI_COMMANDS


def _dispatch(args) -> int:
    from recorders.episode_file import EpisodeError
    from recorders.task_suite import TaskError

    handler = HANDLERS.get(command_key(args))
    if handler is None:
        raise UserError(f"unknown command {args.command!r}")
    run = getattr(importlib.import_module(handler.module), handler.function)
    try:
        return run(*handler.arguments(args))
    except (EpisodeError, TaskError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
            PermissionError) as e:
        raise UserError(_one_line(e)) from None


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename:
        return f"{e.strerror or type(e).__name__}: {e.filename}"
    return " ".join(str(e).split()) or type(e).__name__
