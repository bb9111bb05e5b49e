"""`python main.py run` and `eval --policy RUN`: a planner (oracle or learned) with a policy (learned or scripted).

`run` executes one task instance, or one free instruction, in a workcell and saves it as an episode;
`eval` runs many and reports success per task and per call type with 95% intervals. The learned
policy does each motion call (app/policy_rollout.py); memory and query calls run through the robot API.

What `run` runs, and who writes its calls:
```
--task T            the suite's instance of T for --seed: scene, instruction, oracle program, success check
--instruction TEXT  TEXT as it is, for a learned planner, in the scene of --scene-task's layout for --seed;
                    no task, so the episode's task is FREE_INSTRUCTION_TASK (its scene and seed are
                    kept) and success is unknown (None)
--planner oracle    the task's program (an instruction has none: one-line error)
--planner RUN       the planner writes each next call (app/planner_eval.py planner_proposer)
--step              StepGate wraps the proposer (the oracle program is handed over as one, call by
                    call): each call is shown and approved, edited, skipped or the run quit first;
                    edits, skips and a quit are logged in the take as interventions
```
The calls then run with the scripted skills (recorders/demo_recorder.py record_demo) or the learned
policy (app/policy_rollout.py rollout), on the workcell `--robot` opens through the registry (with
`--robot-ip` where the kind needs an address). On a real arm (franky) there is no task of the suite:
`--instruction TEXT` with a learned `--planner RUN` runs in the scene its workcell was taught
(DATA/workcells/franky), and anything else is refused before the arm is connected.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from app import step_gate
from app.errors import UserError, print_json
from app.model_loading import load_planner, load_policy, model_ref
from app.step_gate import StepAnswer, program_proposer

if TYPE_CHECKING:
    from recorders.task_suite import TaskInstance

STEP_CHOICES = "[a]pprove (Enter), [e]dit, [s]kip, [q]uit"


def run_policy_eval(args, tasks: list[str]) -> int:
    from tqdm import tqdm

    from app.policy_eval import evaluate, report_text

    from app.workcell_setup import setup_opener

    policy = load_policy(args.policy)
    opener = setup_opener(args.robot, getattr(args, "objects", None))
    bar = tqdm(total=len(tasks) * args.episodes, unit="episode", desc="eval", file=sys.stderr, disable=None)
    result = evaluate(tasks, args.episodes, policy, seed=args.seed, split=args.split, robot=args.robot,
                      max_call_s=args.max_call_s, on_episode=lambda _r: bar.update(1), cell_factory=opener)
    bar.close()
    result["policy"] = str(args.policy)
    result["objects"] = getattr(args, "objects", None) or "true"
    if args.json:
        print_json(result)
    else:
        print(report_text(result))
    return 0


# ---- --step -----------------------------------------------------------------------------------------
class TerminalOperator:
    """`run --step`'s operator (app/step_gate.py StepOperator) at the terminal.

    Each call is printed with its number and the operator answers [a]pprove (or Enter), [e]dit,
    [s]kip or [q]uit. An edit that the gate refuses is said with its reason and the edit is asked for
    again (an empty edit goes back to the question). A skipped call is not run (the next call is asked
    for at once, under the same number; a learned planner asked again with the same history may well
    propose it again: edit it or quit). Quit, or the end of the input, ends the run as failed. `ask`
    reads one answer (input() by default; EOFError at the end of input)."""

    def __init__(self, ask: Callable[[str], str] = input, say: Callable[[str], None] = print):
        self.ask, self.say = ask, say
        self._editing = False  # the last edit was refused: ask for the edit again, not the question

    def answer(self, call, number: int) -> StepAnswer:
        while True:
            if not self._editing:
                self.say(f"call {number}: {call.code}")
                choice = self._choice()
                if choice.kind != "edit":
                    if choice.kind == "skip":
                        self.say(f"  skipped {call.code}")
                    return choice
            self._editing = False
            text = self._read(f"  edit {call.code} to: ")
            if text is None:
                return StepAnswer("quit", why="end of input: quit")
            if text.strip():  # empty: back to the question
                return StepAnswer("edit", code=text.strip())

    def refused(self, call, reason: str) -> None:
        self.say(f"  {reason}")
        self._editing = True

    def _choice(self) -> StepAnswer:
        while True:
            text = self._read(f"  {STEP_CHOICES}? ")
            if text is None:
                return StepAnswer("quit", why="end of input: quit")
            answer = text.strip().lower()
            if answer in ("", "a", "approve"):
                return StepAnswer("approve")
            if answer in ("e", "edit"):
                return StepAnswer("edit")
            if answer in ("s", "skip"):
                return StepAnswer("skip")
            if answer in ("q", "quit"):
                return StepAnswer("quit", why="quit")
            self.say(f"  answer one of {STEP_CHOICES}")

    def _read(self, prompt: str) -> str | None:
        """One line typed at the terminal; None at the end of the input."""
        try:
            return self.ask(prompt)
        except EOFError:
            self.say("")
            return None


class StepGate(step_gate.StepGate):
    """`run --step`: the shared step gate (app/step_gate.py) asking a TerminalOperator. Edits, skips
    and a quit are logged in the attached take as interventions; an edited call is logged as the call
    that ran, with the run's source."""

    def __init__(self, propose: Callable, names: Iterable[str], ask: Callable[[str], str] = input,
                 say: Callable[[str], None] = print):
        super().__init__(propose, names, TerminalOperator(ask, say))


