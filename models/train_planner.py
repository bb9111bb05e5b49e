"""Training the planner: one run folder, resumable, with held-out next-call accuracy.

    PlannerTrainOptions -> episodes (labels as edited + memory calls: models/planner_data)
        -> Planner.scratch (tokenizer trained on the corpus) or Planner.from_base (LoRA)
        -> examples (query + answer tokens) -> seeded batches -> AdamW + warmup/cosine LR
        -> metrics.jsonl, checkpoints/step_NNNNNN/, final/ (+ validation.json with --val)

Run folder (only the main process writes; `accelerate launch main.py train planner ...` for several GPUs):
```
options.json                 the options of the latest invocation
metrics.jsonl                {"event": "started"|"resumed"|"stopped"|"finished"|"validation", ...} and one line
                             per logged step: step, loss, lr, samples_per_s, elapsed_s, eta_s
checkpoints/step_NNNNNN/     Planner.save (the weights or adapters, processor, planner.json) plus
                             trainer_state.safetensors (optimiser moments) and trainer_state.json
final/                       the planner when all steps are done
validation.json              next-call accuracy and program exact match on the --val episodes
```
Batches are functions of (seed, step), so resuming continues the same sequence. Nothing is pickled.
"""
from __future__ import annotations

import json
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from models.colour_swaps import with_colour_swaps
from models.instruction_canon import training_templates
from models.instruction_check import known_instructions
from models.instruction_variants import variants
from models.planner import Planner
from models.planner_config import MODEL_OPTIONS, TINY, PlannerConfig, PlannerTrainOptions
from models.planner_data import PlannerStep, SceneNames, load_steps, prompt_text
from models.planner_files import check_base
from models.planner_grammar import CallVocabulary
from models.run_folder import (CHECKPOINTS, FINAL, METRICS_FILE, OPTIONS_FILE, STATE_JSON, MetricsLog,
                               latest_checkpoint, load_optimizer, make_accelerator, optimizer_tensors,
                               starting_checkpoint, write_json)
from models.scene_facts import CameraView, facts_for, front_view
from models.train_policy import find_episodes, select_episodes

MAX_BALANCE = 8  # balance_tasks: a rare task gets at most this many times its own examples
STATE_TENSORS = "trainer_state.safetensors"
STATE_FORMAT = "code2act-planner-trainer"
VALIDATION_FILE = "validation.json"


@dataclass
class PlannerTrainResult:
    out: Path
    step: int
    stopped: bool
    final: Path | None
    metrics: dict
    validation: dict | None


def _episodes(data: Sequence[str], tasks, edited_only: bool) -> tuple[list[Path], list[str]]:
    paths = find_episodes(data)
    if not paths:
        raise ValueError(f"no episodes (*.h5) found in {', '.join(data) or 'no data'}")
    return select_episodes(paths, tasks, edited_only)


def with_rephrasings(steps: list[PlannerStep], k: int, seed: int) -> list[PlannerStep]:
    """`steps` plus, for each, k copies whose instruction is rephrased (models/instruction_variants.py)."""
    return augmented(steps, k, 0, seed)


def balance_factors(steps: Sequence[PlannerStep], limit: int = MAX_BALANCE) -> list[int]:
    """Per step, how many times as many examples its task gets so that every task counts about as many
    demonstrations as the commonest (at most `limit` times; steps of no known task: 1). A
    demonstration is counted by its first step (the one with no history)."""
    counts = Counter(s.task_id for s in steps if s.task_id and not s.history)
    top = max(counts.values(), default=0)
    return [min(limit, max(1, round(top / counts[s.task_id]))) if counts.get(s.task_id) else 1 for s in steps]


def augmented(steps: list[PlannerStep], rephrasings: int, colour_swaps: int, seed: int,
              balance: bool = False) -> list[PlannerStep]:
    """`steps`, then `rephrasings` copies of each with its instruction rephrased, then `colour_swaps`
    copies of each with its colours permuted in words and pixels (models/colour_swaps.py), each told
    in one of the step's phrasings. `balance`: a task with fewer examples gets proportionally more
    colour-swapped copies (balance_factors), or, without swaps, repeats of its steps."""
    rng = np.random.default_rng(seed)
    phrasings = [[replace(s, task=v) for v in variants(s.task, rephrasings, rng)] if rephrasings else []
                 for s in steps]
    factors = balance_factors(steps) if balance else [1] * len(steps)
    swaps = with_colour_swaps(steps, phrasings, [colour_swaps * f for f in factors], rng) if colour_swaps else []
    repeats = [] if colour_swaps else [s for s, f in zip(steps, factors) for _ in range(f - 1)]
    return steps + [p for ps in phrasings for p in ps] + swaps + repeats


def _corpus(steps: list[PlannerStep], memory: bool, seen: Sequence[str | None] | None = None) -> list[str]:
    """The tokenizer's corpus: each step's query and answer; `seen`: each step's facts line, if any."""
    seen = seen if seen is not None else [None] * len(steps)
    return [prompt_text(s.task, s.history, s.memory_keys, memory, seen=line) + s.target for s, line in zip(steps, seen)]


