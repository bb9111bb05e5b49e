"""The command line (DESIGN.md section 2): argument parsing, dispatch and the error contract.

Every command prints a one-line error and exits 2 on bad input (unknown task, bad path, bad seed,
corrupt episode); no user error ever shows a traceback. Heavy modules are imported inside the
command that needs them, so `--help` and `tasks` answer at once.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app.errors import EXIT_USER_ERROR, Parser, UserError, nonneg_int, positive_int
from app.train_command import add_train_parsers

GUI_COMMANDS = ("gui", "screenshots")  # handled by widgets/launcher.py (app/ never imports widgets)




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
    g.add_argument("--robot", choices=("sim", "franky-sim", "franky"), default="sim")
    g.add_argument("--robot-ip", default=None, help="IP of a real arm (with --robot franky)")
    g.add_argument("--camera", choices=("sim", "realsense"), default="sim")
    g.add_argument("--data", type=Path, default=Path("data"), help="dataset folder (default ./data)")

    sc = sub.add_parser("screenshots", help="render every workspace offscreen to PNG")
    sc.add_argument("--out", type=Path, required=True)

    sub.add_parser("tasks", help="list the task suite")

    r = sub.add_parser("record", help="scripted oracle demonstrations, headless")
    r.add_argument("--task", required=True)
    r.add_argument("--episodes", type=positive_int, default=1)
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--seed", type=nonneg_int, default=0, help="seed of the first episode (default 0)")
    r.add_argument("--split", choices=("train", "test"), default="train")
    r.add_argument("--robot", choices=("sim", "franky-sim"), default="sim")
    r.add_argument("--obs", choices=("state", "rgb"), default="rgb",
                   help="rgb (default) also records the front and wrist cameras")
    r.add_argument("--camera-size", type=_camera_size, default=(128, 128), metavar="WxH")
    r.add_argument("--depth", action="store_true", help="also record depth images")
    r.add_argument("--keep-failed", action="store_true", help="keep episodes whose oracle run failed")

    i = sub.add_parser("inspect", help="summarise an episode file")
    i.add_argument("episode", type=Path)
    i.add_argument("--json", action="store_true", help="print one JSON object")

    s = sub.add_parser("segment", help="(re)derive segments from logged calls, keeping edits")
    s.add_argument("path", type=Path, help="an episode file or a folder of them")

    c = sub.add_parser("check", help="validate a program against the robot API")
    c.add_argument("program", type=Path)

    add_train_parsers(sub)

    e = sub.add_parser("eval", help="success rates of planner x policy combinations")
    e.add_argument("--planner", default="oracle", help="oracle (the scripted programs) or a planner run folder")
    e.add_argument("--data", type=Path, nargs="+", default=None,
                   help="with --planner RUN: next-call accuracy on these recorded episodes instead of rollouts")
    e.add_argument("--policy", default="oracle", help="oracle (scripted skills) or a policy run folder")
    e.add_argument("--tasks", default="all", help="comma-separated task ids, or all")
    e.add_argument("--episodes", type=positive_int, default=20)
    e.add_argument("--seed", type=nonneg_int, default=0)
    e.add_argument("--split", choices=("train", "test"), default="train")
    e.add_argument("--robot", choices=("sim", "franky-sim"), default="sim")
    e.add_argument("--json", action="store_true")
    e.add_argument("--max-call-s", type=float, default=30.0, help="time a learned policy gets per call")

    rn = sub.add_parser("run", help="run a task with a planner and a policy in the simulated workcell")
    rn.add_argument("--task", required=True, help="a task of the suite")
    rn.add_argument("--planner", default="oracle", help="oracle (the scripted program) or a planner run folder")
    rn.add_argument("--policy", default="oracle", help="oracle (scripted skills) or a policy run folder")
    rn.add_argument("--seed", type=nonneg_int, default=0)
    rn.add_argument("--split", choices=("train", "test"), default="train")
    rn.add_argument("--out", type=Path, default=None, help="episode file (default TASK_SEED_run.h5)")
    rn.add_argument("--obs", choices=("state", "rgb"), default="rgb", help="streams saved with --policy oracle")
    rn.add_argument("--max-call-s", type=float, default=30.0, help="time the policy gets per call")

    b = sub.add_parser("bench", help="speed and resource figures")
    b.add_argument("what", choices=("recording", "annotate", "inference"),
                   help="recording: demo and live-recording speed; annotate: opening and scrubbing a long episode; "
                        "inference: ms per action chunk and stalls during run")
    b.add_argument("--policy", default=None, help="bench inference: a trained policy instead of the defaults")
    b.add_argument("--planner", default=None, help="bench inference: ms per next call of a planner run")
    b.add_argument("--json", action="store_true")
    b.add_argument("--seconds", type=float, default=60.0, help="length of the synthetic recording")
    return p


def parse_args(argv: list[str]):
    """Parse a command line; raises UserError with one line on bad input."""
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        args = parse_args(argv)
        if args.command is None or args.command in GUI_COMMANDS or _is_gui_bench(args):
            raise UserError("the desktop app is started by main.py (python main.py gui)")
        return _dispatch(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _is_gui_bench(args) -> bool:
    return args.command == "bench" and args.what == "annotate"


def is_gui_command(argv: list[str]) -> bool:
    """Commands that need Qt widgets; main.py hands these to widgets/launcher.py."""
    return not argv or argv[0] in GUI_COMMANDS or argv[:2] == ["bench", "annotate"]


def _dispatch(args) -> int:
    from recorders.episode_file import EpisodeError
    from recorders.task_suite import TaskError

    try:
        if args.command == "tasks":
            from app.task_listing import print_tasks

            return print_tasks()
        if args.command == "record":
            from app.record_command import run_record

            return run_record(args)
        if args.command == "inspect":
            from app.inspect_command import run_inspect

            return run_inspect(args.episode, as_json=args.json)
        if args.command == "segment":
            from app.inspect_command import run_segment

            return run_segment(args.path)
        if args.command == "check":
            from app.inspect_command import run_check

            return run_check(args.program)
        if args.command == "train":
            from app.train_command import run_train_planner, run_train_policy

            return run_train_policy(args) if args.model == "policy" else run_train_planner(args)
        if args.command == "run":
            from app.run_command import run_run

            return run_run(args)
        if args.command == "eval":
            from app.eval_command import run_eval

            return run_eval(args)
        if args.command == "bench" and args.what == "inference":
            from app.bench_inference import run_bench_inference

            return run_bench_inference(args)
        if args.command == "bench":
            from app.bench import run_bench

            return run_bench(args)
    except (EpisodeError, TaskError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
            PermissionError) as e:
        raise UserError(_one_line(e)) from None
    raise UserError(f"unknown command {args.command!r}")


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename:
        return f"{e.strerror or type(e).__name__}: {e.filename}"
    return " ".join(str(e).split()) or type(e).__name__
