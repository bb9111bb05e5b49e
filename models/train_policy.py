"""Training the low-level diffusion policy: one run folder, resumable, multi-GPU through HF Accelerate.

Owns the training loop around `DiffusionPolicy.loss` (the policy never sees the optimiser) and the
run folder it writes. Data flows:

    TrainOptions -> episode paths (folders: every *.h5, `.trash` skipped) -> task / edited filters
        -> PolicyDataset (all segments, or interventions="only": those a takeover overlaps)
        -> per-step batches (seeded permutation per epoch, or with intervention_weight W > 1 seeded
           draws in which intervention samples weigh W and the others 1; sharded over processes)
        -> loss -> AdamW + warmup/cosine LR -> EMA -> metrics.jsonl, checkpoints/, final/

Run folder (only the main process writes):
```
options.json                 the TrainOptions of the latest invocation
metrics.jsonl                {"event": "started"|"resumed"|"stopped"|"finished", ...} and one line per
                             logged step: step, loss, diffusion, done, lr, samples_per_s, elapsed_s, eta_s
checkpoints/step_NNNNNN/     DiffusionPolicy.save of the EMA weights, plus trainer_state.safetensors
                             (raw weights, optimiser moments, EMA shadow) and trainer_state.json (step,
                             optimiser hyper-parameters, LR scheduler, EMA counters, grad scaler)
final/                       the EMA policy, when all steps are done
```
Resume is exact: batch order and diffusion noise are functions of (seed, step, process), so a run
stopped at step k and resumed gives the same weights as one that never stopped. Extending `steps`
on resume stretches the cosine tail to the new total. Nothing is pickled.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from models.diffusion_policy import DiffusionPolicy
from models.norm_stats import NORM_STATS_FILE, NormStats
from models.policy_config import MODEL_OPTIONS, TrainOptions
from models.policy_dataset import PolicyDataset
from models.run_folder import (CHECKPOINTS, FINAL, METRICS_FILE, OPTIONS_FILE, STATE_JSON, MetricsLog,
                               latest_checkpoint, load_optimizer, make_accelerator, optimizer_tensors,
                               starting_checkpoint, write_json)
from recorders.episode_file import EpisodeError, open_episode

STATE_TENSORS = "trainer_state.safetensors"
STATE_FORMAT = "code2act-policy-trainer"
TRASH = ".trash"


@dataclass(frozen=True)
class TrainResult:
    out: Path
    step: int  # the last step trained
    stopped: bool  # should_stop() ended the run early (a checkpoint was written)
    final: Path | None  # the EMA policy, when every step was done
    checkpoint: Path | None  # the newest checkpoint
    metrics: dict  # the last logged step line
    dataset: dict  # PolicyDataset.describe()


# ---- episodes ------------------------------------------------------------------------------------
def find_episodes(data) -> list[Path]:
    """Episode files named in `data`, folders expanded to every *.h5 below them (not in `.trash`)."""
    paths: list[Path] = []
    for item in map(Path, data):
        if item.is_dir():
            paths += sorted(p for p in item.rglob("*.h5") if TRASH not in p.relative_to(item).parts)
        elif item.is_file():
            paths.append(item)
        else:
            raise ValueError(f"training data {item} does not exist")
    return list(dict.fromkeys(paths))


def select_episodes(paths: list[Path], tasks=None, edited_only: bool = False) -> tuple[list[Path], list[str]]:
    """(kept paths, reasons for the dropped ones); unreadable files are kept for PolicyDataset to report."""
    kept, dropped = [], []
    for path in paths:
        try:
            with open_episode(path) as ep:
                task, edited = ep.task, ep.labels_edited
        except EpisodeError:
            kept.append(path)
            continue
        if tasks is not None and task not in tasks:
            dropped.append(f"{path}: task {task} not selected")
        elif edited_only and not edited:
            dropped.append(f"{path}: labels not edited")
        else:
            kept.append(path)
    return kept, dropped


# ---- batches -------------------------------------------------------------------------------------
def sample_weights(dataset: PolicyDataset, intervention_weight: float) -> torch.Tensor | None:
    """(N,) float64 per-sample draw weights: `intervention_weight` for the samples of intervention
    segments, 1 for the others; None when they would all be equal (plain permutations then)."""
    flags = torch.tensor([dataset.segments[s.segment].intervention for s in dataset.samples], dtype=torch.bool)
    if intervention_weight == 1 or flags.all() or not flags.any():
        return None
    return torch.where(flags, float(intervention_weight), 1.0).double()


class StepBatches(torch.utils.data.Sampler):
    """The sample indices of steps `first`..`last` for one process: global batch s is slice
    (s-1) mod per_epoch of an epoch's order seeded by (seed, epoch); process r takes every r-th index.
    The order is a permutation, or with `weights` (N,) n draws with replacement, sample i drawn with
    probability weights[i] / sum(weights) (as torch's WeightedRandomSampler; a function of the seed
    and the epoch, so a resumed run draws the same batches)."""

    def __init__(self, n: int, batch_size: int, seed: int, first: int, last: int, rank: int = 0, world: int = 1,
                 weights: torch.Tensor | None = None):
        self.n, self.seed, self.first, self.last, self.rank, self.world = n, seed, first, last, rank, world
        if weights is not None and weights.shape != (n,):
            raise ValueError(f"expected one weight per sample ({n}), got shape {tuple(weights.shape)}")
        self.cumulative = None if weights is None else torch.cumsum(weights.double(), 0)  # (N,)
        self.global_batch = batch_size * world
        self.per_epoch = max(1, n // self.global_batch)  # drop the ragged tail of each epoch

    def __len__(self) -> int:
        return max(0, self.last - self.first + 1)

    def __iter__(self):
        epoch, perm = -1, None
        for step in range(self.first, self.last + 1):
            e, j = divmod(step - 1, self.per_epoch)
            if e != epoch:
                epoch, perm = e, self._order(torch.Generator().manual_seed(self.seed + e))
            yield perm[j * self.global_batch:(j + 1) * self.global_batch][self.rank::self.world].tolist()

    def _order(self, generator: torch.Generator) -> torch.Tensor:
        """(N,) sample indices of one epoch."""
        if self.cumulative is None:
            return torch.randperm(self.n, generator=generator)
        u = torch.rand(self.n, generator=generator, dtype=torch.float64) * self.cumulative[-1]  # (N,)
        return torch.searchsorted(self.cumulative, u, right=True).clamp_(max=self.n - 1)


def _step_seed(seed: int, step: int, rank: int) -> int:
    """The diffusion noise of each step is seeded by the step, so a resumed run draws the same noise."""
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2 ** 63)


class _LossModule(nn.Module):
    """The policy's loss as forward(), so DistributedDataParallel sees (and syncs) the call."""

    def __init__(self, policy: DiffusionPolicy):
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.policy.loss(batch)


