"""The program validator: robot-API calls only, every problem named with its line."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.program_check import ProgramError, check_program, parse_program
from recorders.robot_api_spec import Call
from recorders.task_suite import TASKS, make_instance


@pytest.mark.parametrize("task", list(TASKS))
def test_every_oracle_program_is_valid(task):
    inst = make_instance(task, 3)
    names = set(inst.scene.object_names) | set(inst.scene.zone_names)
    assert parse_program(inst.program_code, names) == inst.program


@pytest.mark.parametrize("source, line, message", [
    ('pick("a")\nimport os\n', 2, "import statements are not allowed"),
    ('x = pick("a")\n', 1, "assignments are not allowed"),
    ('for i in range(3):\n    pick("a")\n', 1, "loops are not allowed"),
    ('pick("a").__class__\n', 1, "attribute access"),
    ('pick((lambda: "a")())\n', 1, "lambdas"),
    ('pick([c for c in "ab"])\n', 1, "comprehensions"),
    ('pick(["a", "b"][0])\n', 1, "indexing"),
    ('pick(f"{1}")\n', 1, "f-strings"),
    ('pick("' + "a" * 2000 + '")\n', 1, "literal longer than"),
    ('place("a", recall(recall(recall(recall("k")))))\n', 1, "nested"),
    ('pick("a"\n', 1, "syntax error"),
    ('def f():\n    pass\n', 1, "function definitions"),
    ('__import__("os")\n', 1, "unknown function '__import__'"),
    ('pick(*["a"])\n', 1, "* or ** arguments"),
])
def test_hostile_or_invalid_programs_are_rejected_with_the_line(source, line, message):
    issues = check_program(source)
    assert issues and issues[0].line == line and message in issues[0].message, issues
    with pytest.raises(ProgramError):
        parse_program(source)


def test_keywords_canonicalise_to_positional():
    assert parse_program('place(obj="a", target="b zone")') == [Call("place", ("a", "b zone"))]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_crashes_the_checker(source):
    issues = check_program(source)
    assert isinstance(issues, list)
    for issue in issues:
        assert issue.line >= 1 and issue.message


def test_a_program_saved_with_a_utf8_byte_order_mark_is_valid(tmp_path, capsys):
    from app.inspect_command import run_check

    program = 'pick("red cube")\nplace("red cube", "blue zone")\n'
    assert parse_program("\ufeff" + program) == parse_program(program)
    path = tmp_path / "bom.py"
    path.write_bytes(program.encode("utf-8-sig"))  # as Notepad and some other editors save UTF-8
    assert run_check(path) == 0
    assert capsys.readouterr().out.strip() == f"{path}: OK (2 calls)"
    assert check_program("pick('a')\n\ufeffpick('b')\n")  # only a leading mark is skipped
