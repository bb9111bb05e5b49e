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
from recorders.call_log import SkillFailed
from app.model_loading import load_planner, load_policy

MAX_CALLS = 20  # the longest oracle program (swap) has 9 calls
# the suite's own instructions, held-out rephrasings of them, or held-out instructions no program can satisfy
PHRASINGS = ("template", "paraphrase", "paraphrase-b", "impossible")
IMAGES = ("real", "swapped")  # the planner sees its own episode's camera, or another episode's
PARTNER_SEED = 100_000  # with swapped images, episode `seed` sees the frames of seed + PARTNER_SEED
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
    refused: bool = False  # the planner said "cannot do this" before its first call

    @property
    def exact_match(self) -> bool:
        return self.program == self.oracle_program


REFUSED = "cannot do this:"


class PlannerRefused(SkillFailed):
    """The planner will not try the instruction (models/instruction_check.py): raised before its first
    call, so nothing has moved; the message begins "cannot do this:" and gives the reason."""


class PlannerProposer:
    """`propose(api) -> Call` for RobotAPI.run_planned / proposals (which check it against the scene):
    the planner's next call given the front camera's frame now, the task, the calls made so far and
    the keys in memory. With `alternatives` k >= 1, `last_alternatives` holds that proposal's k best
    calls with their scores (models/planner.py ScoredCall), the call proposed first, all from the same
    forward pass, for the Run view; with 0 the planner is only asked for its one call (`next_call`).
    `frames`: instead of the camera, the planner sees frames[i] for its i-th call (the last one after
    them): another episode's images, to measure whether it uses them. Before its first call the
    instruction is checked (PlannerRefused) and, unless `verbatim`, read as the training instruction
    it most resembles (`read_as`, models/instruction_canon.py)."""

    def __init__(self, planner, instruction: str, scene, alternatives: int = 0, frames: Sequence | None = None,
                 verbatim: bool = False):
        from models.planner_data import SceneNames

        if alternatives < 0:
            raise ValueError(f"alternatives must be 0 (none kept) or more, got {alternatives}")
        if frames is not None and not len(frames):
            raise ValueError("frames, when given, must hold at least one image")
        self.planner, self.instruction, self.alternatives, self.frames = planner, instruction, alternatives, frames
        self.names = SceneNames(tuple(scene.object_names), tuple(scene.zone_names))
        self.last_alternatives: tuple = ()  # ScoredCall, best first; () before the first call or when not kept
        self.last_seen: str | None = None  # the facts the planner read from the last image (--scene-facts), else None
        self.refusal: str | None = None  # why the instruction was refused, once checked
        self._checked = False  # the instruction is checked before this proposer's first call
        self.verbatim = verbatim
        self.read_as = instruction  # what the planner is given: the instruction, or the template it resembles

    def check_instruction(self) -> None:
        """PlannerRefused when the instruction cannot be done in this scene by this planner; else
        `read_as` is what the planner will be given."""
        from models.instruction_canon import nearest_training_instruction
        from models.instruction_check import refusal

        config = getattr(self.planner, "config", None)
        self.refusal = refusal(self.instruction, self.names, getattr(config, "known", ()))
        if self.refusal:
            raise PlannerRefused(f"{REFUSED} {self.refusal}")
        templates = getattr(config, "templates", ())
        if templates and not self.verbatim:
            self.read_as = nearest_training_instruction(self.instruction, templates)

    def __call__(self, api):
        from models.planner_data import remembered_keys
        from recorders.robot_api_spec import Call

        history = list(api.memory.history)
        if not self._checked:
            self._checked = True
            self.check_instruction()
        if self.frames is None:
            image, _depth = api.cell.render(FRONT_CAMERA)
        else:
            image = self.frames[min(len(history), len(self.frames) - 1)]
        seen = getattr(self.planner, "seen", None)
        self.last_seen = seen(image, self.names) if seen is not None else None
        query = (image, self.read_as, history, remembered_keys(history), self.names)
        if not self.alternatives:
            return Call.from_code(self.planner.next_call(*query))
        self.last_alternatives = self.planner.next_calls(*query, k=self.alternatives)
        return Call.from_code(self.last_alternatives[0].code)


def planner_proposer(planner, instruction: str, scene, alternatives: int = 0,
                     frames: Sequence | None = None, verbatim: bool = False) -> PlannerProposer:
    """The planner as the proposer of a run's calls (PlannerProposer)."""
    return PlannerProposer(planner, instruction, scene, alternatives, frames, verbatim)


