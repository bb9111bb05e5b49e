"""Static validation of programs: a program is a sequence of robot-API calls, nothing else.

Used by `python main.py check PROGRAM.py`, the annotation timeline's code cells and (later) the
interpreter and the planner's outputs. Only `ast` is used: nothing is ever executed, and anything
that is not a plain call of the registry with literal (or recall/free_space) arguments is
reported with its line.
"""
from __future__ import annotations

import ast
from collections.abc import Collection
from dataclasses import dataclass

from recorders.robot_api_spec import Call, InvalidCallError, call_from_node

MAX_SOURCE_CHARS = 100_000
MAX_LITERAL_CHARS = 1000
MAX_STATEMENTS = 1000

_STATEMENT_NAMES = {
    ast.Import: "import statements", ast.ImportFrom: "import statements", ast.Assign: "assignments",
    ast.AugAssign: "assignments", ast.AnnAssign: "assignments", ast.For: "loops", ast.While: "loops",
    ast.AsyncFor: "loops", ast.If: "if statements", ast.FunctionDef: "function definitions",
    ast.AsyncFunctionDef: "function definitions", ast.ClassDef: "class definitions", ast.With: "with statements",
    ast.AsyncWith: "with statements", ast.Try: "try statements", ast.Return: "return statements",
    ast.Delete: "del statements", ast.Global: "global statements", ast.Nonlocal: "nonlocal statements",
    ast.Raise: "raise statements", ast.Assert: "assert statements", ast.Pass: "pass statements",
    ast.Break: "break statements", ast.Continue: "continue statements",
}


@dataclass(frozen=True)
class ProgramIssue:
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ProgramError(ValueError):
    """A program failed validation; `issues` lists every problem found."""

    def __init__(self, issues: list[ProgramIssue]):
        self.issues = issues
        super().__init__(str(issues[0]) + (f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""))


def _hostile(node: ast.AST) -> str | None:
    """Constructs never allowed anywhere in a call, reported before the call's own checks."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, (str, bytes)) and len(sub.value) > MAX_LITERAL_CHARS:
            return f"literal longer than {MAX_LITERAL_CHARS} characters"
        if isinstance(sub, ast.JoinedStr):
            return "f-strings are not allowed; use plain string literals"
        if isinstance(sub, ast.Lambda):
            return "lambdas are not allowed"
        if isinstance(sub, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return "comprehensions are not allowed"
        if isinstance(sub, ast.Attribute):
            return "attribute access is not allowed; call robot-API functions by name"
        if isinstance(sub, (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)):
            return f"{type(sub).__name__} expressions are not allowed"
    return None


def _depth(node: ast.AST, limit: int = 4) -> int:
    """Nesting depth of calls, stopping early past `limit`."""
    best = 0
    stack = [(node, 0)]
    while stack:
        n, d = stack.pop()
        if isinstance(n, ast.Call):
            d += 1
            best = max(best, d)
            if best > limit:
                return best
        stack.extend((c, d) for c in ast.iter_child_nodes(n))
    return best


def check_program(source: str, objects: Collection[str] | None = None) -> list[ProgramIssue]:
    """Every problem of `source` as a program of robot-API calls; [] when it is valid."""
    return _check(source, objects)[1]


def parse_program(source: str, objects: Collection[str] | None = None) -> list[Call]:
    """The calls of a valid program, in order; raises ProgramError otherwise."""
    calls, issues = _check(source, objects)
    if issues:
        raise ProgramError(issues)
    return calls


def _check(source: str, objects) -> tuple[list[Call], list[ProgramIssue]]:
    if len(source) > MAX_SOURCE_CHARS:
        return [], [ProgramIssue(1, 0, f"program longer than {MAX_SOURCE_CHARS} characters")]
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return [], [ProgramIssue(e.lineno or 1, e.offset or 0, f"syntax error: {e.msg}")]
    except (ValueError, RecursionError, MemoryError) as e:  # null bytes, absurd nesting
        return [], [ProgramIssue(1, 0, f"cannot parse the program: {type(e).__name__}")]
    if len(tree.body) > MAX_STATEMENTS:
        return [], [ProgramIssue(1, 0, f"more than {MAX_STATEMENTS} statements")]
    calls, issues = [], []
    for stmt in tree.body:
        line, col = stmt.lineno, stmt.col_offset
        if not isinstance(stmt, ast.Expr):
            what = _STATEMENT_NAMES.get(type(stmt), f"{type(stmt).__name__} statements")
            issues.append(ProgramIssue(line, col, f"{what} are not allowed; a program is a sequence of robot-API calls"))
            continue
        problem = _hostile(stmt.value)
        if problem is None and _depth(stmt.value) > 3:
            problem = "calls nested deeper than 3 levels"
        if problem is not None:
            issues.append(ProgramIssue(line, col, problem))
            continue
        try:
            calls.append(call_from_node(stmt.value, objects))
        except InvalidCallError as e:
            issues.append(ProgramIssue(line, col, str(e)))
    return calls, issues
