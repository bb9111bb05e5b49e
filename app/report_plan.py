"""The generalisation report's plan: its budget, its steps and the cells its results fill.

Owns `Budget` (every number of the experiment in one frozen dataclass, printed into the report), the
budgets (`small`: a CI smoke run of minutes; `full`: the experiment, run by hand in about two hours
on a 2-core laptop; `large`: more tasks, steps and episodes), and `plan()`,
which turns a budget, the report folder, the policies' observation kind and the seed into:
- `Step`s: each one command line of this CLI (record, train, eval) with the path that holds its
  result; app/report_generalisation.py runs them in order and skips those already done;
- `Measure`s: which eval result (and which row of it) fills which cell of the report's tables, or,
  for a per-task flat policy of a held-out task with no demonstrations, that no such policy exists.

The task lists are read from recorders/task_suite.TASKS when the plan is made: the held-out
compositions are the tasks marked `held_out`, the trained tasks the budget's that the suite has.

    Budget, out, obs, seed -> plan() -> Plan(steps, measures) -> runner -> results/*.json -> document
"""
from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

SYSTEMS = ("hierarchy", "flat multi-task", "flat per-task")
HIERARCHY, FLAT_MULTI, FLAT_TASK = SYSTEMS
PHRASING_SETS = ("paraphrase", "paraphrase-b")  # `eval --phrasing`: the held-out phrasing sets, each a table
OBS_KINDS = ("state", "rgb")
DEMO_SEED = 1000  # demonstrations start at --seed + this; evaluation episodes at --seed (test split)
INCREMENT_SEED_GAP = 10_000  # each further batch of held-out demonstrations starts this many seeds on
PROGRAM = "python main.py"


@dataclass(frozen=True)
class Budget:
    """Every number of one run of the experiment."""
    name: str
    trained_tasks: tuple[str, ...]  # those the suite has are trained on (held-out ones never)
    demos_per_task: int  # oracle demonstrations of each trained task
    heldout_demos: tuple[int, ...]  # 0, then more demonstrations of each held-out composition: a training each
    camera_size: str  # recorded cameras (the planner's front camera; the rgb policies' two)
    tiny: bool  # `--tiny` models (smoke runs only)
    policy_steps: int  # optimiser steps of EVERY low-level policy: the hierarchy's and each flat one
    policy_batch: int  # training windows per step, the same for all of them
    planner_steps: int
    planner_batch: int
    colour_swaps: int  # planner: extra examples per call with its colours permuted
    rephrasings: int  # planner: extra examples per call with its instruction reworded
    eval_episodes: int  # episodes per cell, seeds --seed .. --seed + n - 1, test split
    max_call_s: float  # time the hierarchy's policy gets per call
    flat_max_call_s: float  # time per motion call a flat policy gets (its loop runs the whole episode)

    def __post_init__(self):
        for name in ("demos_per_task", "policy_steps", "policy_batch", "planner_steps", "planner_batch",
                     "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"budget {self.name}: {name} must be >= 1, got {getattr(self, name)}")
        levels = self.heldout_demos
        if not levels or list(levels) != sorted(set(levels)) or levels[0] != 0:
            raise ValueError(f"budget {self.name}: heldout_demos must rise from 0 (never seen), got {levels}")
        if not self.trained_tasks:
            raise ValueError(f"budget {self.name}: no trained tasks")

    def to_dict(self) -> dict:
        return asdict(self)


BUDGETS = {
    "small": Budget("small", ("pick_place", "stack", "swap"), demos_per_task=2, heldout_demos=(0, 1, 2),
                    camera_size="32x32", tiny=True, policy_steps=10, policy_batch=8, planner_steps=10,
                    planner_batch=8, colour_swaps=0, rephrasings=0, eval_episodes=2, max_call_s=2.0,
                    flat_max_call_s=4.0),
    # what `report generalisation` runs by default: 1 h 47 min on a 2-core laptop with --jobs 2 (measured). At
    # 1500 policy steps the call-conditioned policy's termination head never said a pick was finished (0/30)
    "full": Budget("full", ("pick_place", "stack", "swap"), demos_per_task=40, heldout_demos=(0, 5, 10),
                   camera_size="128x128", tiny=False, policy_steps=3000, policy_batch=64, planner_steps=1000,
                   planner_batch=32, colour_swaps=8, rephrasings=3, eval_episodes=10, max_call_s=20.0,
                   flat_max_call_s=30.0),
    # five trained tasks, twice the episodes: about six hours on a 2-core laptop
    "large": Budget("large", ("pick_place", "stack", "swap", "push", "sort"), demos_per_task=40,
                    heldout_demos=(0, 5, 10), camera_size="128x128", tiny=False, policy_steps=3000, policy_batch=64,
                    planner_steps=1500, planner_batch=32, colour_swaps=8, rephrasings=3, eval_episodes=20,
                    max_call_s=20.0, flat_max_call_s=30.0),
}


@dataclass(frozen=True)
class Step:
    kind: str  # record | train | eval
    slug: str  # names its marker and log files
    title: str  # what it is for, in a few words
    argv: tuple[str, ...]  # the command line after `python main.py`
    output: Path  # data folder, run folder, or the eval's JSON (the command's stdout)

    @property
    def command(self) -> str:
        """What a user types to redo this step."""
        text = f"{PROGRAM} {shlex.join(self.argv)}"
        return f"{text} > {shlex.quote(str(self.output))}" if self.kind == "eval" else text


@dataclass(frozen=True)
class Measure:
    """One cell: `system`'s success on `task` in `table` (trained, held-out, or a phrasing set) with
    `demos` of each held-out composition added, from row `task` of the eval JSON `result`, or None: no
    policy exists (0 successes, with a note)."""
    table: str
    task: str
    system: str
    demos: int
    result: Path | None


@dataclass(frozen=True)
class Count:
    """A cell's outcome: successes of episodes; `ran` False when no policy existed to run."""
    successes: int
    episodes: int
    ran: bool = True


@dataclass(frozen=True)
class Plan:
    budget: Budget
    obs: str
    seed: int
    trained: tuple[str, ...]
    held_out: tuple[str, ...]
    phrasings: tuple[tuple[str, tuple[str, ...]], ...]  # (phrasing set, the trained tasks it has phrasings for)
    steps: tuple[Step, ...]
    measures: tuple[Measure, ...]


def task_lists(budget: Budget) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]]:
    """(trained, held out, phrasings) as the suite and its phrasing sets have them now."""
    from recorders.task_phrasings import PHRASINGS, SECOND_PHRASINGS
    from recorders.task_suite import TASKS

    trained = tuple(t for t in budget.trained_tasks if t in TASKS and not TASKS[t].held_out)
    if not trained:
        raise ValueError(f"none of the budget's trained tasks ({', '.join(budget.trained_tasks)}) is in the suite")
    held_out = tuple(t for t, d in TASKS.items() if d.held_out)
    sets = dict(zip(PHRASING_SETS, (PHRASINGS, SECOND_PHRASINGS)))
    phrasings = tuple((name, tuple(t for t in trained if t in table)) for name, table in sets.items())
    return trained, held_out, tuple((name, tasks) for name, tasks in phrasings if tasks)