# ---- run ----------------------------------------------------------------------------------------------
def _instance(args):
    """The task instance whose scene the run uses, and the free instruction (None for --task). On a
    real arm: the instruction in the scene its workcell was taught (DATA/workcells/franky)."""
    from app.workcell_setup import default_setup, is_simulated, taught_instance
    from recorders.task_suite import TASKS, make_instance, task_def

    if not is_simulated(args.robot):
        try:
            inst = taught_instance(default_setup(args.robot, args.data), args.instruction or "",
                                   args.planner == "oracle" or args.task is not None)
        except ValueError as e:
            raise UserError(f"--robot {args.robot}: {e}") from None
        return inst, inst.instruction
    if args.task is not None:
        if args.task not in TASKS:
            raise UserError(f"--task names a task of the suite ({', '.join(TASKS)}); got {args.task!r}")
        return make_instance(args.task, args.seed, args.split), None
    instruction = " ".join(args.instruction.split())
    if not instruction:
        raise UserError("--instruction needs some text")
    if args.planner == "oracle":
        raise UserError("--instruction needs a learned --planner RUN: the oracle program belongs to a task "
                        "(use --task T for it)")
    task_def(args.scene_task)  # unknown: one-line TaskError naming the tasks
    return make_instance(args.scene_task, args.seed, args.split), instruction


def _outcome(success: bool | None, failure: str | None) -> str:
    if failure is not None:
        return f"failed: {failure}"
    return "finished (no task to check success against)" if success is None else "success" if success else "failed"


@dataclass(frozen=True)
class _Run:
    """One `run`: what runs, into which file, who writes its calls and which workcell executes them."""

    inst: TaskInstance  # the task, or for a free instruction only its scene
    instruction: str | None  # a free instruction (no task to check success against), or None
    out: Path
    propose: Callable | None  # None: the oracle program runs as it is
    source: str  # of the logged calls: script (the oracle program) or planner
    models: tuple  # ModelRefs of the learned planner, for the episode's provenance
    cell_factory: Callable  # open_workcell, with the arm's address where the robot kind needs one
    on_take: Callable | None  # StepGate.attach under --step: its interventions go into the take


def run_run(args) -> int:
    from recorders.arms.base import ArmError

    inst, instruction = _instance(args)
    out = args.out or Path(f"{args.task or 'instruction'}_{args.seed:04d}_run.h5")
    if out.exists():
        raise UserError(f"{out} already exists; choose another --out")
    run = _prepare(args, inst, instruction, out)
    policy = None if args.policy == "oracle" else load_policy(args.policy, for_planner=run.propose is not None)
    names = ", ".join(inst.scene.object_names + inst.scene.zone_names)
    print(f"{inst.instruction}  (seed {args.seed}, {args.split} split)" if instruction is None else
          f"{instruction}  ({f'the {args.scene_task} layout of seed {args.seed}' if inst.seed >= 0 else 'the taught scene'}"
          f": {names})")
    try:
        return _run_scripted(args, run) if policy is None else _run_policy(args, run, policy)
    except ArmError as e:  # e.g. franky-sim cannot start here, or the safety layer stopped the arm
        raise UserError(f"--robot {args.robot}: {' '.join(str(e).split())}") from None


def _prepare(args, inst, instruction: str | None, out: Path) -> _Run:
    """The run's proposer (learned planner, and --step around it or the oracle program) and workcell."""
    propose, models, source = None, (), "script"
    if args.planner != "oracle":
        from app.planner_eval import planner_proposer

        propose = planner_proposer(load_planner(args.planner), instruction or inst.instruction, inst.scene)
        models, source = (model_ref("planner", args.planner),), "planner"
    on_take = None
    if args.step:
        propose = StepGate(propose or program_proposer(inst.program), inst.scene.object_names + inst.scene.zone_names)
        on_take = propose.attach
    from app.workcell_setup import setup_opener

    try:
        cell_factory = setup_opener(args.robot, getattr(args, "objects", None), data_dir=getattr(args, "data", None),
                                    host=args.robot_ip)
    except ValueError as e:
        raise UserError(str(e)) from None
    return _Run(inst, instruction, out, propose, source, models, cell_factory, on_take)


def _run_scripted(args, run: _Run) -> int:
    from recorders.demo_recorder import RecordOptions, record_demo

    r = record_demo(run.inst, run.out, RecordOptions(robot=args.robot, obs=args.obs), cell_factory=run.cell_factory,
                    propose=run.propose, models=run.models, source=run.source, instruction=run.instruction,
                    on_take=run.on_take)
    if run.propose is not None:
        for code, status in r.calls:
            print(f"  {code:<50} {status}")
    if r.frames == 0:  # e.g. a planner that said done() first: an episode needs at least one tick
        r.path.unlink(missing_ok=True)
        print(f"{_outcome(r.success, r.failure)}; no motion, nothing saved")
        return 0
    print(f"{_outcome(r.success, r.failure)}; saved {r.path}")
    return 0


def _run_policy(args, run: _Run, policy) -> int:
    from app.policy_rollout import rollout

    result = rollout(run.inst, policy, run.out, max_call_s=args.max_call_s, robot=args.robot,
                     policy_name=str(args.policy), seed=args.seed, cell_factory=run.cell_factory,
                     propose=run.propose, source=run.source, models=(model_ref("policy", args.policy), *run.models),
                     instruction=run.instruction, on_take=run.on_take)
    for c in result.calls:
        print(f"  {c.code:<45} {c.status:<7} {c.ticks:>4} ticks  {c.reason or ''}")
    ms = sorted(result.inference_ms)
    timing = f"; inference {ms[len(ms) // 2]:.0f} ms median per chunk, {result.stalls} stalls" if ms else ""
    saved = f"saved {result.path}" if result.path is not None else "no motion, nothing saved"
    print(f"{_outcome(result.success, result.failure)}{timing}; {saved}")
    return 0
