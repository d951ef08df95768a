"""parse_partial_object: the complete part of an object value cut off anywhere."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentkit.gemma4 import format_value, parse_value
from agentkit.gemma4.partial import parse_partial_object

_scalars = st.one_of(st.booleans(), st.integers(-1000, 1000), st.text(max_size=8))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
_objects = st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,5}", fullmatch=True), _values, min_size=1, max_size=4)


@given(_objects)
def test_a_whole_object_parses_as_the_value_parser_reads_it(obj: dict[str, Any]) -> None:
    text = format_value(obj)
    assert parse_partial_object(text) == parse_value(text)


@given(_objects, st.data())
def test_a_cut_object_gives_none_or_an_object_whose_keys_were_written(obj: dict[str, Any], data: st.DataObject) -> None:
    text = format_value(obj)
    cut = data.draw(st.integers(1, len(text)))
    partial = parse_partial_object(text[:cut])
    assert partial is None or isinstance(partial, dict)
    if partial is not None:
        assert set(partial) <= set(obj)


def test_an_open_string_and_a_half_written_element() -> None:
    assert parse_partial_object('{a:<|"|>hel') == {"a": "hel"}
    assert parse_partial_object("{a:[1,2,tru") == {"a": [1, 2]}
    assert parse_partial_object('{a:<|"|>x<|') == {"a": "x"}  # a delimiter cut in half
    assert parse_partial_object("{a:1,b") == {"a": 1}
    assert parse_partial_object("{") == {}
