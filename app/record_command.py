"""`python main.py record`: scripted oracle demonstrations into a folder of episode files
(`--program FILE`, a written program on any workcell, is app/record_program.py's).

Seeds run upwards from --seed until --episodes successful demonstrations exist (a failed oracle
run is skipped unless --keep-failed). Partial files left by a killed recording are recovered first,
and those killed before their first frame are removed. A finished episode is never overwritten:
running `record` again into the folder keeps each seed's episode (a successful one counts towards
--episodes, so an interrupted run resumes) and records only the seeds that have none.
"""
from __future__ import annotations

import sys
from pathlib import Path

from app.errors import UserError


def episode_path(out: Path, task: str, seed: int) -> Path:
    return out / f"{task}_{seed:04d}.h5"


def recover_leftovers(out: Path) -> list[Path]:
    """Turn partial files of killed recordings in `out` into episodes marked recovered; remove those
    with no frames (killed before their first flush: nothing to recover)."""
    from recorders.episode_file import EmptyEpisodeError, EpisodeError
    from recorders.episode_recovery import find_partials, recover_partial

    recovered = []
    for partial in find_partials(out):
        try:
            recovered.append(recover_partial(partial))
            print(f"recovered an interrupted recording: {recovered[-1]}", file=sys.stderr)
        except EmptyEpisodeError:
            partial.unlink()
            print(f"removed an interrupted recording with no frames: {partial}", file=sys.stderr)
        except EpisodeError as e:
            print(f"could not recover {partial}: {e}", file=sys.stderr)
    return recovered


def existing_take(path: Path, keep_failed: bool) -> tuple[bool, str] | None:
    """What is already recorded at `path` (None: nothing): whether it counts as a saved episode, and
    the line that says so."""
    from recorders.episode_file import PARTIAL_SUFFIX, EpisodeError, open_episode

    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    if partial.exists():  # recover_leftovers could not recover it
        return False, f"{partial} is an unfinished recording that could not be recovered; left as it is"
    if not path.exists():
        return None
    try:
        with open_episode(path) as ep:
            success = ep.success
    except (EpisodeError, OSError) as e:
        return False, f"{path} exists but cannot be read ({e}); kept as it is"
    verdict = {True: "ok", False: "FAILED", None: "success unknown"}[success]
    return success is True or keep_failed, f"{path}  {verdict}, already recorded: kept"


def run_record(args) -> int:
    from tqdm import tqdm

    from app.workcell_setup import default_setup, is_simulated, open_setup_workcell
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.cell.scene import CameraSettings
    from recorders.task_suite import make_instance, task_def

    if getattr(args, "program", None) is not None:
        from app.record_program import run_record_program

        return run_record_program(args)
    if not is_simulated(args.robot):
        raise UserError(f"--robot {args.robot} has no scenes of the task suite; record a written program on it "
                        "with --program FILE")
    task_def(args.task)  # unknown task: one-line error before anything is created
    setup = default_setup(args.robot, getattr(args, "data", None), getattr(args, "camera", None),
                          getattr(args, "objects", None))

    def open_cell(robot, spec, control_hz):
        return open_setup_workcell(robot, spec, control_hz, None, setup)
    try:
        cameras = CameraSettings(*args.camera_size, depth=args.depth)
    except ValueError as e:
        raise UserError(str(e)) from None
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UserError(f"--out must be a folder, but {out} is a file")
    out.mkdir(parents=True, exist_ok=True)
    recover_leftovers(out)
    options = RecordOptions(robot=args.robot, obs=args.obs, video_quality=getattr(args, "video_quality", None))

    saved, seed, attempts = 0, args.seed, 0
    max_attempts = 2 * args.episodes + 5
    bar = tqdm(total=args.episodes, unit="episode", desc=f"record {args.task}", file=sys.stderr,
               disable=None)
    while saved < args.episodes and attempts < max_attempts:
        path = episode_path(out, args.task, seed)
        existing = existing_take(path, args.keep_failed)
        if existing is not None:
            counts, line = existing
            saved += counts
            bar.update(int(counts))
            bar.write(line if counts else f"seed {seed}: {line}; trying the next seed")
            seed += 1
            continue
        inst = make_instance(args.task, seed, args.split, cameras)
        bar.set_postfix_str(f"seed {seed}")
        result = record_demo(inst, path, options, cell_factory=open_cell)
        attempts += 1
        seed += 1
        speed = result.episode_seconds / max(result.wall_seconds, 1e-9)
        if result.success or args.keep_failed:
            saved += 1
            bar.update(1)
            bar.write(f"{path}  {'ok' if result.success else 'FAILED'}  {result.frames} frames, "
                      f"{result.episode_seconds:.1f} s in {result.wall_seconds:.1f} s ({speed:.1f}x real time)")
        else:
            path.unlink(missing_ok=True)
            bar.write(f"seed {seed - 1}: oracle failed ({result.failure}); trying the next seed")
    bar.close()
    if saved < args.episodes:
        print(f"error: only {saved} of {args.episodes} episodes succeeded in {attempts} attempts", file=sys.stderr)
        return 1
    return 0
