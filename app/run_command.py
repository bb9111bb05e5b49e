"""`python main.py run` and `eval --policy RUN`: a planner (oracle or learned) with a policy (learned or scripted).

`run` executes one task instance in the simulated workcell and saves it as an episode; `eval` runs
many and reports success per task and per call type with 95% intervals. The learned policy does
each motion call (app/policy_rollout.py); memory and query calls run through the robot API.
"""
from __future__ import annotations

import sys
from pathlib import Path

from app.errors import UserError, print_json
from app.model_loading import load_planner, load_policy, model_ref


def run_policy_eval(args, tasks: list[str]) -> int:
    from tqdm import tqdm

    from app.policy_eval import evaluate, report_text

    policy = load_policy(args.policy)
    bar = tqdm(total=len(tasks) * args.episodes, unit="episode", desc="eval", file=sys.stderr, disable=None)
    result = evaluate(tasks, args.episodes, policy, seed=args.seed, split=args.split, robot=args.robot,
                      max_call_s=args.max_call_s, on_episode=lambda _r: bar.update(1))
    bar.close()
    result["policy"] = str(args.policy)
    if args.json:
        print_json(result)
    else:
        print(report_text(result))
    return 0


def run_run(args) -> int:
    from recorders.task_suite import TASKS, make_instance

    if args.task not in TASKS:
        raise UserError(f"--task names a task of the suite ({', '.join(TASKS)}); got {args.task!r}")
    inst = make_instance(args.task, args.seed, args.split)
    out = args.out or Path(f"{args.task}_{args.seed:04d}_run.h5")
    if out.exists():
        raise UserError(f"{out} already exists; choose another --out")
    print(f"{inst.instruction}  (seed {args.seed}, {args.split} split)")
    propose, models = None, ()
    if args.planner != "oracle":
        from app.planner_eval import planner_proposer

        propose = planner_proposer(load_planner(args.planner), inst.instruction, inst.scene)
        models = (model_ref("planner", args.planner),)
    if args.policy == "oracle":
        from recorders.demo_recorder import RecordOptions, record_demo

        r = record_demo(inst, out, RecordOptions(obs=args.obs), propose=propose, models=models)
        if r.frames == 0:  # e.g. a planner that said done() first: an episode needs at least one tick
            r.path.unlink(missing_ok=True)
            print(f"{'success' if r.success else 'failed: ' + str(r.failure)}; no motion, nothing saved")
            return 0
        if propose is not None:
            for code, status in r.calls:
                print(f"  {code:<50} {status}")
        print(f"{'success' if r.success else 'failed: ' + str(r.failure)}; saved {r.path}")
        return 0
    from app.policy_rollout import rollout

    policy = load_policy(args.policy, for_planner=propose is not None)
    result = rollout(inst, policy, out, max_call_s=args.max_call_s, policy_name=str(args.policy), seed=args.seed,
                     propose=propose, source="script" if propose is None else "planner",
                     models=(model_ref("policy", args.policy), *models))
    for c in result.calls:
        print(f"  {c.code:<45} {c.status:<7} {c.ticks:>4} ticks  {c.reason or ''}")
    ms = sorted(result.inference_ms)
    timing = f"inference {ms[len(ms) // 2]:.0f} ms median per chunk, {result.stalls} stalls" if ms else ""
    print(f"{'success' if result.success else 'failed'}; {timing}; saved {result.path}")
    return 0
