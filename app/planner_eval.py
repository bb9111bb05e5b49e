"""Evaluating a learned planner: closed loop with the oracle skills (the paper's "VLM + Oracle") or
with a learned policy, and offline next-call accuracy on recorded episodes.

Closed loop, per episode: render the front camera, ask the planner for the next call given the
task, the calls made so far and the memory keys, validate it against the scene, execute it with the
scripted skill or the learned policy (source "planner"), until done() or MAX_CALLS; success comes
from simulator state.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from app.errors import UserError, print_json
from app.model_loading import load_planner, load_policy

MAX_CALLS = 20  # the longest oracle program (swap) has 9 calls
PHRASINGS = ("template", "paraphrase")  # the suite's own instructions, or held-out rephrasings of them
FRONT_CAMERA = "front"


@dataclass
class PlannedEpisode:
    task: str
    seed: int
    success: bool
    instruction: str = ""  # what the planner was asked
    program: list[str] = field(default_factory=list)  # the calls the planner made, in order
    oracle_program: list[str] = field(default_factory=list)
    failure: str | None = None

    @property
    def exact_match(self) -> bool:
        return self.program == self.oracle_program


class PlannerProposer:
    """`propose(api) -> Call` for RobotAPI.run_planned / proposals (which check it against the scene):
    the planner's next call given the front camera's frame now, the task, the calls made so far and
    the keys in memory. With `alternatives` k >= 1, `last_alternatives` holds that proposal's k best
    calls with their scores (models/planner.py ScoredCall), the call proposed first, all from the same
    forward pass, for the Run view; with 0 the planner is only asked for its one call (`next_call`)."""

    def __init__(self, planner, instruction: str, scene, alternatives: int = 0):
        from models.planner_data import SceneNames

        if alternatives < 0:
            raise ValueError(f"alternatives must be 0 (none kept) or more, got {alternatives}")
        self.planner, self.instruction, self.alternatives = planner, instruction, alternatives
        self.names = SceneNames(tuple(scene.object_names), tuple(scene.zone_names))
        self.last_alternatives: tuple = ()  # ScoredCall, best first; () before the first call or when not kept

    def __call__(self, api):
        from models.planner_data import remembered_keys
        from recorders.robot_api_spec import Call

        image, _depth = api.cell.render(FRONT_CAMERA)
        history = list(api.memory.history)
        query = (image, self.instruction, history, remembered_keys(history), self.names)
        if not self.alternatives:
            return Call.from_code(self.planner.next_call(*query))
        self.last_alternatives = self.planner.next_calls(*query, k=self.alternatives)
        return Call.from_code(self.last_alternatives[0].code)


def planner_proposer(planner, instruction: str, scene, alternatives: int = 0) -> PlannerProposer:
    """The planner as the proposer of a run's calls (PlannerProposer)."""
    return PlannerProposer(planner, instruction, scene, alternatives)


def _noting(propose, episode: PlannedEpisode):
    """`propose`, also writing each proposal into `episode.program`."""
    def noted(api):
        call = propose(api)
        episode.program.append(call.code)
        return call
    return noted


def plan_and_execute(inst, planner, robot: str = "sim", max_calls: int = MAX_CALLS) -> PlannedEpisode:
    """One episode of `planner` writing the program call by call, the scripted skills executing it
    (in memory: nothing is recorded)."""
    from recorders.call_log import CallAborted, CallLog, SkillFailed
    from recorders.robot_api import RobotAPI
    from recorders.task_suite import TaskMonitor
    from recorders.cell.registry import open_workcell

    episode = PlannedEpisode(inst.task.id, inst.seed, False, inst.instruction,
                             oracle_program=[c.code for c in inst.program])
    with open_workcell(robot, inst.scene) as cell:
        monitor = TaskMonitor(inst, cell.true_object_poses())
        api = RobotAPI(cell, CallLog(clock=cell.arm.time), on_tick=lambda cmd: monitor.watch(cell))
        try:
            api.run_planned(_noting(planner_proposer(planner, inst.instruction, inst.scene), episode), max_calls)
        except (SkillFailed, CallAborted) as e:
            episode.failure = str(e)
        episode.success = monitor.success(cell.true_object_poses())
    return episode


def plan_with_policy(inst, planner, policy, robot: str = "sim", max_call_s: float = 30.0,
                     max_calls: int = MAX_CALLS) -> PlannedEpisode:
    """One episode of `planner` writing the program, the learned `policy` executing each motion call."""
    from app.policy_rollout import rollout

    episode = PlannedEpisode(inst.task.id, inst.seed, False, inst.instruction,
                             oracle_program=[c.code for c in inst.program])
    r = rollout(inst, policy, None, max_call_s, robot=robot, source="planner", max_calls=max_calls,
                propose=_noting(planner_proposer(planner, inst.instruction, inst.scene), episode))
    episode.success, episode.failure = r.success, r.failure
    return episode