# ---- the run folder ------------------------------------------------------------------------------
def _save_checkpoint(folder: Path, policy: DiffusionPolicy, ema, optimizer, scheduler, scaler,
                     step: int, elapsed_s: float) -> Path:
    """Write `folder` atomically (a temporary folder renamed into place)."""
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    params = list(policy.parameters())
    ema.store(params)
    ema.copy_to(params)
    try:
        policy.save(tmp)
    finally:
        ema.restore(params)
    tensors = {f"model.{k}": v for k, v in policy.state_dict().items()}
    tensors |= {f"ema.{i}": p for i, p in enumerate(ema.shadow_params)}
    opt_tensors, opt_meta = optimizer_tensors(optimizer)
    tensors |= opt_tensors
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / STATE_TENSORS))
    ema_meta = {k: v for k, v in ema.state_dict().items() if k != "shadow_params"}
    write_json(tmp / STATE_JSON, {
        "format": STATE_FORMAT, "step": step, "elapsed_s": elapsed_s, "ema": ema_meta,
        "optimizer": opt_meta,
        "lr_scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None})
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def _load_checkpoint(folder: Path, policy: DiffusionPolicy, ema, optimizer, scheduler, scaler) -> dict:
    """Restore everything `_save_checkpoint` wrote; returns trainer_state.json."""
    from safetensors.torch import load_file

    meta = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    if meta.get("format") != STATE_FORMAT:
        raise ValueError(f"{folder} is not a policy-trainer checkpoint (format {meta.get('format')!r})")
    device = next(policy.parameters()).device
    tensors = load_file(str(folder / STATE_TENSORS), device=str(device))
    policy.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    shadow = [tensors[f"ema.{i}"] for i in range(len(ema.shadow_params))]
    ema.load_state_dict({**meta["ema"], "shadow_params": shadow})
    load_optimizer(optimizer, tensors, meta["optimizer"])
    scheduler.load_state_dict(meta["lr_scheduler"])
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    return meta


# ---- training ------------------------------------------------------------------------------------
def train_policy(options: TrainOptions, progress: Callable[[int, int, dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, report: Callable[[str], None] | None = None
                 ) -> TrainResult:
    """Train (or resume) a run; ValueError with a one-line reason when it cannot start.
    `progress(step, total, metrics)` runs on the main process after every step; `should_stop()` is
    asked every step and ends the run with a checkpoint; `report(line)` is told, on the main
    process, each episode (or segment) that could not be used and why."""
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    out = Path(options.out)
    checkpoint = starting_checkpoint(options, TrainOptions.from_dict, MODEL_OPTIONS)
    paths = find_episodes(options.data)
    if not paths:
        raise ValueError(f"no episodes (*.h5) found in {', '.join(options.data) or 'no data'}")
    paths, dropped = select_episodes(paths, options.tasks, options.edited_only)
    config = options.policy_config()
    dataset = PolicyDataset(paths, obs=config.obs, cond=config.cond, memory=config.memory,
                            obs_horizon=config.obs_horizon, pred_horizon=config.pred_horizon,
                            interventions=options.interventions, camera_frames=config.camera_frames,
                            goal=config.uses_goal)
    if options.interventions == "only" and not dataset.segments:
        raise ValueError(f"--interventions only: no usable segment of the {len(paths)} selected episode(s) overlaps "
                         "a takeover intervention (select supervised runs where the operator took over, or train "
                         "on all segments)")
    if len(dataset) == 0:
        reasons = dropped + [f"{p}: {r}" for p, r in dataset.skipped]
        raise ValueError(f"no training windows after filtering ({len(paths)} episodes kept"
                         + (f"; e.g. {reasons[0]}" if reasons else "") + ")")

    accelerator = make_accelerator(options.device, options.mixed_precision)
    main, rank, world = accelerator.is_main_process, accelerator.process_index, accelerator.num_processes
    if len(dataset) < world:
        raise ValueError(f"{len(dataset)} training windows cannot be shared by {world} processes")
    if main and report is not None:  # the unusable ones; those the filters left out are only counted
        for path, reason in dataset.skipped:
            report(f"skipped {path}: {reason}")
    norm = NormStats.load(checkpoint / NORM_STATS_FILE) if checkpoint else dataset.norm_stats(config.frame)
    torch.manual_seed(options.seed)
    policy = DiffusionPolicy(config, norm).to(accelerator.device).train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=options.warmup_steps,
                              num_training_steps=options.steps)
    ema = EMAModel(policy.parameters(), use_ema_warmup=True, power=options.ema_power)
    model, optimizer = accelerator.prepare(_LossModule(policy), optimizer)
    scaler = accelerator.scaler
    step, elapsed_before = 0, 0.0
    if checkpoint:
        meta = _load_checkpoint(checkpoint, policy, ema, optimizer, scheduler, scaler)
        step, elapsed_before = int(meta["step"]), float(meta["elapsed_s"])

    log = MetricsLog(out / METRICS_FILE, main)
    if main:
        (out / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        write_json(out / OPTIONS_FILE, options.to_dict())
        log.write({"event": "resumed" if checkpoint else "started", "step": step, "steps": options.steps,
                   "processes": world, "device": str(accelerator.device),
                   "checkpoint": str(checkpoint) if checkpoint else None, "filtered_out": len(dropped),
                   **{k: v for k, v in dataset.describe().items() if k in ("episodes", "samples", "segments",
                                                                             "intervention_segments", "skipped")}})
    sampler = StepBatches(len(dataset), options.batch_size, options.seed, step + 1, options.steps, rank, world,
                          sample_weights(dataset, options.intervention_weight))
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=options.num_workers,
                                         pin_memory=accelerator.device.type == "cuda")

    def save(at: int) -> Path | None:
        path = None
        if main:
            path = _save_checkpoint(out / CHECKPOINTS / f"step_{at:06d}", policy, ema, optimizer, scheduler,
                                    scaler, at, elapsed_before + time.monotonic() - started)
        accelerator.wait_for_everyone()
        return path

    started = window_start = time.monotonic()
    window = torch.zeros(4, device=accelerator.device)  # loss, diffusion, done sums, steps
    last, stopped, saved_at = {}, False, step if checkpoint else -1
    for batch in loader:
        step += 1
        batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
        torch.manual_seed(_step_seed(options.seed, step, rank))
        lr = scheduler.get_last_lr()[0]
        with accelerator.autocast():
            losses = model(batch)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(losses["loss"])
        optimizer.step()
        if not accelerator.optimizer_step_was_skipped:
            scheduler.step()
        ema.step(policy.parameters())
        window += torch.stack([losses["loss"].detach().float(), losses["diffusion"].float(),
                               losses["done"].float(), torch.ones((), device=window.device)])

        if step % options.log_every == 0 or step == options.steps:
            total = accelerator.reduce(window, "sum")
            now = time.monotonic()
            steps_per_s = float(total[3]) / world / max(now - window_start, 1e-9)
            last = {"step": step, "loss": float(total[0] / total[3]), "diffusion": float(total[1] / total[3]),
                    "done": float(total[2] / total[3]), "lr": lr,
                    "samples_per_s": steps_per_s * options.batch_size * world,
                    "elapsed_s": elapsed_before + now - started, "eta_s": (options.steps - step) / steps_per_s}
            log.write(last)
            if not math.isfinite(last["loss"]):
                raise ValueError(f"training diverged: the loss is {last['loss']} at step {step}; no checkpoint "
                                 "written after the last good one")
            window.zero_()
            window_start = now
        if main and progress is not None:
            progress(step, options.steps, last)
        stop = should_stop() if should_stop is not None else False
        if world > 1:  # every process must leave the loop together
            stop = bool(accelerator.reduce(torch.tensor(float(stop), device=accelerator.device), "sum") > 0)
        if stop and step < options.steps:
            stopped = True
            break
        if options.checkpoint_every and step % options.checkpoint_every == 0:
            save(step)
            saved_at = step

    if saved_at != step:
        save(step)
    final = None
    if not stopped and main:
        params = list(policy.parameters())
        ema.store(params)
        ema.copy_to(params)
        try:
            final = policy.save(out / FINAL)
        finally:
            ema.restore(params)
    accelerator.wait_for_everyone()
    elapsed = elapsed_before + time.monotonic() - started
    log.write({"event": "stopped" if stopped else "finished", "step": step, "elapsed_s": elapsed,
               "checkpoint": str(latest_checkpoint(out)), "final": str(final) if final else None})
    dataset.close()
    return TrainResult(out, step, stopped, final, latest_checkpoint(out), last, dataset.describe())