def facts_lines(steps: Sequence[PlannerStep], camera: dict | None) -> list[str | None]:
    """Each step's facts line read from its image (models/scene_facts.py): read once, for the corpus
    and for the examples."""
    view = CameraView.from_dict(camera) if camera else None
    return [facts_for(s.image, s.names, view) if s.image is not None and s.names else None for s in steps]


def evaluate_steps(planner: Planner, steps: list[PlannerStep], scenes: list[SceneNames],
                   episode_of: list[int]) -> dict:
    """Next-call accuracy (teacher forcing: the recorded history) and whole-program exact match."""
    right_per_episode: dict[int, list[bool]] = {}
    per_function: dict[str, list[int]] = {}
    for step, ep in zip(steps, episode_of):
        ok = planner.predict_step(step, scenes[ep]) == step.target
        right_per_episode.setdefault(ep, []).append(ok)
        f = per_function.setdefault(step.target.split("(")[0], [0, 0])
        f[0] += ok
        f[1] += 1
    n = len(steps)
    right = sum(sum(v) for v in right_per_episode.values())
    exact = sum(all(v) for v in right_per_episode.values())
    return {"steps": n, "next_call_accuracy": right / n if n else 0.0, "episodes": len(right_per_episode),
            "program_exact_match": exact / len(right_per_episode) if right_per_episode else 0.0,
            "per_function": {k: {"calls": v[1], "accuracy": v[0] / v[1]} for k, v in sorted(per_function.items())}}


def load_eval_steps(data: Sequence[str], tasks=None) -> tuple[list[PlannerStep], list[SceneNames], list[int], list[str]]:
    """Steps of held-out episodes with, per step, the index of its episode's scene."""
    paths, dropped = _episodes(data, tasks, False)
    steps, episode_of, scenes, skipped = [], [], [], list(dropped)
    for p in paths:
        s, sk, sc = load_steps([p])
        skipped += sk
        if s:
            episode_of += [len(scenes)] * len(s)
            scenes += sc
            steps += s
    return steps, scenes, episode_of, skipped


def _save_checkpoint(folder: Path, planner: Planner, optimizer, scheduler, step: int, elapsed_s: float) -> Path:
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    planner.save(tmp)
    tensors, opt_meta = optimizer_tensors(optimizer)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / STATE_TENSORS))
    write_json(tmp / STATE_JSON, {"format": STATE_FORMAT, "step": step, "elapsed_s": elapsed_s,
                                   "optimizer": opt_meta, "lr_scheduler": scheduler.state_dict()})
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def _build_planner(options: PlannerTrainOptions, steps: list[PlannerStep], checkpoint: Path | None,
                   recorded: Sequence[str] = (), camera: dict | None = None,
                   seen: Sequence[str | None] | None = None) -> Planner:
    """A new planner for `steps` (augmented), or the checkpoint's; `recorded`: the episodes' own
    instructions; `camera`: their front camera's view and `seen` each step's facts line (models/scene_facts.py)."""
    if checkpoint is not None:
        planner = Planner.load(checkpoint)
        if options.base:  # LoRA adapters load frozen; train them again
            for name, p in planner.model.named_parameters():
                p.requires_grad = "lora_" in name
        return planner
    config = PlannerConfig(memory=options.memory, lora_rank=options.lora_rank,
                           calls=CallVocabulary.from_programs([s.target for s in steps]),
                           known=known_instructions(s.task for s in steps),
                           templates=training_templates(recorded), scene_facts=options.scene_facts,
                           camera=camera, **(TINY if options.tiny else {}))
    if options.base:
        return Planner.from_base(options.base, config)
    return Planner.scratch(config, _corpus(steps, options.memory, seen))