def oracle_frames(inst, robot: str = "sim") -> list:
    """The front camera's frame before each call of `inst`'s oracle program, run with the scripted skills."""
    from recorders.call_log import CallLog
    from recorders.robot_api import RobotAPI
    from recorders.cell.registry import open_workcell

    frames = []
    with open_workcell(robot, inst.scene) as cell:
        api = RobotAPI(cell, CallLog(clock=cell.arm.time))
        for call in inst.program:
            frames.append(cell.render(FRONT_CAMERA)[0])
            api.execute(call)
    return frames


def _noting(propose, episode: PlannedEpisode):
    """`propose`, also writing each proposal into `episode.program`."""
    def noted(api):
        call = propose(api)
        episode.program.append(call.code)
        return call
    return noted


def plan_and_execute(inst, planner, robot: str = "sim", max_calls: int = MAX_CALLS,
                     frames: Sequence | None = None, verbatim: bool = False) -> PlannedEpisode:
    """One episode of `planner` writing the program call by call, the scripted skills executing it
    (in memory: nothing is recorded); `frames`: what the planner sees instead of the camera."""
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
            propose = planner_proposer(planner, inst.instruction, inst.scene, frames=frames, verbatim=verbatim)
            api.run_planned(_noting(propose, episode), max_calls)
        except PlannerRefused as e:
            episode.failure, episode.refused = str(e), True
        except (SkillFailed, CallAborted) as e:
            episode.failure = str(e)
        episode.success = monitor.success(cell.true_object_poses())
    return episode


def plan_with_policy(inst, planner, policy, robot: str = "sim", max_call_s: float = 30.0,
                     max_calls: int = MAX_CALLS, frames: Sequence | None = None, verbatim: bool = False
                     ) -> PlannedEpisode:
    """One episode of `planner` writing the program, the learned `policy` executing each motion call."""
    from app.policy_rollout import rollout

    episode = PlannedEpisode(inst.task.id, inst.seed, False, inst.instruction,
                             oracle_program=[c.code for c in inst.program])
    r = rollout(inst, policy, None, max_call_s, robot=robot, source="planner", max_calls=max_calls,
                propose=_noting(planner_proposer(planner, inst.instruction, inst.scene, frames=frames,
                                                 verbatim=verbatim), episode))
    episode.success, episode.failure = r.success, r.failure
    episode.refused = bool(r.failure and r.failure.startswith(REFUSED) and not episode.program)
    return episode


def evaluate_planner(tasks: Sequence[str], episodes: int, planner, *, policy=None, seed: int = 0,
                     split: str = "train", robot: str = "sim", max_call_s: float = 30.0, progress=None,
                     phrasing: str = "template", images: str = "real", verbatim: bool = False) -> dict:
    """Success per task (95% Wilson intervals) and closed-loop program exact match of a planner with
    the oracle skills (`policy` None) or a learned policy, over seeds seed .. seed + episodes - 1.
    `phrasing` "paraphrase": each episode's instruction is one of the held-out phrasings of
    recorders/task_phrasings.py instead of its task's template (the scene and success check stay).
    "impossible": an instruction of recorders/impossible_instructions.py in the episode's scene; success
    is then a refusal before the first call. Every row counts its refusals (false ones on the others).
    `images` "swapped": the planner sees, before its i-th call, the frame before the i-th call of the
    oracle program of another episode of the task (seed + PARTNER_SEED), not its own camera.
    `verbatim`: the planner reads each instruction as written, not as the training instruction it
    most resembles."""
    from app.eval_results import wilson_interval
    from recorders.impossible_instructions import impossible
    from recorders.task_phrasings import paraphrase
    from recorders.task_suite import make_instance

    if phrasing not in PHRASINGS:
        raise ValueError(f"phrasing must be one of {', '.join(PHRASINGS)}, got {phrasing!r}")
    if images not in IMAGES:
        raise ValueError(f"images must be one of {', '.join(IMAGES)}, got {images!r}")

    rows = []
    for task in tasks:
        results = []
        for s in range(seed, seed + episodes):
            inst = make_instance(task, s, split)
            if phrasing in ("paraphrase", "paraphrase-b"):
                inst.instruction = paraphrase(inst, second=phrasing == "paraphrase-b")
            elif phrasing == "impossible":
                inst.instruction = impossible(inst)
            frames = oracle_frames(make_instance(task, s + PARTNER_SEED, split), robot) if images == "swapped" else None
            results.append(plan_and_execute(inst, planner, robot, frames=frames, verbatim=verbatim) if policy is None
                           else plan_with_policy(inst, planner, policy, robot, max_call_s, frames=frames,
                                                 verbatim=verbatim))
            if phrasing == "impossible":  # what counts is refusing, whatever the scene became
                results[-1].success = results[-1].refused
            if progress is not None:
                progress(results[-1])
        wins = sum(r.success for r in results)
        rows.append({"task": task, "episodes": episodes, "successes": wins, "rate": wins / episodes,
                     "ci95": [round(v, 3) for v in wilson_interval(wins, episodes)],
                     "program_exact_match": sum(r.exact_match for r in results) / episodes,
                     "refusals": sum(r.refused for r in results),
                     "seeds": [{"seed": r.seed, "instruction": r.instruction, "success": r.success, "refused": r.refused,
                                "program": r.program, "failure": r.failure} for r in results]})
    return {"split": split, "robot": robot, "phrasing": phrasing, "images": images, "verbatim": verbatim,
            "tasks": rows}


