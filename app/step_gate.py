"""Who writes the next call, and the operator's say over it before it runs: `run --step` and the Run
workspace's step mode share this (Qt-free).

    propose(api) -> Call          the oracle program (`program_proposer`) or a learned planner
    StepGate(propose, names, operator)
        operator.answer(call, n)  -> StepAnswer: approve | edit CODE | skip | quit WHY
        an edit is parsed and checked against the robot API and the scene's names (as Annotate's
        code cells are); an invalid one goes back to the operator (`operator.refused(call, reason)`)
        and is asked about again; a skip asks `propose` for the next call; a quit raises CallAborted

Once `attach`ed to a take, every edit, skip and quit is logged in it as an intervention
(recorders/intervention.py) naming the proposed call: edit (with the replacement), skip, and abort
for a quit. The terminal's operator (`run --step`) lives in app/run_command.py, the Run workspace's
in app/run_session.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from recorders.call_log import CallAborted, SkillFailed
from recorders.intervention import Intervention
from recorders.robot_api_spec import Call, InvalidCallError

ANSWERS = ("approve", "edit", "skip", "quit")


@dataclass(frozen=True)
class StepAnswer:
    kind: str  # one of ANSWERS
    code: str = ""  # edit: the replacement as typed
    why: str = ""  # quit: what ended the run, shown in the failure and the abort intervention

    def __post_init__(self):
        if self.kind not in ANSWERS:
            raise ValueError(f"a step answer is one of {', '.join(ANSWERS)}, got {self.kind!r}")


class StepOperator(Protocol):
    def answer(self, call: Call, number: int) -> StepAnswer:
        """What to do with `call`, the `number`th call to run (1-based)."""

    def refused(self, call: Call, reason: str) -> None:
        """The edit given for `call` was invalid: `reason` says why; `answer` is asked again."""


def program_proposer(program: Iterable[Call]) -> Callable:
    """`propose(api)` handing over a fixed program's calls in order (the oracle program, call by call)."""
    calls = iter(program)

    def propose(_api):
        try:
            return next(calls)
        except StopIteration:  # every call was run or skipped, done() too
            raise SkillFailed("the program has no calls left") from None
    return propose


class StepGate:
    """A proposer that asks `operator` about each call of `propose` before it runs."""

    def __init__(self, propose: Callable, names: Iterable[str], operator: StepOperator):
        self.propose, self.names, self.operator = propose, tuple(names), operator
        self.number = 0  # calls handed over so far
        self.take = None  # the take being recorded, where interventions are logged

    def attach(self, take) -> None:
        self.take = take

    def __call__(self, api) -> Call:
        call = self.propose(api)
        while True:
            answer = self.operator.answer(call, self.number + 1)
            if answer.kind == "skip":
                self._intervened("skip", call)
                call = self.propose(api)
                continue
            if answer.kind == "quit":
                self._intervened("abort", call, reason=f"the operator ended the run at this call ({answer.why})")
                raise CallAborted(f"the operator ended the run before call {self.number + 1} ({answer.why})")
            if answer.kind == "edit":
                try:
                    edited = Call.from_code(answer.code, self.names)
                except InvalidCallError as e:
                    self.operator.refused(call, f"invalid call: {e}")
                    continue
                self._intervened("edit", call, replacement=edited.code)
                call = edited
            self.number += 1
            return call

    def _intervened(self, kind: str, call: Call, **details) -> None:
        if self.take is not None:
            t = self.take.clock()
            self.take.log_intervention(Intervention(kind, call.code, t, t, **details))