def train_planner(options: PlannerTrainOptions, progress: Callable[[int, int, dict], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, report: Callable[[str], None] | None = None
                  ) -> PlannerTrainResult:
    """Train (or resume) a planner run; ValueError with a one-line reason when it cannot start.
    `report(line)` is told, on the main process, each episode that could not be used and why."""
    from transformers import get_cosine_schedule_with_warmup

    out = Path(options.out)
    checkpoint = starting_checkpoint(options, PlannerTrainOptions.from_dict, MODEL_OPTIONS)
    if options.base:  # refused before the episodes are read: custom code, pickles, broken weights
        check_base(options.base)
    paths, dropped = _episodes(options.data, options.tasks, options.edited_only)
    steps, skipped, _ = load_steps(paths)
    if not steps:
        reasons = dropped + skipped
        raise ValueError(f"no planner steps in {len(paths)} episodes" + (f"; e.g. {reasons[0]}" if reasons else ""))
    recorded = [s.task for s in steps]
    steps = augmented(steps, options.rephrasings, options.colour_swaps, options.seed, options.balance_tasks)
    # LLaVA leaves parts of its vision tower unused (features come from a layer before the last norm)
    accelerator = make_accelerator(options.device, options.mixed_precision, unused_parameters=True)
    device, main = accelerator.device, accelerator.is_main_process
    if main and report is not None:  # the unusable ones; those the filters left out are only counted
        for reason in skipped:
            report(f"skipped {reason}")
    rank, world = accelerator.process_index, accelerator.num_processes
    torch.manual_seed(options.seed)
    camera = next((v for v in map(front_view, paths) if v is not None), None) if options.scene_facts else None
    seen = facts_lines(steps, camera) if options.scene_facts else [None] * len(steps)
    planner = _build_planner(options, steps, checkpoint, recorded, camera, seen)  # the same on every process
    planner.model.to(device).train()
    examples = [planner.example(s, line) for s, line in zip(steps, seen)]
    params = [p for p in planner.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=options.learning_rate, weight_decay=options.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, min(options.warmup_steps, options.steps // 10),
                                                options.steps)
    step, elapsed_before = 0, 0.0
    if checkpoint is not None:
        from safetensors.torch import load_file

        meta = json.loads((checkpoint / STATE_JSON).read_text(encoding="utf-8"))
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"{checkpoint} is not a planner-trainer checkpoint")
        load_optimizer(optimizer, load_file(str(checkpoint / STATE_TENSORS), device=str(device)), meta["optimizer"])
        scheduler.load_state_dict(meta["lr_scheduler"])
        step, elapsed_before = int(meta["step"]), float(meta["elapsed_s"])
    model, optimizer = accelerator.prepare(planner.model, optimizer)  # DDP-wrapped with several processes

    if main:
        (out / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        write_json(out / OPTIONS_FILE, options.to_dict())
    log = MetricsLog(out / METRICS_FILE, main)
    n_params = sum(p.numel() for p in planner.model.parameters())
    log.write({"event": "resumed" if checkpoint else "started", "step": step, "steps": options.steps,
               "device": str(device), "processes": world, "episodes": len(paths) - len(skipped), "samples": len(examples),
               "skipped": len(skipped) + len(dropped), "parameters": n_params, "trainable": sum(p.numel() for p in params),
               "checkpoint": str(checkpoint) if checkpoint else None})

    started = window_start = time.monotonic()
    window_loss, window_n, last, stopped, saved_at = 0.0, 0, {}, False, step if checkpoint else -1

    def save(at: int) -> None:
        if main:
            _save_checkpoint(out / CHECKPOINTS / f"step_{at:06d}", planner, optimizer, scheduler, at,
                             elapsed_before + time.monotonic() - started)
        accelerator.wait_for_everyone()

    while step < options.steps:
        step += 1
        rng = random.Random(f"{options.seed}:{step}:{rank}")  # batches are a function of (seed, step, process)
        batch = planner.collate(rng.sample(examples, min(options.batch_size, len(examples))))
        batch = {k: v.to(device) for k, v in batch.items()}
        lr = scheduler.get_last_lr()[0]
        with accelerator.autocast():
            loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        window_loss += float(loss.detach())
        window_n += 1
        if step % options.log_every == 0 or step == options.steps:
            now = time.monotonic()
            rate = window_n / max(now - window_start, 1e-9)
            mean = float(accelerator.reduce(torch.tensor(window_loss / window_n, device=device), "mean"))
            last = {"step": step, "loss": mean, "lr": lr, "samples_per_s": rate * options.batch_size * world,
                    "elapsed_s": elapsed_before + now - started, "eta_s": (options.steps - step) / rate}
            log.write(last)
            window_loss, window_n, window_start = 0.0, 0, now
        if main and progress is not None:
            progress(step, options.steps, last)
        stop = should_stop() if should_stop is not None else False
        if world > 1:  # every process must leave the loop together
            stop = bool(accelerator.reduce(torch.tensor(float(stop), device=device), "sum") > 0)
        if stop and step < options.steps:
            stopped = True
            break
        if options.checkpoint_every and step % options.checkpoint_every == 0:
            save(step)
            saved_at = step
    if saved_at != step:
        save(step)
    final, validation = None, None
    if not stopped and main:
        planner.model.eval()
        final = planner.save(out / FINAL)
        if options.val:
            v_steps, v_scenes, v_episode_of, _ = load_eval_steps(options.val, options.tasks)
            validation = {"data": list(options.val), **evaluate_steps(planner, v_steps, v_scenes, v_episode_of)}
            write_json(out / VALIDATION_FILE, validation)
            log.write({"event": "validation", "step": step, **{k: v for k, v in validation.items()
                                                               if k != "per_function"}})
    elapsed = elapsed_before + time.monotonic() - started
    log.write({"event": "stopped" if stopped else "finished", "step": step, "elapsed_s": elapsed,
               "checkpoint": str(latest_checkpoint(out)), "final": str(final) if final else None})
    return PlannerTrainResult(out, step, stopped, final, last, validation)
