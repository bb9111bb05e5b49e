"""`python main.py train policy|planner ...`: the diffusion policy's or the planner's training run.

Declares the two `train` parsers (app/cli.py adds them to its own), derived from the options'
declarations (models/policy_config.TrainOptions, models/planner_config.PlannerTrainOptions: flag,
choices, default and help of every option come from there); turns the arguments into the trainer's
options, shows tqdm progress with loss and ETA, names every episode left out and why, and prints
where the run and its final model are. Ctrl+C stops the run cleanly: a checkpoint is written and
`--resume --out RUN` continues from it with the run's own saved options (options that shape the
model, the data or the seed may not change; steps, batch size, learning rate, device, workers and
checkpoint interval given again override the saved ones).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from app.errors import Parser, UserError, int_at_least
from models.option_fields import NO_SWITCH, default_of, options_of, resumed_options
from models.planner_config import PlannerTrainOptions
from models.policy_config import TrainOptions
from models.run_folder import OPTIONS_FILE


def widths(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated positive U-Net widths."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive widths such as 64,128,256, got {text!r}")
    return values


def names(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated names ("stack, swap" -> ("stack", "swap"))."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def shown_default(value) -> str | None:
    """How a default reads in --help; None for "nothing" (the help text says what then happens)."""
    if value is None or value == () or value == "":
        return None
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_option_arguments(parser: argparse.ArgumentParser, options_class) -> None:
    """One argument per option with a flag. Defaults are left out of the namespace (SUPPRESS), so
    it holds only what the user gave: the options class supplies the rest, and a resume can tell
    a repeated option from a default."""
    for name, o in options_of(options_class).items():
        if o.flag is None:
            continue
        kw = dict(dest=name, default=argparse.SUPPRESS, help=o.help)
        if o.switch is not NO_SWITCH:
            parser.add_argument(o.flag, action="store_const", const=o.switch, **kw)
            continue
        default = shown_default(default_of(options_class, name))
        kw["help"] += f" (default {default})" if default is not None else ""
        if o.kind == "int":
            kw["type"] = int_at_least(int(o.minimum), "non-negative" if o.minimum == 0 else "positive") \
                if o.minimum is not None else int
        else:
            kw["type"] = {"float": float, "names": names, "widths": widths}.get(o.kind, str)
        if o.kind == "paths":
            kw["nargs"] = "+"
        if o.choices:
            kw["choices"] = o.choices
        if o.metavar:
            kw["metavar"] = o.metavar
        parser.add_argument(o.flag, required=name == "out", **kw)


def option_argv(options) -> list[str]:
    """The arguments that make the parser give back `options` (the inverse of
    add_option_arguments): every option with a flag whose value is not its declared default."""
    argv = []
    for name, o in options_of(options).items():
        value = getattr(options, name)
        if o.flag is None or (value == default_of(type(options), name) and name != "out"):
            continue
        if o.switch is not NO_SWITCH:
            argv += [o.flag] if value == o.switch else []
        elif o.kind == "paths":
            argv += [o.flag, *map(str, value)]
        elif o.kind in ("names", "widths"):
            argv += [o.flag, ",".join(map(str, value))]
        else:
            argv += [o.flag, repr(float(value)) if o.kind == "float" else str(value)]
    return argv


def add_train_parsers(sub) -> None:
    """`train policy` and `train planner` on the CLI's subcommand parsers."""
    t = sub.add_parser("train", help="train a model on recorded episodes")
    tsub = t.add_subparsers(dest="model", required=True, parser_class=Parser)
    add_option_arguments(tsub.add_parser("policy", help="the call-conditioned diffusion policy"), TrainOptions)
    add_option_arguments(tsub.add_parser("planner", help="the code-writing VLM planner"), PlannerTrainOptions)


def options_from_args(options_class, args):
    """The options the arguments ask for: a new run from the given options and the declared
    defaults, or (--resume) the run's saved options with the given ones applied; UserError (one
    line) when they are not valid or conflict with the run's."""
    given = {name: getattr(args, name) for name in options_of(options_class) if hasattr(args, name)}
    try:
        if not given.get("resume"):
            if not given.get("data"):
                raise UserError("--data is required for a new run (a resumed run reads its own)")
            return options_class(**given)
        out = Path(given["out"])
        try:
            saved = options_class.from_dict(json.loads((out / OPTIONS_FILE).read_text(encoding="utf-8")))
        except OSError as e:
            raise UserError(f"cannot resume {out}: no readable {OPTIONS_FILE} ({e.strerror or e})") from None
        except ValueError as e:
            raise UserError(f"cannot resume {out}: {OPTIONS_FILE}: {str(e).splitlines()[0]}") from None
        return resumed_options(saved, given)
    except ValueError as e:
        raise UserError(str(e).splitlines()[0]) from None


def report_line(line: str) -> None:
    """A line for the user between tqdm's redraws (stderr: the Train workspace's log shows it)."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def run_train_policy(args) -> int:
    from models.train_policy import train_policy

    options = options_from_args(TrainOptions, args)
    result = _run_with_progress(train_policy, options, "train policy")
    if not _main_process():
        return 0
    if result.stopped:
        print(f"stopped at step {result.step}; checkpoint {result.checkpoint} (continue with --resume)")
    else:
        print(f"trained {result.step} steps; policy in {result.final}")
    return 0


def _main_process() -> bool:
    """False on the other processes of a multi-process run (accelerate launch / torchrun): one report."""
    from accelerate.state import PartialState

    return PartialState().is_main_process


def _run_with_progress(train, options, desc: str):
    """Run `train(options, progress=..., should_stop=...)` with a tqdm bar; Ctrl+C stops it cleanly
    (a checkpoint is written), a second Ctrl+C at once."""
    from tqdm import tqdm

    stop = threading.Event()
    bars = []  # made at the first step, so a run that cannot start prints only its error

    def progress(step: int, total: int, metrics: dict) -> None:
        if not bars:
            tqdm.monitor_interval = 0  # no monitor thread: a bar redrawn every step needs none, and it outlives the run
            bars.append(tqdm(total=total, initial=step - 1, unit="step", dynamic_ncols=True, desc=desc))
        bar = bars[0]
        bar.n = step
        if metrics:
            bar.set_postfix(loss=f"{metrics.get('loss', float('nan')):.4f}", lr=f"{metrics.get('lr', 0):.1e}",
                            refresh=False)
        bar.refresh()

    def on_interrupt(signum, frame) -> None:
        if stop.is_set():  # a second Ctrl+C ends the process at once
            raise KeyboardInterrupt
        stop.set()
        tqdm.write("stopping after this step (a checkpoint is written); Ctrl+C again to quit at once")

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        return train(options, progress=progress, should_stop=stop.is_set, report=report_line)
    except ValueError as e:
        raise UserError(str(e)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        for bar in bars:
            bar.close()


def run_train_planner(args) -> int:
    from models.train_planner import train_planner

    options = options_from_args(PlannerTrainOptions, args)
    result = _run_with_progress(train_planner, options, "train planner")
    if not _main_process():
        return 0
    if result.stopped:
        print(f"stopped at step {result.step}; continue with --resume")
        return 0
    print(f"trained {result.step} steps; planner in {result.final}")
    if result.validation:
        v = result.validation
        print(f"held-out: next-call accuracy {100 * v['next_call_accuracy']:.1f}% over {v['steps']} calls, "
              f"program exact match {100 * v['program_exact_match']:.1f}% over {v['episodes']} episodes")
    return 0
