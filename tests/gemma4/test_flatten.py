"""flatten_schema: raw JSON schemas (MCP inputSchema) into Gemma 4 declarations, no property left as ``{}``."""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.gemma4 import flatten_schema, render_prompt

_GEMMA_KEYS = {"type", "description", "enum", "items", "properties", "required", "nullable"}


def _walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    out = [node]
    for sub in node.get("properties", {}).values():
        out += _walk(sub)
    if isinstance(node.get("items"), dict):
        out += _walk(node["items"])
    return out


def _declared(schema: dict[str, Any]) -> str:
    tools = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": schema}}]
    return render_prompt([{"role": "user", "content": "hi"}], tools)


def test_refs_defs_nullable_enums_and_nesting_are_inlined() -> None:
    class Address(pydantic.BaseModel):
        city: str = pydantic.Field(description="the city")

    class Order(pydantic.BaseModel):
        """An order."""

        ship_to: Address
        backup: Address | None = None
        priority: Literal["low", "high"] = "low"
        lines: list[Address] = []

    raw = pydantic.create_model("args", order=(Order, ...)).model_json_schema()
    assert "$defs" in raw and "$ref" in str(raw) and "anyOf" in str(raw)
    flat = flatten_schema(raw)
    order = flat["properties"]["order"]
    assert order["description"] == "An order."
    assert order["properties"]["ship_to"]["properties"]["city"] == {"type": "string", "description": "the city"}
    assert order["properties"]["backup"]["nullable"] is True
    assert order["properties"]["backup"]["properties"]["city"]["type"] == "string"
    assert order["properties"]["priority"]["enum"] == ["low", "high"]
    assert order["properties"]["lines"]["items"]["properties"]["city"]["type"] == "string"
    text = _declared(flat)
    assert "ship_to:{properties:{city:{description:" in text
    assert ":{}" not in text


def test_unions_of_several_types_and_objects_are_kept_not_refused() -> None:
    flat = flatten_schema(
        {
            "type": "object",
            "properties": {
                "id": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "target": {
                    "oneOf": [
                        {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
                        {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]},
                    ]
                },
                "mode": {"oneOf": [{"const": "a"}, {"const": "b"}]},
                "when": {"type": ["string", "null"], "format": "date-time"},
                "anything": {},
                "tuple": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}]},
                "all": {
                    "allOf": [{"properties": {"x": {"type": "integer"}}}, {"properties": {"y": {"type": "integer"}}}]
                },
            },
        }
    )
    p = flat["properties"]
    assert p["id"]["type"] == ["string", "integer"]
    assert set(p["target"]["properties"]) == {"path", "url"} and "required" not in p["target"]
    assert p["mode"] == {"type": "string", "enum": ["a", "b"]}
    assert p["when"]["nullable"] is True and "date-time" in p["when"]["description"]
    assert p["anything"] == {"description": "any JSON value"}
    assert p["tuple"]["items"] == {"type": "number"}
    assert set(p["all"]["properties"]) == {"x", "y"} and p["all"]["type"] == "object"


def test_all_of_adds_no_words_of_its_own() -> None:
    """zod (TypeScript MCP servers) writes a reused object as ``allOf: [{$ref}]``: the object, described as
    itself, where the declaration used to add "any JSON value" (what an empty node means)."""
    topic = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    flat = flatten_schema(
        {
            "type": "object",
            "properties": {
                "topic": {"allOf": [{"$ref": "#/definitions/__schema0"}]},
                "described": {"allOf": [{"$ref": "#/definitions/__schema0"}], "description": "what it is about"},
                "both": {"allOf": [{"properties": {"x": {"type": "integer"}}}, {"description": "an x"}]},
            },
            "definitions": {"__schema0": topic},
        }
    )
    p = flat["properties"]
    assert p["topic"] == {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    assert p["described"]["description"] == "what it is about" and p["described"]["properties"] == topic["properties"]
    assert p["both"]["description"] == "an x"
    assert "any JSON value" not in _declared(flat)


def test_recursive_and_dangling_refs_stop_with_a_note() -> None:
    flat = flatten_schema(
        {
            "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}},
            "type": "object",
            "properties": {"root": {"$ref": "#/$defs/Node"}, "lost": {"$ref": "#/$defs/Missing"}},
        }
    )
    child = flat["properties"]["root"]["properties"]["child"]
    assert child["type"] == "object" and "recursive" in child["description"]
    assert "unresolved" in flat["properties"]["lost"]["description"]


_leaf = st.sampled_from(
    [
        {"type": "string"},
        {"type": "integer", "minimum": 0},
        {"type": ["number", "null"]},
        {"enum": ["x", "y"]},
        {"const": 3},
        {},
        True,
        {"$ref": "#/$defs/Thing"},
        {"type": "string", "format": "uri"},
    ]
)
_schema = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.builds(lambda p: {"type": "object", "properties": p}, st.dictionaries(st.text("abc_", min_size=1), inner)),
        st.builds(lambda i: {"type": "array", "items": i}, inner),
        st.builds(lambda o: {"anyOf": o}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda o: {"oneOf": o}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda o: {"allOf": o}, st.lists(inner, min_size=1, max_size=2)),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text("pqr", min_size=1), _schema, max_size=4))
def test_any_schema_flattens_to_gemma_keys_with_no_empty_property(properties: dict[str, Any]) -> None:
    raw = {
        "type": "object",
        "properties": properties,
        "$defs": {"Thing": {"type": "object", "properties": {"n": {"type": "integer"}}}},
    }
    flat = flatten_schema(raw)
    for node in _walk(flat):
        assert set(node) <= _GEMMA_KEYS, node
        assert node, "a property would be declared as {}"
    assert ":{}" not in _declared(flat)


def test_bounds_stay_for_the_grammar_but_are_not_rendered() -> None:
    # An MCP server's maxLength must reach the tool-call grammar (so a constrained string ends), yet the declaration
    # the model reads has no key for it: it is said in words, exactly as before.
    from agentkit.gemma4 import tool_call_grammar

    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 12},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "minItems": 1, "maxItems": 3},
        },
        "required": ["city"],
    }
    flat = flatten_schema(schema)
    assert flat["properties"]["city"]["maxLength"] == 12
    assert (flat["properties"]["tags"]["minItems"], flat["properties"]["tags"]["maxItems"]) == (1, 3)
    tool = {"type": "function", "function": {"name": "f", "description": "F.", "parameters": flat}}
    text = render_prompt([{"role": "user", "content": "hi"}], [tool])
    assert "maxLength" not in text and "maxItems" not in text and "max length 12" in text
    unbounded = flatten_schema({**schema, "properties": {"city": {"type": "string"}, "tags": {"type": "array"}}})
    loose = {"type": "function", "function": {"name": "f", "description": "F.", "parameters": unbounded}}
    assert tool_call_grammar([tool], "required") != tool_call_grammar([loose], "required")  # the bounds are used
