"""app/cli.py's dispatch table and its --robot choices, checked without running any command."""
from __future__ import annotations

import argparse
import importlib

import pytest

from app.cli import GUI_COMMANDS, HANDLERS, SUBCOMMAND_ATTRIBUTES, build_parser, command_key, parse_args
from app.errors import UserError
from recorders.cell.registry import ROBOT_KINDS, SCRIPTED_DEMO_KINDS


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def parsed_command_keys() -> set[str]:
    """Every key a parsed command line can have: "record", "train policy", "bench inference", ..."""
    keys = set()
    for command, parser in subparsers(build_parser()).items():
        attribute = SUBCOMMAND_ATTRIBUTES.get(command)
        if attribute is None:
            keys.add(command)
            continue
        choices = next(a.choices for a in parser._actions if a.dest == attribute)
        keys |= {f"{command} {choice}" for choice in choices}
    return keys


def test_every_command_has_exactly_one_handler_or_is_the_guis():
    keys = parsed_command_keys()
    assert keys == set(HANDLERS) | set(GUI_COMMANDS)
    assert not set(HANDLERS) & set(GUI_COMMANDS)


@pytest.mark.parametrize("key", sorted(HANDLERS))
def test_every_handler_names_a_function(key):
    handler = HANDLERS[key]
    assert callable(getattr(importlib.import_module(handler.module), handler.function))


def test_command_keys_and_handler_arguments():
    args = parse_args(["inspect", "ep.h5", "--json"])
    assert command_key(args) == "inspect" and HANDLERS["inspect"].arguments(args) == (args.episode, True)
    assert command_key(parse_args(["train", "policy", "--data", "d", "--out", "r"])) == "train policy"
    assert command_key(parse_args(["bench", "annotate"])) in GUI_COMMANDS


def test_robot_choices_come_from_the_workcell_registry():
    commands = subparsers(build_parser())
    robot = {name: next(a.choices for a in commands[name]._actions if a.dest == "robot")
             for name in ("gui", "record", "eval")}
    assert robot == {"gui": ROBOT_KINDS, "record": ROBOT_KINDS, "eval": SCRIPTED_DEMO_KINDS}  # record --program runs anywhere
    with pytest.raises(UserError, match="--robot franky needs --robot-ip"):
        parse_args(["gui", "--robot", "franky"])
    assert parse_args(["gui", "--robot", "franky", "--robot-ip", "172.16.0.2"]).robot_ip == "172.16.0.2"
