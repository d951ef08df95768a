"""The value codec: exact forms from the vectors, lenient reading, and a JSON round-trip property."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.gemma4 import ValueSyntaxError, format_value, parse_value
from agentkit.gemma4.values import format_tool_call

D = '<|"|>'

# Characters that stress the format: structure, both string delimiters' pieces, whitespace, unicode.
_TRICKY = st.sampled_from([*"{}[],:\"'\\\n\t <|>`ab\u00e9\u4e16\u200d\U0001f600", "<|", "|>", '"|', "<eos>"])
_TEXT = st.one_of(st.text(max_size=12), st.lists(_TRICKY, max_size=10).map("".join)).filter(lambda s: D not in s)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=12,
)


def _same(a: Any, b: Any) -> bool:
    """Equality that also checks types (1 vs 1.0 vs True) and the sign of zero."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b


@settings(max_examples=150, deadline=None)
@given(JSON)
def test_every_json_value_round_trips(value: Any) -> None:
    text = format_value(value)
    assert _same(parse_value(text), value), text


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(_TEXT, JSON, max_size=4))
def test_formatted_mapping_keys_are_sorted_case_insensitively(value: dict[str, Any]) -> None:
    parsed = parse_value(format_value(value))
    assert list(parsed) == sorted(value, key=str.lower)


def test_forms_match_the_reference_template() -> None:
    value = {
        "title": "Standup, daily: 9:00 {sharp}",
        "all_day": False,
        "attendees": [{"email": "a@x.org", "optional": True}],
        "where": {"room": "B2", "floor": 3},
        "tags": ["team", "daily"],
        "timeout_s": -0.001,
        "price": 231.5,
        "missing": None,
    }
    assert format_value(value) == (
        f"{{all_day:false,attendees:[{{email:{D}a@x.org{D},optional:true}}],missing:null,price:231.5,"
        f"tags:[{D}team{D},{D}daily{D}],timeout_s:-0.001,title:{D}Standup, daily: 9:00 {{sharp}}{D},"
        f"where:{{floor:3,room:{D}B2{D}}}}}"
    )
    assert format_value("multi\nline\n") == f"{D}multi\nline\n{D}"
    assert format_value({"B": 1, "a": 2}) == "{a:2,B:1}"  # Jinja dictsort ignores case


def test_keys_that_cannot_be_bare_are_delimited() -> None:
    assert format_value({"a b": 1, "x:y": 2, "": 3}) == f"{{{D}{D}:3,{D}a b{D}:1,{D}x:y{D}:2}}"
    assert parse_value(format_value({"a b": 1})) == {"a b": 1}


def test_the_delimiter_inside_a_string_is_neutralized_not_passed_through() -> None:
    text = format_value({"s": f"a{D}b"})
    assert text.count(D) == 2  # only the two delimiters format_value wrote itself
    parsed = parse_value(text)
    assert parsed["s"].replace("\u200d", "") == f"a{D}b"  # still reads the same to a person


def test_lenient_reading() -> None:
    assert parse_value('{city:"Paris",unit:"celsius"}') == {"city": "Paris", "unit": "celsius"}
    assert parse_value("{a:None,b:True,c:False}") == {"a": None, "b": True, "c": False}
    assert parse_value(" { a : 1 , b : [ 1 , 2 , ] , } ") == {"a": 1, "b": [1, 2]}
    assert parse_value('{"quoted key":1}') == {"quoted key": 1}
    assert parse_value("1e3") == 1000.0 and isinstance(parse_value("1e3"), float)
    assert parse_value("1e+16") == 1e16
    assert parse_value('"\\u00e9\\n"') == "é\n"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{a:@@@}", "expected a value"),
        (f"{{a:{D}x}}", "unterminated string"),
        (f"{{a:{{b:{D}c{D}}}", "never closed"),
        ("[1,2", "never closed"),
        ("{a 1}", "expected ':'"),
        ("{a:1 b:2}", "expected ','"),
        ("1 2", "unexpected text"),
        ("", "text ended"),
        ("nope", "expected a value"),
        ('"bad \\x"', "double-quoted"),
    ],
)
def test_malformed_values_raise_a_specific_error(text: str, fragment: str) -> None:
    with pytest.raises(ValueSyntaxError, match=fragment) as info:
        parse_value(text)
    assert isinstance(info.value, ValueError)


def test_non_json_python_values() -> None:
    class Color(Enum):
        RED = "red"

    @dataclass
    class Point:
        x: int
        y: int

    assert format_value([Color.RED, Point(1, 2), (1, 2), {3, 1}]) == f"[{D}red{D},{{x:1,y:2}},[1,2],[1,3]]"
    assert format_value(math.nan) == "NaN" and format_value(-math.inf) == "-Infinity"
    assert parse_value("-Infinity") == -math.inf
    with pytest.raises(TypeError, match="cannot write a object"):
        format_value(object())


def test_format_tool_call() -> None:
    assert format_tool_call("get_weather", {"unit": "celsius", "city": "Paris"}) == (
        f"<|tool_call>call:get_weather{{city:{D}Paris{D},unit:{D}celsius{D}}}<tool_call|>"
    )
    assert format_tool_call("files.read-text", {}) == "<|tool_call>call:files.read-text{}<tool_call|>"
    with pytest.raises(ValueError, match="cannot appear in a Gemma call"):
        format_tool_call("bad name{", {})


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(ValueSyntaxError, match="nested deeper"):
        parse_value("[" * 5000 + "]" * 5000)
    value = parse_value("[" * 100 + "]" * 100)  # the limit itself is fine
    for _ in range(99):
        value = value[0]
    assert value == []


def test_a_number_too_long_for_int_is_a_syntax_error_not_a_crash() -> None:
    # Python refuses to turn more than 4300 digits into an int; model output may hold such a number.
    with pytest.raises(ValueSyntaxError, match="a number too long to read"):
        parse_value("1" * 5000)
    assert parse_value("1" * 4000) == int("1" * 4000)
