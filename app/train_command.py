"""`python main.py train policy|planner ...`: the diffusion policy's or the planner's training run.

Parses nothing itself (app/cli.py does); turns the arguments into the trainer's options, shows tqdm
progress with loss and ETA, and prints where the run and its final policy are. Ctrl+C stops the
run cleanly: a checkpoint is written and `--resume` continues from it.
"""
from __future__ import annotations

import signal
import threading

from app.cli import UserError


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
