"""What every command shares, with no command imported: the user-error type, its exit code, and
one-line JSON printing (DESIGN.md section 2: a user error is one line and exit 2, never a traceback).

Commands import these from here, not from app/cli.py, so the parser and dispatch import the
commands and never the other way round.
"""
from __future__ import annotations

import argparse
import json

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse that raises UserError (one line, exit 2) instead of printing the usage and exiting."""

    def error(self, message: str):
        raise UserError(f"{self.prog}: {message}")


def int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {value}")
        return value
    return parse


nonneg_int = int_at_least(0, "non-negative")
positive_int = int_at_least(1, "positive")


def print_json(obj) -> None:
    print(json.dumps(obj, indent=None, separators=(",", ":")))


def one_line(e: BaseException) -> str:
    """An exception as one line of text for a status line or an event (its type when it says nothing)."""
    return " ".join(str(e).split()) or type(e).__name__
