"""Static validation of programs: a program is a sequence of robot-API calls, nothing else.

Used by `python main.py check PROGRAM.py`, the GUI's code cells and (later) the interpreter and
the planner's outputs. Source text -> `ast.parse` -> each top-level statement must be an
expression statement holding one call of the registry (recall/free_space nested as place
targets, literal arguments, keywords only with the declared parameter names) -> `Call` values.
Nothing is ever executed. Every problem becomes a `ProgramIssue` naming its line, e.g.
`line 3: import statements are not allowed; a program is a sequence of robot-API calls`.
"""
from __future__ import annotations

import ast
from collections.abc import Collection
from dataclasses import dataclass

from recorders.robot_api_spec import API, Call, InvalidCallError, call_from_node

MAX_SOURCE_CHARS = 100_000
MAX_LITERAL_CHARS = 1000
MAX_INT_BITS = 3322  # about MAX_LITERAL_CHARS decimal digits
MAX_STATEMENTS = 1000
MAX_NESTING = 3  # calls inside calls inside calls
NOT_A_CALL = "are not allowed; a program is a sequence of robot-API calls"
BYTE_ORDER_MARK = "\ufeff"

_STATEMENT_NAMES = {
    ast.Import: "import statements", ast.ImportFrom: "import statements", ast.Assign: "assignments",
    ast.AugAssign: "assignments", ast.AnnAssign: "assignments", ast.For: "loops", ast.While: "loops",
    ast.AsyncFor: "loops", ast.If: "if statements", ast.FunctionDef: "function definitions",
    ast.AsyncFunctionDef: "function definitions", ast.ClassDef: "class definitions", ast.With: "with statements",
    ast.AsyncWith: "with statements", ast.Try: "try statements", ast.Return: "return statements",
    ast.Delete: "del statements", ast.Global: "global statements", ast.Nonlocal: "nonlocal statements",
    ast.Raise: "raise statements", ast.Assert: "assert statements", ast.Pass: "pass statements",
    ast.Break: "break statements", ast.Continue: "continue statements", ast.Match: "match statements",
    ast.TryStar: "try statements",
}
_EXPRESSION_NAMES = {  # constructs never allowed anywhere inside a statement
    ast.JoinedStr: "f-strings are not allowed; use plain string literals",
    ast.Lambda: "lambdas are not allowed",
    ast.ListComp: "comprehensions are not allowed", ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed", ast.GeneratorExp: "comprehensions are not allowed",
    ast.Attribute: "attribute access is not allowed; call robot-API functions by name",
    ast.Subscript: "indexing is not allowed; arguments are literals",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Await: "await is not allowed", ast.Yield: "yield is not allowed", ast.YieldFrom: "yield is not allowed",
    ast.IfExp: "conditional expressions are not allowed",
}


@dataclass(frozen=True)
class ProgramIssue:
    line: int  # 1-based
    col: int  # 1-based, as editors show it
    message: str  # one line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ProgramError(ValueError):
    """A program failed validation; `issues` lists every problem found (at least one)."""

    def __init__(self, issues: list[ProgramIssue]):
        self.issues = list(issues)
        more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(f"{issues[0]}{more}")


def check_program(source: str, objects: Collection[str] | None = None) -> list[ProgramIssue]:
    """Every problem of `source` as a program of robot-API calls, by line; [] when it is valid.

    `objects`: when given, the known object and zone names (unknown ones are issues)."""
    return _check(source, objects)[1]


def parse_program(source: str, objects: Collection[str] | None = None) -> list[Call]:
    """The calls of a valid program, in order (keywords made positional); raises ProgramError."""
    calls, issues = _check(source, objects)
    if issues:
        raise ProgramError(issues)
    return calls


def _issue(node: ast.AST, message: str) -> ProgramIssue:
    return ProgramIssue(max(1, getattr(node, "lineno", 1)), getattr(node, "col_offset", 0) + 1,
                        " ".join(message.split()))  # one line, whatever a literal held


def _forbidden(node: ast.AST) -> ProgramIssue | None:
    """The first construct inside a statement that no call may contain, or None."""
    for sub in ast.walk(node):
        message = _EXPRESSION_NAMES.get(type(sub))
        if message is None and isinstance(sub, ast.Constant):
            message = _huge_literal(sub)
        if message is not None:
            return _issue(sub, message)
    return None


def _huge_literal(node: ast.Constant) -> str | None:
    value = node.value
    size = 0
    if isinstance(value, (str, bytes)):
        size = len(value)
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        size = MAX_LITERAL_CHARS + 1
    end = getattr(node, "end_col_offset", None)
    if end is not None and getattr(node, "end_lineno", None) == node.lineno:
        size = max(size, end - node.col_offset)  # catches 1000-digit floats and the like
    return f"literal longer than {MAX_LITERAL_CHARS} characters" if size > MAX_LITERAL_CHARS else None


def _call_depth(node: ast.AST) -> int:
    """Nesting depth of calls in an expression (iterative: hostile input may nest deeply)."""
    best, stack = 0, [(node, 0)]
    while stack:
        n, d = stack.pop()
        if isinstance(n, ast.Call):
            d += 1
            best = max(best, d)
            if best > MAX_NESTING:
                return best
        stack.extend((c, d) for c in ast.iter_child_nodes(n))
    return best


def _check(source: str, objects) -> tuple[list[Call], list[ProgramIssue]]:
    if not isinstance(source, str):
        raise TypeError(f"a program is text, got {type(source).__name__}")
    # A byte-order mark, as some editors save UTF-8, is no part of the program (Python itself skips it).
    source = source.removeprefix(BYTE_ORDER_MARK)
    if len(source) > MAX_SOURCE_CHARS:
        return [], [ProgramIssue(1, 1, f"program longer than {MAX_SOURCE_CHARS} characters")]
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return [], [ProgramIssue(max(1, e.lineno or 1), max(1, e.offset or 1), f"syntax error: {e.msg}")]
    except (ValueError, RecursionError, MemoryError) as e:  # null bytes, absurd nesting
        return [], [ProgramIssue(1, 1, f"cannot parse the program: {type(e).__name__}")]
    if len(tree.body) > MAX_STATEMENTS:
        return [], [ProgramIssue(1, 1, f"more than {MAX_STATEMENTS} statements")]
    calls: list[Call] = []
    issues: list[ProgramIssue] = []
    done_at: int | None = None
    for stmt in tree.body:
        issue, call = _check_statement(stmt, objects)
        if issue is None and done_at is not None:
            issue = _issue(stmt, f"{call.code} comes after done() on line {done_at} and would never run")
        if issue is not None:
            issues.append(issue)
            continue
        calls.append(call)
        if API[call.name].kind == "terminal" and done_at is None:
            done_at = stmt.lineno
    return calls, issues


def _check_statement(stmt: ast.stmt, objects) -> tuple[ProgramIssue | None, Call | None]:
    if not isinstance(stmt, ast.Expr):
        what = _STATEMENT_NAMES.get(type(stmt), f"{type(stmt).__name__} statements")
        return _issue(stmt, f"{what} {NOT_A_CALL}"), None
    forbidden = _forbidden(stmt.value)
    if forbidden is not None:
        return forbidden, None
    if _call_depth(stmt.value) > MAX_NESTING:
        return _issue(stmt, f"calls nested deeper than {MAX_NESTING} levels"), None
    try:
        return None, call_from_node(stmt.value, objects)
    except InvalidCallError as e:
        return _issue(stmt, str(e)), None