def run_planner_eval(args, tasks: list[str]) -> int:
    """`eval --planner RUN ...`: rollouts with the oracle skills, or `--data`: next-call accuracy."""
    from tqdm import tqdm

    planner = load_planner(args.planner)
    planner.lookahead = not getattr(args, "no_lookahead", False)
    if args.data:
        return _offline(args, planner, tasks)
    policy = None if args.policy == "oracle" else load_policy(args.policy, for_planner=True)
    bar = tqdm(total=len(tasks) * args.episodes, unit="episode", desc="eval", file=sys.stderr, disable=None)
    result = evaluate_planner(tasks, args.episodes, planner, policy=policy, seed=args.seed, split=args.split,
                              robot=args.robot, max_call_s=args.max_call_s, progress=lambda _r: bar.update(1),
                              phrasing=getattr(args, "phrasing", "template"), images=getattr(args, "images", "real"),
                              verbatim=getattr(args, "verbatim", False))
    bar.close()
    result = {"planner": str(args.planner), "policy": str(args.policy), **result}
    if args.json:
        print_json(result)
        return 0
    print(f"planner={args.planner} policy={args.policy} split={args.split} robot={args.robot} "
          f"phrasing={result['phrasing']} images={result['images']}")
    print(f"{'task':<11} {'success':>9}  95% interval  program exact match  refused"
          + ("  (success: refused)" if result["phrasing"] == "impossible" else ""))
    for r in result["tasks"]:
        print(f"{r['task']:<11} {r['successes']:>3}/{r['episodes']:<3} {100 * r['rate']:5.1f}%  "
              f"[{100 * r['ci95'][0]:.0f}%, {100 * r['ci95'][1]:.0f}%]   {100 * r['program_exact_match']:>3.0f}%"
              f"                 {r['refusals']}")
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
    images = getattr(args, "images", "real")
    if images == "swapped":
        if len(scenes) < 2:
            raise UserError("--images swapped needs at least two episodes in --data")
        steps = swap_images(steps, episode_of)
    result = {"planner": str(args.planner), "data": [str(Path(d)) for d in args.data], "images": images,
              **evaluate_steps(planner, steps, scenes, episode_of), "skipped": skipped}
    if args.json:
        print_json(result)
    else:
        print(f"next-call accuracy {100 * result['next_call_accuracy']:.1f}% over {result['steps']} calls; "
              f"program exact match {100 * result['program_exact_match']:.1f}% over {result['episodes']} episodes")
        for name, v in result["per_function"].items():
            print(f"  {name:<10} {100 * v['accuracy']:5.1f}% of {v['calls']}")
    return 0


def swap_images(steps: list, episode_of: list[int]) -> list:
    """Each episode's steps with the images of the next episode's (the last one's with the first's):
    step i sees that episode's i-th image (its last, when it has fewer steps)."""
    from dataclasses import replace

    frames: dict[int, list] = {}
    for step, ep in zip(steps, episode_of):
        frames.setdefault(ep, []).append(step.image)
    order = list(frames)
    partner = {ep: order[(i + 1) % len(order)] for i, ep in enumerate(order)}
    seen: dict[int, int] = {}
    out = []
    for step, ep in zip(steps, episode_of):
        i = seen.get(ep, 0)
        seen[ep] = i + 1
        other = frames[partner[ep]]
        out.append(replace(step, image=other[min(i, len(other) - 1)]))
    return out
