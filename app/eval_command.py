"""`python main.py eval`: success rates per task (and per call type) with seeds and 95% intervals.

The oracle planner with the oracle (scripted) skills here; `--policy RUN` hands over to
app/run_command.py (the learned policy doing each call), `--planner RUN` to app/planner_eval.py. Episodes run in memory: nothing is written.
"""
from __future__ import annotations

import sys
from collections import Counter

from app.errors import UserError, print_json
from app.eval_results import wilson_interval


def run_eval(args) -> int:
    from tqdm import tqdm

    from recorders.call_log import CallAborted, CallLog, SkillFailed
    from recorders.robot_api import RobotAPI
    from recorders.task_suite import TASKS, TaskMonitor, make_instance, task_def
    from app.workcell_setup import setup_opener

    tasks = list(TASKS) if args.tasks == "all" else [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks:
        raise UserError("--tasks is empty")
    for t in tasks:
        task_def(t)
    if args.planner != "oracle":
        from app.planner_eval import run_planner_eval

        return run_planner_eval(args, tasks)
    if args.data:
        raise UserError("--data measures a learned planner: give --planner RUN")
    if args.policy != "oracle":
        from app.run_command import run_policy_eval

        return run_policy_eval(args, tasks)
    try:
        open_cell = setup_opener(args.robot, args.objects)
    except ValueError as e:
        raise UserError(str(e)) from None
    rows, call_ok, call_n = [], Counter(), Counter()
    bar = tqdm(total=len(tasks) * args.episodes, unit="episode", desc="eval", file=sys.stderr, disable=None)
    for task in tasks:
        seeds, wins = [], 0
        for seed in range(args.seed, args.seed + args.episodes):
            inst = make_instance(task, seed, args.split)
            with open_cell(args.robot, inst.scene) as cell:
                monitor = TaskMonitor(inst, cell.true_object_poses())
                log = CallLog(clock=cell.arm.time)
                api = RobotAPI(cell, log, on_tick=lambda cmd: monitor.watch(cell))
                try:
                    api.run_program(inst.program)
                    ok = monitor.success(cell.true_object_poses())
                except (SkillFailed, CallAborted):
                    ok = False
            for rec in log.records:
                call_n[rec.name] += 1
                call_ok[rec.name] += rec.status == "ok"
            wins += ok
            seeds.append({"seed": seed, "success": bool(ok)})
            bar.update(1)
        lo, hi = wilson_interval(wins, args.episodes)
        rows.append({"task": task, "episodes": args.episodes, "successes": wins, "rate": wins / args.episodes,
                     "ci95": [round(lo, 3), round(hi, 3)], "seeds": seeds})
    bar.close()
    per_call = {name: {"calls": call_n[name], "rate": call_ok[name] / call_n[name]} for name in sorted(call_n)}
    result = {"planner": args.planner, "policy": args.policy, "split": args.split, "robot": args.robot,
              "objects": args.objects, "tasks": rows, "calls": per_call}
    if args.json:
        print_json(result)
    else:
        print(f"planner={args.planner} policy={args.policy} split={args.split} robot={args.robot} "
              f"objects={args.objects}")
        print(f"{'task':<11} {'success':>9}  95% interval")
        for r in rows:
            print(f"{r['task']:<11} {r['successes']:>3}/{r['episodes']:<3} {100 * r['rate']:5.1f}%  "
                  f"[{100 * r['ci95'][0]:.0f}%, {100 * r['ci95'][1]:.0f}%]")
        print("per call type: " + ", ".join(f"{k} {100 * v['rate']:.0f}% of {v['calls']}" for k, v in per_call.items()))
    return 0
