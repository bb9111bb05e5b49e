"""`python main.py report generalisation --out DIR [--budget small|full] [--obs state|rgb] [--seed S] [--jobs N]`:
the paper's generalisation claim in one command, resumable.

Runs the plan of app/report_plan.py - record the demonstrations, train the hierarchy (learned planner
+ call-conditioned policy) and the flat policies (one multi-task, one per task) on the same episodes
with the same policy budget, evaluate them all on the same new seeds of the test split - and has
app/report_document.py write DIR/report.md and DIR/heldout.svg from the results.

Each step is a command line of this CLI, run in this process (`app.cli.main`, so the command the
report lists is exactly what ran) or, with `--jobs N`, as N processes at a time (`python main.py
ARGS`, one torch thread each; a step starts once every step whose output its command names is done,
so an eval waits for its models and a training for its demonstrations), with its output in
DIR/logs/STEP.log and, for an eval, its JSON in DIR/results/. A step is done when its marker
DIR/steps/STEP.json exists (written last, after its output was checked); a later run skips it, so an
interrupted report resumes where it stopped. A
training stopped by Ctrl+C leaves a checkpoint and resumes from it (`train ... --resume`); a
record keeps its finished episodes and records the interrupted one again; an eval starts again.
DIR/settings.json keeps the budget, observation kind and seed, and another report is refused in the
same folder. Progress goes to stderr, one line a step.

    args -> plan() -> for step (in order, or N at a time once its inputs are done):
        skip | app.cli.main(argv) or a `python main.py` process -> marker  ->  collect() -> write_report()
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from app.errors import UserError
from app.report_plan import BUDGETS, Count, Plan, Step, plan
from recorders.atomic_files import write_text_atomic

SETTINGS_FILE = "settings.json"
EXIT_INTERRUPTED = 130
MAIN = Path(__file__).resolve().parents[1] / "main.py"


class StepFailed(UserError):
    """A step's command failed; the message names the step, its log and the log's last line."""


def run_report_generalisation(args) -> int:
    from app.report_document import write_report

    budget = BUDGETS[args.budget]
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out must be a folder, but {out} is a file")
    try:
        the_plan = plan(budget, out, args.obs, args.seed)
    except ValueError as e:
        raise UserError(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, the_plan)
    try:
        run_steps(the_plan, out, args.jobs)
    except KeyboardInterrupt:
        say(f"interrupted: finished steps are kept; run the same command again to resume ({out})")
        return EXIT_INTERRUPTED
    counts = collect(the_plan)
    report = write_report(out, the_plan, counts, step_seconds(the_plan, out))
    print(report)
    return 0


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def settings_of(p: Plan) -> dict:
    settings = {"budget": p.budget.to_dict(), "obs": p.obs, "seed": p.seed, "trained": p.trained,
                "held_out": p.held_out}
    return json.loads(json.dumps(settings))  # as read back: tuples are lists


def check_settings(out: Path, p: Plan) -> None:
    """Write DIR/settings.json, or refuse when the folder holds a report of other settings (its steps
    would be skipped as done, and the numbers mixed)."""
    path, wanted = out / SETTINGS_FILE, settings_of(p)
    if path.exists():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"{path} cannot be read ({e}); give another --out") from None
        if found != wanted:
            differ = sorted(k for k in wanted if found.get(k) != wanted[k])
            raise UserError(f"{out} holds a report with other settings (they differ in {', '.join(differ)}; "
                            f"it has budget {(found.get('budget') or {}).get('name')}, obs {found.get('obs')}, "
                            f"seed {found.get('seed')}); give another --out")
        return
    _write_json(path, wanted)


def marker_of(out: Path, step: Step) -> Path:
    return out / "steps" / f"{step.slug}.json"


def run_steps(p: Plan, out: Path, jobs: int = 1) -> None:
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # the steps' bars need no monitor thread, and it would outlive them (as train's)
    for folder in ("steps", "logs", "results"):
        (out / folder).mkdir(exist_ok=True)
    n, number = len(p.steps), {step.slug: i for i, step in enumerate(p.steps, 1)}
    todo, done = [], set()
    for i, step in enumerate(p.steps, 1):
        if marker_of(out, step).exists():
            say(f"[{i}/{n}] skipped, done earlier: {step.title}")
            done.add(step.slug)
        else:
            todo.append(step)
    if jobs <= 1:
        for step in todo:
            t0 = _start(step, number[step.slug], n)
            run_step(step, out)
            _finish(step, out, number[step.slug], n, t0)
        return
    needs, failure = inputs_of(p.steps), None
    running: dict = {}
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="report-step") as pool:
        while running or (todo and failure is None):
            # an eval first: its cells are the report, and a long run stopped midway keeps the most of them
            ready = sorted((s for s in todo if needs[s.slug] <= done), key=lambda s: s.kind != "eval") \
                if failure is None else []
            for step in ready[:jobs - len(running)]:
                todo.remove(step)
                running[pool.submit(run_step, step, out, _run_process)] = (step, _start(step, number[step.slug], n))
            if not running:
                raise StepFailed(f"steps wait for inputs no step makes: {', '.join(s.slug for s in todo)}")
            for future in wait(running, return_when=FIRST_COMPLETED)[0]:
                step, t0 = running.pop(future)
                try:
                    future.result()
                except BaseException as e:  # nothing new starts; the running steps finish and are kept
                    failure = failure or e
                    continue
                _finish(step, out, number[step.slug], n, t0)
                done.add(step.slug)
    if failure is not None:
        raise failure


def inputs_of(steps) -> dict[str, set[str]]:
    """For each step, the steps whose output its command names (its demonstrations, its models)."""
    made = {str(step.output): step.slug for step in steps}
    return {step.slug: {made[a] for a in step.argv if a in made and made[a] != step.slug} for step in steps}


def _start(step: Step, i: int, n: int) -> float:
    say(f"[{i}/{n}] {step.title}: {step.command}")
    return time.monotonic()


def _finish(step: Step, out: Path, i: int, n: int, t0: float) -> None:
    seconds = time.monotonic() - t0
    _write_json(marker_of(out, step), {"command": step.command, "seconds": round(seconds, 1),
                                       "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    say(f"[{i}/{n}] done in {seconds:.1f} s")


def run_step(step: Step, out: Path, launch=None) -> None:
    """Run one step's command (in this process, or through `launch(argv, log, stdout)`: another
    process); StepFailed when it fails, KeyboardInterrupt when it was interrupted (a training
    stopped by Ctrl+C returns normally, but without its final model)."""
    launch = launch or _run_cli
    log = out / "logs" / f"{step.slug}.log"
    argv = list(step.argv)
    if step.kind == "record":
        drop_partials(step.output)
    if step.kind == "train":
        argv = training_argv(step)
        if "--resume" in argv:
            say(f"  resuming {step.output} from its newest checkpoint: python main.py {' '.join(argv)}")
    if step.kind == "eval":
        partial = step.output.with_name(step.output.name + ".partial")
        with open(partial, "w", encoding="utf-8") as stdout:
            rc = launch(argv, log, stdout)
        if rc == 0:
            try:
                json.loads(partial.read_text(encoding="utf-8"))
            except ValueError:
                raise StepFailed(f"{step.title}: the eval printed no JSON; see {partial}") from None
            os.replace(partial, step.output)
    else:
        rc = launch(argv, log, None)
    if rc == EXIT_INTERRUPTED:
        raise KeyboardInterrupt
    if rc != 0:
        raise StepFailed(f"{step.title} failed (exit {rc}): {_last_line(log)}; see {log}")
    if step.kind == "train" and not (step.output / "final").is_dir():
        raise KeyboardInterrupt  # stopped early (Ctrl+C): its checkpoint is resumed next time


def drop_partials(folder: Path) -> None:
    """Remove what a recording stopped midway left: `record` would recover it as an episode with
    its program cut short (success unknown), and the trainings would learn from it. Its seed is
    recorded again, whole."""
    from recorders.episode_recovery import find_partials

    for partial in find_partials(folder):
        partial.unlink()


def training_argv(step: Step) -> list[str]:
    """The step's command, or `--resume` from a checkpoint an interrupted run left. A run folder
    without a checkpoint (stopped before its first) is removed and trained anew."""
    from models.run_folder import holds_run, latest_checkpoint

    run = step.output
    if latest_checkpoint(run) is not None:
        return [*step.argv[:2], "--resume", "--out", str(run)]
    if holds_run(run):
        shutil.rmtree(run)
    return list(step.argv)


def _open_log(log: Path, argv: list[str]):
    """The step's log, opened for writing and headed by its command line."""
    err = open(log, "w", encoding="utf-8")
    err.write(f"$ python main.py {' '.join(argv)}\n")
    err.flush()
    return err


