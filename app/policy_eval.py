"""Low-level evaluation over seeds: success per task and per call type of a learned policy executing
the oracle programs (app/policy_rollout.py runs each episode), and its printed table.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from app.policy_rollout import DEFAULT_LEAD_STEPS, RolloutResult, describe_policy, rollout
from recorders.robot_api_spec import API


def evaluate(tasks: Sequence[str], episodes: int, policy, *, seed: int = 0, split: str = "train",
             robot: str = "sim", max_call_s: float = 30.0, out_dir: Path | None = None,
             lead_steps: int = DEFAULT_LEAD_STEPS, device: str = "cpu", fixed_noise: bool = True,
             on_episode: Callable[[RolloutResult], None] | None = None,
             cell_factory: Callable | None = None) -> dict:
    """Success per task and per call type (95% Wilson intervals) of `policy` (a checkpoint folder or
    a loaded DiffusionPolicy) executing the oracle programs of seeds seed .. seed + episodes - 1.
    With `out_dir`, every rollout is saved there as TASK_SEED.h5. `cell_factory(robot, spec, control_hz)`
    opens each workcell (default: the registry's, with the simulator's object poses). Returns a
    JSON-able dict."""
    from app.eval_results import wilson_interval
    from recorders.task_suite import make_instance, task_def

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    for t in tasks:
        task_def(t)
    if isinstance(policy, (str, Path)):
        from app.model_loading import load_policy

        name, policy = str(policy), load_policy(policy, device=device)
    else:
        name = describe_policy(policy)
    ci = lambda k, n: [round(v, 3) for v in wilson_interval(k, n)]  # noqa: E731
    rows, per_call, inference, stalls = [], {}, [], 0
    for task in tasks:
        results = []
        for s in range(seed, seed + episodes):
            path = None if out_dir is None else Path(out_dir) / f"{task}_{s:04d}.h5"
            r = rollout(make_instance(task, s, split), policy, path, max_call_s, robot=robot,
                        lead_steps=lead_steps, policy_name=name, fixed_noise=fixed_noise,
                        **({} if cell_factory is None else {"cell_factory": cell_factory}))
            results.append(r)
            inference += r.inference_ms
            stalls += r.stalls
            for c in r.calls:
                if API[c.name].kind == "motion":
                    entry = per_call.setdefault(c.name, [0, 0])
                    entry[0] += c.status == "ok"
                    entry[1] += 1
            if on_episode is not None:
                on_episode(r)
        wins = sum(r.success for r in results)
        rows.append({"task": task, "episodes": episodes, "successes": wins, "rate": wins / episodes,
                     "ci95": ci(wins, episodes),
                     "seeds": [{"seed": r.seed, "success": r.success, "failure": r.failure} for r in results]})
    calls = {k: {"calls": n, "ok": ok, "rate": ok / n, "ci95": ci(ok, n)} for k, (ok, n) in sorted(per_call.items())}
    ms = np.asarray(inference) if inference else np.zeros(1)
    return {"policy": name, "config": policy.config.to_dict() if hasattr(policy.config, "to_dict") else {},
            "split": split, "robot": robot, "max_call_s": max_call_s, "tasks": rows, "calls": calls,
            "inference_ms": {"chunks": len(inference), "mean": round(float(ms.mean()), 2),
                             "p95": round(float(np.percentile(ms, 95)), 2), "max": round(float(ms.max()), 2)},
            "stalls": stalls}


def report_text(result: dict) -> str:
    """The human-readable table of an `evaluate` result."""
    lines = [f"policy={result['policy']} split={result['split']} robot={result['robot']}",
             f"{'task':<11} {'success':>9}  95% interval"]
    for r in result["tasks"]:
        lines.append(f"{r['task']:<11} {r['successes']:>3}/{r['episodes']:<3} {100 * r['rate']:5.1f}%  "
                     f"[{100 * r['ci95'][0]:.0f}%, {100 * r['ci95'][1]:.0f}%]")
    for k, v in result["calls"].items():
        lines.append(f"{k:<11} {v['ok']:>3}/{v['calls']:<3} {100 * v['rate']:5.1f}%  "
                     f"[{100 * v['ci95'][0]:.0f}%, {100 * v['ci95'][1]:.0f}%]")
    inf = result["inference_ms"]
    lines.append(f"inference: {inf['chunks']} chunks, mean {inf['mean']} ms, p95 {inf['p95']} ms; "
                 f"stalls: {result['stalls']}")
    return "\n".join(lines)
