"""`python main.py record --program FILE`: a written program run on a workcell as many times as asked,
each run one episode labelled by its calls: scripted demonstrations on a real arm, the paper's idea
applied to real hardware.

    FILE --check (models/program_check.py, against the workcell's object and target names)--> calls
    open the workcell as --robot / --camera / --objects say (app/workcell_setup.py)
    per episode: [reset pause] -> recorders/demo_recorder.record_program -> EPISODE.h5 -> [verdict]

A real arm (franky) keeps its workcell open and pauses between episodes for the operator to reset the
scene (Enter on a terminal, or --reset-wait seconds), then asks whether the take succeeded (y / n /
Enter for unknown). A simulated workcell lays out a fresh scene per episode (--scene-task's layout for
seeds from --seed) and needs no pause. The objects come from the workcell's perception on a real arm,
and from the simulator or its perception (--objects perceived) in simulation.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

from app.errors import UserError

PROMPT_RESET = "reset the scene for episode {i} of {n}, then press Enter (Ctrl+C stops) "


def read_program(path: Path) -> str:
    if not path.is_file():
        raise UserError(f"no such program file: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a UTF-8 text file") from None


def checked_calls(source: str, names: list[str], where: str):
    """The program's calls, checked as `check` does and against the workcell's `names`."""
    from models.program_check import check_program, parse_program

    issues = check_program(source, objects=names)
    if issues:
        first = issues[0]
        more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
        hint = "" if names else " (the workcell knows no objects: teach them in Record first)"
        raise UserError(f"{where}:{first.line}: {first.message}{more}{hint}")
    return parse_program(source, objects=names)


def run_record_program(args, ask: Callable[[str], str] = input) -> int:
    from app.workcell_setup import default_setup, is_simulated, open_setup_workcell
    from recorders.arms.base import ArmError
    from recorders.demo_recorder import record_program
    from recorders.task_suite import make_instance, task_def

    source = read_program(args.program)
    instruction = " ".join((args.instruction or "").split()) or f"run {args.program.stem}"
    simulated = is_simulated(args.robot)
    try:
        setup = default_setup(args.robot, args.data, args.camera, args.objects)
    except ValueError as e:
        raise UserError(str(e)) from None
    if simulated:
        task_def(args.scene_task)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    interactive = sys.stdin.isatty() and args.reset_wait is None
    saved = 0
    cell = None
    try:
        for i in range(args.episodes):
            if simulated:
                spec = make_instance(args.scene_task, args.seed + i, args.split).scene
                cell = _open(open_setup_workcell, args, spec, setup)
            elif cell is None:
                cell = _open(open_setup_workcell, args, None, setup)
            names = [*cell.spec.object_names, *cell.spec.zone_names]
            calls = checked_calls(source, names, str(args.program))
            if not simulated:
                _reset_pause(i, args.episodes, interactive, args.reset_wait, ask)
            path = _free_path(out, args.program.stem)
            judge = (lambda failure: _ask_verdict(ask)) if interactive and not simulated else None
            r = record_program(cell, calls, path, instruction, args.obs, judge=judge,
                               video_quality=getattr(args, "video_quality", None))
            saved += r.frames > 0
            verdict = {True: "ok", False: "FAILED", None: "success unknown"}[r.success]
            print(f"{r.path}  {verdict}  {r.frames} frames, {r.episode_seconds:.1f} s"
                  + (f"  ({r.failure})" if r.failure else ""))
            _print_faults(r.path)
            if simulated:
                cell.close()
                cell = None
    except ArmError as e:
        raise UserError(f"--robot {args.robot}: {' '.join(str(e).split())}") from None
    except KeyboardInterrupt:
        print(f"stopped after {saved} episode(s)", file=sys.stderr)
        return 130
    finally:
        if cell is not None:
            cell.close()
    return 0


def _open(opener, args, spec, setup):
    try:
        return opener(args.robot, spec, 10.0, args.robot_ip, setup)
    except ValueError as e:
        raise UserError(str(e)) from None


def _reset_pause(i: int, n: int, interactive: bool, wait_s: float | None, ask) -> None:
    if interactive:
        ask(PROMPT_RESET.format(i=i + 1, n=n))
    elif wait_s:
        print(f"episode {i + 1} of {n} starts in {wait_s:g} s: reset the scene", file=sys.stderr)
        time.sleep(wait_s)


def _ask_verdict(ask) -> bool | None:
    answer = ask("did the take succeed? [y]es / [n]o / Enter: not sure ").strip().lower()
    return True if answer.startswith("y") else False if answer.startswith("n") else None


def _free_path(out: Path, stem: str) -> Path:
    from app.recording import next_episode_path

    return next_episode_path(out, stem)


def _print_faults(path: Path) -> None:
    from recorders.episode_file import open_episode

    with open_episode(path) as ep:
        for fault in ep.faults:
            print(f"  {fault['stream']} at {fault['t']:.1f} s: {fault['text']}", file=sys.stderr)