def evaluate_planner(tasks: Sequence[str], episodes: int, planner, *, policy=None, seed: int = 0,
                     split: str = "train", robot: str = "sim", max_call_s: float = 30.0, progress=None,
                     phrasing: str = "template") -> dict:
    """Success per task (95% Wilson intervals) and closed-loop program exact match of a planner with
    the oracle skills (`policy` None) or a learned policy, over seeds seed .. seed + episodes - 1.
    `phrasing` "paraphrase": each episode's instruction is one of the held-out phrasings of
    recorders/task_phrasings.py instead of its task's template (the scene and success check stay)."""
    from app.eval_results import wilson_interval
    from recorders.task_phrasings import paraphrase
    from recorders.task_suite import make_instance

    if phrasing not in PHRASINGS:
        raise ValueError(f"phrasing must be one of {', '.join(PHRASINGS)}, got {phrasing!r}")

    rows = []
    for task in tasks:
        results = []
        for s in range(seed, seed + episodes):
            inst = make_instance(task, s, split)
            if phrasing == "paraphrase":
                inst.instruction = paraphrase(inst)
            results.append(plan_and_execute(inst, planner, robot) if policy is None
                           else plan_with_policy(inst, planner, policy, robot, max_call_s))
            if progress is not None:
                progress(results[-1])
        wins = sum(r.success for r in results)
        rows.append({"task": task, "episodes": episodes, "successes": wins, "rate": wins / episodes,
                     "ci95": [round(v, 3) for v in wilson_interval(wins, episodes)],
                     "program_exact_match": sum(r.exact_match for r in results) / episodes,
                     "seeds": [{"seed": r.seed, "instruction": r.instruction, "success": r.success,
                                "program": r.program, "failure": r.failure} for r in results]})
    return {"split": split, "robot": robot, "phrasing": phrasing, "tasks": rows}


def run_planner_eval(args, tasks: list[str]) -> int:
    """`eval --planner RUN ...`: rollouts with the oracle skills, or `--data`: next-call accuracy."""
    from tqdm import tqdm

    planner = load_planner(args.planner)
    if args.data:
        return _offline(args, planner, tasks)
    policy = None if args.policy == "oracle" else load_policy(args.policy, for_planner=True)
    bar = tqdm(total=len(tasks) * args.episodes, unit="episode", desc="eval", file=sys.stderr, disable=None)
    result = evaluate_planner(tasks, args.episodes, planner, policy=policy, seed=args.seed, split=args.split,
                              robot=args.robot, max_call_s=args.max_call_s, progress=lambda _r: bar.update(1),
                              phrasing=getattr(args, "phrasing", "template"))
    bar.close()
    result = {"planner": str(args.planner), "policy": str(args.policy), **result}
    if args.json:
        print_json(result)
        return 0
    print(f"planner={args.planner} policy={args.policy} split={args.split} robot={args.robot} "
          f"phrasing={result['phrasing']}")
    print(f"{'task':<11} {'success':>9}  95% interval  program exact match")
    for r in result["tasks"]:
        print(f"{r['task']:<11} {r['successes']:>3}/{r['episodes']:<3} {100 * r['rate']:5.1f}%  "
              f"[{100 * r['ci95'][0]:.0f}%, {100 * r['ci95'][1]:.0f}%]   {100 * r['program_exact_match']:.0f}%")
    return 0


def _offline(args, planner, tasks: list[str]) -> int:
    from models.train_planner import evaluate_steps, load_eval_steps

    selected = None if args.tasks == "all" else tasks
    try:
        steps, scenes, episode_of, skipped = load_eval_steps([str(d) for d in args.data], selected)
    except ValueError as e:
        raise UserError(str(e)) from None
    if not steps:
        raise UserError("no planner steps in --data" + (f"; e.g. {skipped[0]}" if skipped else ""))
    result = {"planner": str(args.planner), "data": [str(Path(d)) for d in args.data],
              **evaluate_steps(planner, steps, scenes, episode_of), "skipped": skipped}
    if args.json:
        print_json(result)
    else:
        print(f"next-call accuracy {100 * result['next_call_accuracy']:.1f}% over {result['steps']} calls; "
              f"program exact match {100 * result['program_exact_match']:.1f}% over {result['episodes']} episodes")
        for name, v in result["per_function"].items():
            print(f"  {name:<10} {100 * v['accuracy']:5.1f}% of {v['calls']}")
    return 0
