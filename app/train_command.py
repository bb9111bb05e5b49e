"""`python main.py train policy|planner ...`: the diffusion policy's or the planner's training run.

Declares the two `train` parsers (app/cli.py adds them to its own); turns the arguments into the trainer's options, shows tqdm
progress with loss and ETA, and prints where the run and its final policy are. Ctrl+C stops the
run cleanly: a checkpoint is written and `--resume` continues from it.
"""
from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from app.errors import Parser, UserError, nonneg_int, positive_int


def widths(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated positive U-Net widths."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive widths such as 64,128,256, got {text!r}")
    return values


def add_train_parsers(sub) -> None:
    """`train policy` and `train planner` on the CLI's subcommand parsers."""
    t = sub.add_parser("train", help="train a model on recorded episodes")
    tsub = t.add_subparsers(dest="model", required=True, parser_class=Parser)
    tp = tsub.add_parser("policy", help="the call-conditioned diffusion policy")
    tp.add_argument("--data", required=True, type=Path, nargs="+", help="episode folders or files")
    tp.add_argument("--out", required=True, type=Path, help="the run folder")
    tp.add_argument("--obs", choices=("state", "rgb"), default="state")
    tp.add_argument("--flat", action="store_true", help="condition on the task text only (the baseline)")
    tp.add_argument("--no-memory", action="store_true", help="withhold memory (the ablation)")
    tp.add_argument("--frame", choices=("anchor", "world"), default="anchor",
                    help="positions relative to the call's object or target (default) or to the robot base")
    tp.add_argument("--tasks", default=None, help="comma-separated task ids to train on (default all)")
    tp.add_argument("--edited-only", action="store_true", help="only episodes whose labels were edited")
    tp.add_argument("--steps", type=positive_int, default=3000)
    tp.add_argument("--batch-size", type=positive_int, default=64)
    tp.add_argument("--lr", type=float, default=2e-4)
    tp.add_argument("--seed", type=nonneg_int, default=0)
    tp.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    tp.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no")
    tp.add_argument("--checkpoint-every", type=nonneg_int, default=500)
    tp.add_argument("--workers", type=nonneg_int, default=0, help="data-loading processes")
    tp.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    tp.add_argument("--prediction", choices=("sample", "epsilon"), default="sample",
                    help="the U-Net predicts the clean action chunk (default; learns faster) or the noise")
    tp.add_argument("--down-dims", type=widths, default=(64, 128, 256), metavar="W1,W2,...",
                    help="U-Net channel widths per level (default 64,128,256; wider learns more, 128,256,512 "
                         "trains ~3x slower)")
    tp.add_argument("--tiny", action="store_true", help="a very small model (tests, smoke runs)")

    tl = tsub.add_parser("planner", help="the code-writing VLM planner")
    tl.add_argument("--data", required=True, type=Path, nargs="+", help="episode folders or files (with front camera)")
    tl.add_argument("--out", required=True, type=Path, help="the run folder")
    tl.add_argument("--val", type=Path, nargs="+", default=None,
                    help="held-out episodes: next-call accuracy and program exact match at the end")
    tl.add_argument("--base", type=Path, default=None,
                    help="a local pretrained image-text-to-text checkpoint to fine-tune with LoRA "
                         "(default: a tiny model trained from scratch)")
    tl.add_argument("--no-memory", action="store_true", help="withhold past calls and memory (the ablation)")
    tl.add_argument("--tasks", default=None, help="comma-separated task ids to train on (default all)")
    tl.add_argument("--edited-only", action="store_true", help="only episodes whose labels were edited")
    tl.add_argument("--steps", type=positive_int, default=2000)
    tl.add_argument("--batch-size", type=positive_int, default=32)
    tl.add_argument("--lr", type=float, default=None, help="default 1e-3 from scratch, 2e-4 with --base")
    tl.add_argument("--lora-rank", type=positive_int, default=8)
    tl.add_argument("--seed", type=nonneg_int, default=0)
    tl.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    tl.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no")
    tl.add_argument("--checkpoint-every", type=nonneg_int, default=500)
    tl.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    tl.add_argument("--tiny", action="store_true", help="a very small model (tests, smoke runs)")


def run_train_policy(args) -> int:
    from models.train_policy import TrainOptions, train_policy

    try:
        options = TrainOptions(
            data=tuple(str(d) for d in args.data), out=str(args.out), obs=args.obs,
            cond="flat" if args.flat else "call", memory=not args.no_memory,
            frame=args.frame, prediction=args.prediction, down_dims=args.down_dims,
            tasks=tuple(args.tasks.split(",")) if args.tasks else None, edited_only=args.edited_only,
            steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
            mixed_precision=args.mixed_precision, checkpoint_every=args.checkpoint_every,
            num_workers=args.workers, resume=args.resume, tiny=args.tiny,
            warmup_steps=min(500, max(0, args.steps // 10)))
    except ValueError as e:
        raise UserError(str(e)) from None

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
        return train(options, progress=progress, should_stop=stop.is_set)
    except ValueError as e:
        raise UserError(str(e)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        for bar in bars:
            bar.close()


def run_train_planner(args) -> int:
    from models.train_planner import PlannerTrainOptions, train_planner

    try:
        options = PlannerTrainOptions(
            data=tuple(str(d) for d in args.data), out=str(args.out), val=tuple(str(d) for d in args.val or ()),
            base=str(args.base) if args.base else None, memory=not args.no_memory,
            tasks=tuple(args.tasks.split(",")) if args.tasks else None, edited_only=args.edited_only,
            steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
            mixed_precision=args.mixed_precision, checkpoint_every=args.checkpoint_every, lora_rank=args.lora_rank,
            resume=args.resume, tiny=args.tiny)
    except ValueError as e:
        raise UserError(str(e)) from None
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
