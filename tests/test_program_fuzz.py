"""Thousands of hostile programs against the validator that every program passes before it runs.

Each program mixes valid robot-API calls with fragments that would leave a trace if any part of the
source were ever evaluated: they create a marker file, set an environment variable, or import a
module. The property: nothing leaves a trace, and a program is either refused with a line number or
becomes calls of the registry whose arguments are literals or nested memory/query calls, which is
all `RobotAPI.run_program` can be given.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.program_check import ProgramError, check_program, parse_program
from recorders.robot_api_spec import API, Call

MARKER_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / f"code2act-fuzz-{os.getpid()}"
MARKER = MARKER_DIR / "executed"
ENV_KEY = "CODE2ACT_FUZZ_EXECUTED"

VALID = ['pick("red cube")', 'place("red cube", "green zone")', 'place("red cube", recall("A"))',
         'place("red cube", free_space("blue cube"))', 'push("red cube", "left", 0.1)', 'home()',
         'remember("A", "red cube")', 'done()']
TRACE = [f'open("{MARKER}", "w")', f'__import__("os").makedirs("{MARKER}")',
         f'__import__("os").environ.__setitem__("{ENV_KEY}", "1")', '__import__("antigravity")',
         f'exec("open(\'{MARKER}\', \'w\')")', f'eval("open(\'{MARKER}\', \'w\')")']
WRAPPERS = [  # each turns an expression E into a hostile statement or argument
    "{e}", "x = {e}", "import os; {e}", "from os import system\n{e}", "pick({e})", "pick(obj={e})",
    'place("red cube", {e})', "pick((lambda: {e})())", "pick([{e} for _ in (1,)][0])", 'pick(f"{{{e}}}")',
    "pick({e}.__class__)", "pick().__class__.__bases__[0].__subclasses__()", "pick(*[{e}])", "pick(**{{'a': {e}}})",
    "if {e}:\n    pick('a')", "for _ in {e}:\n    home()", "while {e}:\n    home()", "with {e}:\n    home()",
    "try:\n    {e}\nexcept Exception:\n    pass", "def f():\n    {e}\nf()", "class C:\n    x = {e}",
    "@{e}\ndef f():\n    pass", "async def f():\n    await {e}", "del {e}", "global x; x = {e}",
    "assert {e}", "raise {e}", "return {e}", "(yield {e})", "pick({e} if True else 'a')", "pick(not {e})",
    "pick({e} + 'a')", "pick({e} or 'a')", "pick('a' + 'a' * 10 ** 9)", "pick(" + "(" * 200 + "'a'" + ")" * 200 + ")",
    "pick('" + "a" * 5000 + "')", "push('red cube', 'left', 1" + "0" * 4000 + ")",
    "place('a', recall(recall(recall(recall({e})))))", "pick(__builtins__)", "pick(globals())",
    "recall.__globals__", "home.__code__", "pick(vars())", "pick(getattr(home, '__globals__'))",
]
fragment = st.one_of(st.sampled_from(VALID), st.builds(lambda w, e: w.format(e=e), st.sampled_from(WRAPPERS),
                                                      st.sampled_from(TRACE)))
programs = st.lists(fragment, min_size=1, max_size=8).map("\n".join)


def _allowed_argument(value) -> bool:
    if isinstance(value, Call):
        return value.name in ("recall", "free_space") and all(isinstance(a, str) for a in value.args)
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_hostile_programs_run_nothing_outside_the_api(source):
    MARKER_DIR.mkdir(exist_ok=True)
    issues = check_program(source)
    try:
        calls = parse_program(source)
    except ProgramError as e:
        assert issues and all(i.line >= 1 for i in issues), e
        calls = None
    assert not MARKER.exists() and ENV_KEY not in os.environ
    assert "antigravity" not in sys.modules
    if calls is not None:  # accepted: only registry calls with literal or memory/query arguments
        assert not issues
        for call in calls:
            assert call.name in API and API[call.name].kind != "query"
            assert all(_allowed_argument(a) for a in call.args), call
    lines = source.split("\n")
    if all(line in VALID for line in lines) and "done()" not in lines[:-1]:
        assert calls is not None, issues  # programs of valid calls only are never refused