def increments(levels: tuple[int, ...]) -> list[tuple[int, int]]:
    """The batches of held-out demonstrations to record, as (first, last) demonstration numbers:
    (0, 5, 10) -> [(1, 5), (6, 10)]; level k trains on every batch up to k."""
    return [(lo + 1, hi) for lo, hi in zip(levels, levels[1:])]


def plan(budget: Budget, out: Path, obs: str = "state", seed: int = 0) -> Plan:
    if obs not in OBS_KINDS:
        raise ValueError(f"obs must be one of {', '.join(OBS_KINDS)}, got {obs!r}")
    trained, held_out, phrasings = task_lists(budget)
    data, runs, results = out / "data", out / "runs", out / "results"
    b, steps, measures = budget, [], []
    record = ("--seed", str(seed + DEMO_SEED), "--obs", "rgb", "--camera-size", b.camera_size)

    # ---- demonstrations: every trained task, and the held-out ones in batches
    for task in trained:
        steps.append(Step("record", f"record-{task}", f"{b.demos_per_task} demonstrations of {task}",
                          ("record", "--task", task, "--episodes", str(b.demos_per_task), "--out",
                           str(data / task), *record), data / task))
    batches: dict[str, list[Path]] = {t: [] for t in held_out}
    for i, (first, last) in enumerate(increments(b.heldout_demos)):
        for task in held_out:
            folder = data / f"{task}_{first}-{last}"
            batches[task].append(folder)
            start = seed + DEMO_SEED + INCREMENT_SEED_GAP * i
            steps.append(Step("record", f"record-{task}-{first}-{last}",
                              f"demonstrations {first}-{last} of {task}",
                              ("record", "--task", task, "--episodes", str(last - first + 1), "--out", str(folder),
                               "--seed", str(start), "--obs", "rgb", "--camera-size", b.camera_size), folder))

    # ---- training: per level, the planner, the hierarchy's policy and the multi-task flat policy on
    # the same episodes; a flat policy per task on that task's episodes alone. The hierarchy's policy
    # learns from the held-out demonstrations too: a tower's place on a stack of two is a motion the
    # trained tasks never show (measured: 1/10 towers without them, 2/10 with 5 of each)
    tiny = ("--tiny",) if b.tiny else ()
    policy = ("--obs", obs, "--steps", str(b.policy_steps), "--batch-size", str(b.policy_batch),
              "--seed", str(seed), *tiny)

    def train(kind: str, slug: str, title: str, folders, run: Path, *extra: str) -> None:
        schedule = policy if kind == "policy" else (
            "--steps", str(b.planner_steps), "--batch-size", str(b.planner_batch), "--colour-swaps",
            str(b.colour_swaps), "--rephrasings", str(b.rephrasings), "--seed", str(seed), *tiny)
        steps.append(Step("train", slug, title, ("train", kind, "--data", *map(str, folders), "--out", str(run),
                                                 *extra, *schedule), run))

    for task in trained:
        train("policy", f"train-flat-{task}", f"flat policy of {task} alone", [data / task], runs / f"flat_{task}",
              "--flat")
    for level_index, k in enumerate(b.heldout_demos):
        added = {t: batches[t][:level_index] for t in held_out}
        folders = [data / t for t in trained] + [f for t in held_out for f in added[t]]
        train("planner", f"train-planner-k{k}", f"planner, {k} demos of each held-out task", folders,
              runs / f"planner_k{k}")
        train("policy", f"train-policy-k{k}", f"hierarchy's policy, {k} demos of each held-out task", folders,
              runs / f"policy_k{k}")
        train("policy", f"train-flat-k{k}", f"multi-task flat policy, {k} demos of each held-out task", folders,
              runs / f"flat_k{k}", "--flat")
        if k:
            for task in held_out:
                train("policy", f"train-flat-{task}-k{k}", f"flat policy of {task} alone, {k} demos", added[task],
                      runs / f"flat_{task}_k{k}", "--flat")

    # ---- evaluation: new seeds of the test split, the same seeds for every system
    trials = ("--split", "test", "--episodes", str(b.eval_episodes), "--seed", str(seed), "--json")
    hier_time, flat_time = ("--max-call-s", f"{b.max_call_s:g}"), ("--max-call-s", f"{b.flat_max_call_s:g}")

    def evaluate(slug: str, title: str, tasks, models: tuple[str, ...], timing, *extra: str) -> Path:
        path = results / f"{slug}.json"
        steps.append(Step("eval", f"eval-{slug}", title, ("eval", *models, "--tasks", ",".join(tasks), *trials,
                                                         *timing, *extra), path))
        return path

    def hierarchy(k: int) -> tuple[str, ...]:
        return ("--planner", str(runs / f"planner_k{k}"), "--policy", str(runs / f"policy_k{k}"))

    base = 0  # the trained tasks are measured on the models that never saw a held-out task
    path = evaluate("trained-hierarchy", "hierarchy on the trained tasks", trained, hierarchy(base), hier_time)
    measures += [Measure("trained", t, HIERARCHY, base, path) for t in trained]
    path = evaluate("trained-flat", "multi-task flat policy on the trained tasks", trained,
                    ("--policy", str(runs / f"flat_k{base}")), flat_time)
    measures += [Measure("trained", t, FLAT_MULTI, base, path) for t in trained]
    for task in trained:
        path = evaluate(f"trained-flat-{task}", f"flat policy of {task} on {task}", (task,),
                        ("--policy", str(runs / f"flat_{task}")), flat_time)
        measures.append(Measure("trained", task, FLAT_TASK, base, path))
    for phrasing, tasks in phrasings:  # the flat policies never read the words (report_document says so)
        path = evaluate(f"{phrasing}-hierarchy", f"hierarchy on the held-out phrasings ({phrasing})", tasks,
                        hierarchy(base), hier_time, "--phrasing", phrasing)
        measures += [Measure(phrasing, t, HIERARCHY, base, path) for t in tasks]
    for k in b.heldout_demos:
        path = evaluate(f"heldout-hierarchy-k{k}", f"hierarchy on the held-out tasks, {k} demos", held_out,
                        hierarchy(k), hier_time)
        measures += [Measure("held-out", t, HIERARCHY, k, path) for t in held_out]
        path = evaluate(f"heldout-flat-k{k}", f"multi-task flat policy on the held-out tasks, {k} demos", held_out,
                        ("--policy", str(runs / f"flat_k{k}")), flat_time)
        measures += [Measure("held-out", t, FLAT_MULTI, k, path) for t in held_out]
        for task in held_out:
            if not k:  # no demonstrations: no per-task policy to evaluate
                measures.append(Measure("held-out", task, FLAT_TASK, k, None))
                continue
            path = evaluate(f"heldout-flat-{task}-k{k}", f"flat policy of {task} alone, {k} demos", (task,),
                            ("--policy", str(runs / f"flat_{task}_k{k}")), flat_time)
            measures.append(Measure("held-out", task, FLAT_TASK, k, path))
    return Plan(budget, obs, seed, trained, held_out, phrasings, tuple(steps), tuple(measures))