def _run_cli(argv: list[str], log: Path, stdout) -> int:
    from app.cli import main

    with _open_log(log, argv) as err, contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(stdout if stdout is not None else err):
        return main(argv)


def _run_process(argv: list[str], log: Path, stdout) -> int:
    """`python main.py ARGV` as its own process of one torch thread (the jobs share the cores);
    Ctrl+C reaches it too (the same process group), so a training checkpoints before it ends."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with _open_log(log, argv) as err:
        rc = subprocess.run([sys.executable, str(MAIN), *argv], stdout=stdout if stdout is not None else err,
                            stderr=err, env=env, cwd=MAIN.parent).returncode
    return EXIT_INTERRUPTED if rc in (-2, EXIT_INTERRUPTED) else rc


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
                 .splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "nothing was printed"


def collect(p: Plan) -> dict[tuple[str, str, str, int], Count]:
    """Each measure's count, by (table, task, system, demos), from the eval JSONs."""
    loaded: dict[Path, dict] = {}
    counts = {}
    for m in p.measures:
        key = (m.table, m.task, m.system, m.demos)
        if m.result is None:
            counts[key] = Count(0, p.budget.eval_episodes, ran=False)
            continue
        if m.result not in loaded:
            loaded[m.result] = json.loads(m.result.read_text(encoding="utf-8"))
        rows = {r["task"]: r for r in loaded[m.result]["tasks"]}
        if m.task not in rows:
            raise UserError(f"{m.result} has no row for {m.task}; remove it to evaluate again")
        counts[key] = Count(int(rows[m.task]["successes"]), int(rows[m.task]["episodes"]))
    return counts


def step_seconds(p: Plan, out: Path) -> dict[str, float]:
    """Seconds each step's command took when it ran (from its marker), by step slug."""
    seconds = {}
    for step in p.steps:
        try:
            seconds[step.slug] = float(json.loads(marker_of(out, step).read_text(encoding="utf-8"))["seconds"])
        except (OSError, ValueError, KeyError):
            pass
    return seconds


def _write_json(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1))
