"""`python main.py bench inference [--json]`: milliseconds per action chunk, and stalls during `run`;
with `--planner RUN`, milliseconds per next call of a planner instead, alone and with its runners-up
(models/planner.ALTERNATIVES best calls, as the Run view shows them).

Times `DiffusionPolicy.predict` (DDIM, batch 1) for the state and rgb configurations a new training
run gets (`trained_default`; weights untrained: the time does not depend on them), then runs one `stack` rollout of the
default state model at 10 Hz (6 s of its first call) and reports whether any control tick waited for inference. With
`--policy RUN`, the trained policy's own configuration is used instead.
"""
from __future__ import annotations

import statistics
import sys
import time

from app.errors import print_json

CHUNKS = 30


def _norm():
    import numpy as np

    from models.norm_stats import NormStats
    from models.policy_layout import ACTION_DIM, STATE_DIM

    return NormStats.from_arrays({"action": np.stack([-np.ones(ACTION_DIM), np.ones(ACTION_DIM)]),
                                  "obs_state": np.stack([-np.ones(STATE_DIM), np.ones(STATE_DIM)])})


def _batch(policy, size: int = 128) -> dict:
    import torch

    from models.call_encoding import MEMORY_DIM, CallEncoding
    from models.policy_layout import MAX_OBJECTS, STATE_DIM

    c = policy.config
    batch = {"obs_state": torch.zeros(1, c.obs_horizon, STATE_DIM), "call": torch.zeros(1, CallEncoding().dim),
             "memory": torch.zeros(1, MEMORY_DIM), "task": torch.zeros(1, dtype=torch.long),
             "object_mask": torch.ones(1, MAX_OBJECTS), "anchor": torch.zeros(1, 3)}
    for cam in policy.cameras:
        batch[cam] = torch.randint(0, 256, (1, c.obs_horizon, 3, size, size), dtype=torch.uint8)
    return batch


def chunk_latency_ms(policy, chunks: int = CHUNKS) -> dict:
    import torch

    batch = _batch(policy)
    policy.eval()
    policy.predict(batch)  # warm-up
    times = []
    for _ in range(chunks):
        t = time.perf_counter()
        policy.predict(batch, generator=torch.Generator().manual_seed(0))
        times.append(1000 * (time.perf_counter() - t))
    times.sort()
    return {"median_ms": round(statistics.median(times), 1), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
            "chunks": chunks, "parameters": sum(p.numel() for p in policy.parameters()),
            "inference_steps": policy.config.inference_steps}


def planner_latency_ms(planner, task: str = "swap", seed: int = 0, k: int = 1) -> dict:
    """ms per next call (its k best valid calls, scored exactly) along the oracle program of one
    episode, the history growing call by call, on that scene's front-camera image."""
    from models.planner_data import SceneNames, remembered_keys
    from recorders.task_suite import make_instance
    from recorders.cell.registry import open_workcell

    inst = make_instance(task, seed)
    names = SceneNames(tuple(inst.scene.object_names), tuple(inst.scene.zone_names))
    with open_workcell("sim", inst.scene) as cell:
        image, _ = cell.render("front")
    history: list[str] = []
    times = []
    for call in inst.program:
        t = time.perf_counter()
        planner.next_calls(image, inst.instruction, history, remembered_keys(history), names, k=k)
        times.append(1000 * (time.perf_counter() - t))
        history.append(call.code)
    times.sort()
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(times[-1], 1), "calls": len(times),
            "parameters": sum(p.numel() for p in planner.model.parameters()), "task": task, "k": k}


def run_bench_inference(args) -> int:
    import torch

    if args.planner:
        from app.model_loading import load_planner
        from models.planner import ALTERNATIVES

        planner = load_planner(args.planner)
        planner_latency_ms(planner, k=1)  # warm-up: the first forward pass and the grammars
        result = {"threads": torch.get_num_threads(), "planner": planner_latency_ms(planner, k=1),
                  "alternatives": planner_latency_ms(planner, k=ALTERNATIVES)}
        if args.json:
            print_json(result)
        else:
            for r in (result["planner"], result["alternatives"]):
                print(f"planner, {r['k']} best: {r['median_ms']} ms per next call (max {r['max_ms']} ms over the "
                      f"{r['calls']} calls of a {r['task']} episode, {r['parameters'] / 1e6:.2f}M parameters)")
        return 0

    from app.policy_rollout import DEFAULT_LEAD_STEPS, rollout
    from models.diffusion_policy import DiffusionPolicy
    from models.policy_config import trained_default
    from recorders.task_suite import make_instance

    result = {"threads": torch.get_num_threads()}
    if args.policy:
        from app.model_loading import load_policy

        models = {"policy": load_policy(args.policy)}
    else:
        models = {obs: DiffusionPolicy(trained_default(obs), _norm()) for obs in ("state", "rgb")}
    for name, policy in models.items():
        print(f"timing {name} chunks ...", file=sys.stderr)
        result[name] = chunk_latency_ms(policy)
    first = next(iter(models.values()))
    print("one stack rollout at 10 Hz ...", file=sys.stderr)
    # Untrained weights would stop at once (their termination head fires at random): keep them going
    # for the whole budget so every call streams chunks; a trained --policy runs as in `run`.
    threshold = 0.5 if args.policy else 2.0
    run = rollout(make_instance("stack", 0), first, None, max_call_s=6.0, done_threshold=threshold)
    result["rollout"] = {"model": next(iter(models)), "chunks": len(run.inference_ms), "stalls": run.stalls,
                         "stall_ms": round(run.stall_ms, 1),
                         "median_chunk_ms": round(statistics.median(run.inference_ms), 1) if run.inference_ms else None,
                         "budget_ms": 1000 * DEFAULT_LEAD_STEPS / 10.0}
    if args.json:
        print_json(result)
    else:
        for name in models:
            r = result[name]
            print(f"{name:>6} model: {r['median_ms']} ms per chunk (p95 {r['p95_ms']} ms, "
                  f"{r['parameters'] / 1e6:.1f}M parameters, DDIM {r['inference_steps']} steps)")
        ro = result["rollout"]
        print(f"rollout: {ro['chunks']} chunks, {ro['stalls']} ticks waited for inference (budget "
              f"{ro['budget_ms']:.0f} ms per chunk)")
    return 0

