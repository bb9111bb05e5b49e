"""The robot API registry and canonical call code."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recorders.robot_api_spec import API, Call, InvalidCallError, signature_text, spec, vocabulary


def test_registry_declares_the_eight_functions_once():
    assert vocabulary() == ["pick", "place", "push", "home", "remember", "recall", "free_space", "done"]
    assert {n for n, f in API.items() if f.kind == "motion"} == {"pick", "place", "push", "home"}
    assert {n for n, f in API.items() if f.returns_pose} == {"recall", "free_space"}
    assert signature_text("place").startswith("place(obj, target)  put the held object")


def test_canonical_code_and_round_trip():
    c = Call("place", ("red cube", Call("recall", ("red cube start",))))
    assert c.code == 'place("red cube", recall("red cube start"))'
    assert Call.from_code(c.code) == c
    assert Call.from_code("push( 'a cube' , 'left', 0.1 )").code == 'push("a cube", "left", 0.1)'
    assert Call.from_code('place(target="blue zone", obj="red cube")') == Call("place", ("red cube", "blue zone"))
    assert Call.from_json(c.to_json()) == c


@pytest.mark.parametrize("code, message", [
    ('pik("red cube")', "unknown function 'pik'; known: pick, place"),
    ('place("red cube")', "place() takes 2 arguments (obj, target), got 1"),
    ('push("red cube", "up", 0.1)', "must be one of left, right, forward, backward"),
    ('push("red cube", "left", 5)', "within 0 < d <= 0.3"),
    ('pick(red_cube)', "must be a string literal"),
    ('place("red cube", pick("blue cube"))', "returns no pose"),
    ('os.system("ls")', "only robot-API functions"),
    ('pick("red cube", color="red")', "has no parameter 'color'"),
    ('pick(', "not a valid call"),
    ('pick("purple cube")', "unknown object 'purple cube'"),
])
def test_invalid_calls_name_the_problem(code, message):
    with pytest.raises(InvalidCallError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Call.from_code(code, objects={"red cube", "blue cube", "blue zone"})


def test_spec_of_unknown_function():
    with pytest.raises(InvalidCallError):
        spec("fly")


names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(str.strip)


@given(obj=names, target=names, key=names, distance=st.floats(0.001, 0.3),
       direction=st.sampled_from(["left", "right", "forward", "backward"]))
def test_any_valid_call_round_trips_through_its_code(obj, target, key, distance, direction):
    for call in (Call("pick", (obj,)), Call("place", (obj, target)), Call("place", (obj, Call("recall", (key,)))),
                 Call("push", (obj, direction, distance)), Call("remember", (key, obj)), Call("done", ())):
        assert Call.from_code(call.code) == call
        assert Call.from_code(call.code).code == call.code
