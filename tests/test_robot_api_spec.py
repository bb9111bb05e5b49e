"""The robot API registry, canonical call code, and call validation."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorders.robot_api_spec import (API, DIRECTIONS, MAX_DISTANCE_M, Call, FunctionSpec, InvalidCallError, ParamSpec,
                                      api_reference, signature_text, spec, vocabulary)

OBJECTS = {"red cube", "red cube 2", "blue cube", "blue zone", "green zone"}


def test_registry_declares_the_eight_functions_once_in_order():
    assert vocabulary() == ["pick", "place", "push", "home", "remember", "recall", "free_space", "done"]
    kinds = {n: f.kind for n, f in API.items()}
    assert kinds == {"pick": "motion", "place": "motion", "push": "motion", "home": "motion",
                     "remember": "memory", "recall": "memory", "free_space": "query", "done": "terminal"}
    assert {n for n, f in API.items() if f.returns_pose} == {"recall", "free_space"}
    assert [p.type for p in API["push"].params] == ["object", "direction", "distance"]
    assert API["push"].params[1].choices == DIRECTIONS
    assert API["place"].param_names == ("obj", "target")
    assert API["remember"].param_names == ("key", "obj")


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        API["fly"] = API["home"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        API["home"].kind = "memory"  # type: ignore[misc]


def test_specs_validate_themselves():
    with pytest.raises(ValueError, match="parameter type must be one of"):
        ParamSpec("speed", "velocity", "m/s")
    with pytest.raises(ValueError, match="function kind must be one of"):
        FunctionSpec("fly", (), "take off", "aerial")
    with pytest.raises(ValueError, match="declares a parameter twice"):
        FunctionSpec("f", (ParamSpec("a", "object", ""), ParamSpec("a", "key", "")), "", "motion")
    with pytest.raises(ValueError, match="only direction parameters take choices"):
        ParamSpec("obj", "object", "", ("a", "b"))


def test_signature_text_and_api_reference():
    assert signature_text("place") == "place(obj, target)  put the held object on an object, in a zone, or at a stored pose"
    assert signature_text("home") == "home()  move to the home pose"
    assert "0 < d <= 0.3" in signature_text("push")
    lines = api_reference().splitlines()
    assert [line.split("(")[0] for line in lines] == vocabulary()


def test_spec_of_unknown_function_lists_the_known_ones():
    assert spec("pick") is API["pick"]
    with pytest.raises(InvalidCallError, match="unknown function 'fly'; known: pick, place, push, home"):
        spec("fly")


def test_canonical_code():
    c = Call("place", ("red cube", Call("recall", ("red cube start",))))
    assert c.code == 'place("red cube", recall("red cube start"))' == str(c)
    assert Call("push", ("red cube", "left", 0.1)).code == 'push("red cube", "left", 0.1)'
    assert Call("push", ("red cube", "left", 1e-05)).code == 'push("red cube", "left", 1e-05)'
    assert Call("home").code == "home()"
    assert Call("pick", ('say "hi"\\\n',)).code == r'pick("say \"hi\"\\\n")'
    assert Call("pick", ("café",)).code == 'pick("café")'


@pytest.mark.parametrize("text, canonical", [
    ("push( 'red cube' , 'left', 0.1 )", 'push("red cube", "left", 0.1)'),
    ("  pick('red cube')  ", 'pick("red cube")'),
    ("push('red cube', 'left', .10)", 'push("red cube", "left", 0.1)'),
    ('place(target="blue zone", obj="red cube")', 'place("red cube", "blue zone")'),
    ('place("red cube", target=free_space(near="blue cube"))', 'place("red cube", free_space("blue cube"))'),
    ('remember(obj="red cube", key="k")', 'remember("k", "red cube")'),
    ('pick("red " "cube")', 'pick("red cube")'),
    ("done()  # finished", "done()"),
])
def test_code_is_canonicalised_and_canonical_code_is_a_fixed_point(text, canonical):
    call = Call.from_code(text, OBJECTS)
    assert call.code == canonical
    assert Call.from_code(call.code, OBJECTS) == call


@pytest.mark.parametrize("code, message", [
    ('pik("red cube")', "unknown function 'pik'; known: pick, place, push, home, remember, recall, free_space, done"),
    ('place("red cube")', "place() takes 2 arguments (obj, target), got 1"),
    ("home(1)", "home() takes 0 arguments (), got 1"),
    ('pick("red cube", "blue cube")', "pick() takes 1 argument (obj), got 2"),
    ('push("red cube", "up", 0.1)', "must be one of left, right, forward, backward, got 'up'"),
    ('push("red cube", "left", 5)', "within 0 < d <= 0.3, got 5"),
    ('push("red cube", "left", 0)', "within 0 < d <= 0.3"),
    ('push("red cube", "left", -0.1)', "'distance' must be a number of metres"),
    ('push("red cube", "left", True)', "'distance' must be a number of metres"),
    ('push("red cube", "left", "0.1")', "'distance' must be a number of metres"),
    ("pick(red_cube)", "pick() argument 'obj' must be a string literal"),
    ('pick("red" + " cube")', "must be a string literal"),
    ("recall(3)", "recall() argument 'key' must be a string literal"),
    ('remember("", "red cube")', "must be a non-empty name"),
    ('pick("   ")', "must be a non-empty name"),
    ('pick("' + "x" * 201 + '")', "at most 200 characters"),
    ('place("red cube", pick("blue cube"))', "pick() returns no pose"),
    ('place("red cube", recall(recall("k")))', "recall() argument 'key' must be a string literal"),
    ('os.system("ls")', "only robot-API functions can be called"),
    ('pick("red cube", color="red")', "pick() has no parameter 'color'; parameters: obj"),
    ('place("red cube", color="red")', "place() has no parameter 'color'; parameters: obj, target"),
    ('place("red cube", obj="blue cube")', "place() got 'obj' twice"),
    ('pick(*["red cube"])', "pick() does not take * or ** arguments"),
    ('pick(**{"obj": "red cube"})', "pick() does not take * or ** arguments"),
    ("pick(", "not a valid call"),
    ('pick("a"); pick("b")', "not a valid call"),
    ("pick", "pick is a function: call it as pick(obj)"),
    ('"red cube"', "expected a call of the robot API"),
    ("pick('a\x00')", "not a valid call"),
    ('pick("purple cube")', "unknown object 'purple cube'; known: blue cube, blue zone"),
    ('place("red cube", "purple zone")', "unknown object or zone 'purple zone'"),
    ('free_space("purple cube")', "unknown object 'purple cube'"),
    ('pick("blue zone")', "pick() argument 'obj' must be an object, not the zone 'blue zone'"),
    ('place("red cube", "red cube")', "place() cannot put the red cube on itself"),
    ("pick(" * 300 + ")" * 300, "not a valid call"),
])
def test_invalid_calls_name_the_problem(code, message):
    with pytest.raises(InvalidCallError) as info:
        Call.from_code(code, objects=OBJECTS)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_objects_are_only_checked_when_given_and_keys_never():
    assert Call.from_code('place("purple cube", recall("anything"))') == \
        Call("place", ("purple cube", Call("recall", ("anything",))))
    assert Call.from_code('place("red cube", recall("anything"))', OBJECTS).args[1].args == ("anything",)


def test_from_code_rejects_non_text_and_huge_text():
    with pytest.raises(InvalidCallError, match="must be text"):
        Call.from_code(b'pick("red cube")')  # type: ignore[arg-type]
    with pytest.raises(InvalidCallError, match="longer than"):
        Call.from_code('pick("red cube")' + " " * 20_000)


@pytest.mark.parametrize("args, message", [
    (("red cube", True), "only strings, numbers and calls"),
    ((None,), "only strings, numbers and calls"),
    ((["red cube"],), "only strings, numbers and calls"),
    (("red cube", "left", float("nan")), "not a finite number"),
    (("red cube", "left", float("inf")), "not a finite number"),
])
def test_call_values_check_their_argument_types(args, message):
    with pytest.raises(InvalidCallError, match=message):
        Call("push", args)


def test_call_names_and_list_arguments():
    assert Call("pick", ["red cube"]) == Call("pick", ("red cube",))  # type: ignore[arg-type]
    assert hash(Call("pick", ["red cube"])) == hash(Call("pick", ("red cube",)))  # type: ignore[arg-type]
    with pytest.raises(InvalidCallError, match="must be an identifier"):
        Call("os.system", ("ls",))


def test_validate_checks_a_constructed_call_against_the_registry():
    good = Call("place", ("red cube", Call("free_space", ("blue cube",))))
    assert good.validate(OBJECTS) is good
    assert good.spec is API["place"]
    for bad, message in [(Call("pick", ("purple cube",)), "unknown object"), (Call("fly"), "unknown function"),
                         (Call("push", ("red cube", "left", 1)), "within 0 < d"),
                         (Call("place", ("red cube", Call("home"))), "returns no pose")]:
        with pytest.raises(InvalidCallError, match=message):
            bad.validate(OBJECTS)


def test_json_round_trip_with_nested_calls():
    c = Call("place", ("red cube", Call("recall", ("red cube start",))))
    d = c.to_json()
    assert d == {"name": "place", "args": ["red cube", {"name": "recall", "args": ["red cube start"]}]}
    assert Call.from_json(json.loads(json.dumps(d))) == c
    assert Call.from_json({"name": "done", "args": []}) == Call("done")
    for bad in ([], {"args": []}, {"name": "pick", "args": "red cube"}, {"name": "pick", "args": [None]}):
        with pytest.raises(InvalidCallError):
            Call.from_json(bad)  # type: ignore[arg-type]


# ---- properties ----------------------------------------------------------------------------------
names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(
    lambda s: bool(s.strip()))
objects = names.filter(lambda s: not s.endswith(" zone"))
distances = st.floats(0, MAX_DISTANCE_M, exclude_min=True)


@st.composite
def valid_calls(draw) -> Call:
    obj = draw(objects)
    target = draw(st.one_of(names.filter(lambda t: t != obj), st.builds(lambda n: n + " zone", names),
                            st.builds(lambda k: Call("recall", (k,)), names),
                            st.builds(lambda n: Call("free_space", (n,)), objects)))
    return draw(st.sampled_from([
        Call("pick", (obj,)), Call("place", (obj, target)),
        Call("push", (obj, draw(st.sampled_from(DIRECTIONS)), draw(distances))), Call("home"),
        Call("remember", (draw(names), obj)), Call("recall", (draw(names),)), Call("free_space", (obj,)),
        Call("done"),
    ]))


@settings(max_examples=300)
@given(valid_calls())
def test_any_valid_call_round_trips_through_its_code_and_json(call):
    parsed = Call.from_code(call.code)
    assert parsed == call
    assert parsed.code == call.code
    assert Call.from_json(json.loads(json.dumps(call.to_json()))) == call
    assert call.validate() is call


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80),
                 st.lists(st.sampled_from([*API, "(", ")", ",", '"red cube"', "'k'", "0.1", "=", "obj", "target",
                                           "*", "**", ".", "os", "[", "]", "lambda", ":", "f'", "1e999", " "]),
                          max_size=15).map("".join)))
def test_from_code_raises_only_invalid_call_error(text):
    try:
        call = Call.from_code(text)
    except InvalidCallError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert Call.from_code(call.code) == call
