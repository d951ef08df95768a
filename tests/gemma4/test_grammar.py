"""The tool-call grammar: what it lets through, checked with xgrammar's own matcher (the engine vLLM uses too).

Every accepted text is fed as characters (``accept_string``), so these tests do not depend on a tokenizer; the
backend tests run the same grammar token by token on a real model.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agentkit.gemma4 import CONTROL_TOKENS, check_tool_choice, format_tool_call, parse_response, tool_call_grammar
from agentkit.gemma4.grammar import GENERIC_DEPTH, arguments_grammar

xgr = pytest.importorskip("xgrammar")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 12},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "nullable": True},
            },
            "required": ["city"],
        },
    },
}
EVENT = {
    "type": "function",
    "function": {
        "name": "create_event",
        "parameters": {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "all_day": {"type": "boolean"},
                "Priority": {"type": "number"},
                "attendees": {
                    "type": "array",
                    "maxItems": 2,
                    "items": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]},
                },
                "meta": {"type": "object"},
            },
            "required": ["title", "all_day"],
        },
    },
}
NOARGS = {"type": "function", "function": {"name": "get_time", "description": "now"}}
TOOLS = [WEATHER, EVENT, NOARGS]
HAND_OVER = "<|tool_response>"

_COMPILER: Any = None


def compiler() -> Any:
    global _COMPILER
    if _COMPILER is None:
        # A vocabulary of single bytes is enough: accept_string works on characters, not tokens.
        vocab = [bytes([b]).decode("latin-1") for b in range(256)]
        _COMPILER = xgr.GrammarCompiler(xgr.TokenizerInfo(vocab, vocab_type=xgr.VocabType.RAW))
    return _COMPILER


def accepts(text: str, tools: list[dict[str, Any]] = TOOLS, choice: str = "auto", thinking: bool = False) -> bool:
    grammar = tool_call_grammar(tools, choice, thinking=thinking)
    matcher = xgr.GrammarMatcher(compiler().compile_structural_tag(grammar.structural_tag))
    return bool(matcher.accept_string(text))


def call(name: str, args: dict[str, Any]) -> str:
    return format_tool_call(name, args)


def test_calls_as_the_template_writes_them_are_accepted() -> None:
    weather = call("get_weather", {"city": "Paris", "days": None, "unit": "celsius"})
    event = call(
        "create_event",
        {"title": "Standup", "all_day": False, "Priority": -1.5e3, "attendees": [{"email": "a@x.org"}], "meta": {}},
    )
    for choice in ("auto", "required"):
        assert accepts(weather + HAND_OVER, choice=choice)
        assert accepts(weather + event + call("get_time", {}) + HAND_OVER, choice=choice)  # several in a row
    assert accepts("Let me look that up." + weather + HAND_OVER)  # auto: text before the calls


def test_free_text_cannot_end_the_output_for_the_parser_before_a_call() -> None:
    # <|turn> ends the output for the parser but stops no engine: a call after it was lost (seen on vLLM).
    weather = call("get_weather", {"city": "Paris"}) + HAND_OVER
    assert not accepts("noise<|turn>more" + weather)
    assert not accepts("noise<|turn>", choice="none")
    assert accepts("noise <turn|>")  # the real end of an answer stays possible


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (call("get_weather", {"unit": "celsius"}), "a required key is missing"),
        (call("get_weather", {"city": "Paris", "country": "FR"}), "an undeclared key"),
        (call("get_weather", {"city": "Paris", "unit": "kelvin"}), "not an enum member"),
        (call("get_weather", {"city": "Paris", "days": 1.5}), "a float for an integer"),
        (call("get_weather", {"city": "Paris", "days": "3"}), "a string for an integer"),
        (call("get_weather", {"city": "x" * 13}), "longer than maxLength"),
        ('<|tool_call>call:get_weather{unit:<|"|>celsius<|"|>,city:<|"|>P<|"|>}<tool_call|>', "keys out of order"),
        ('<|tool_call>call:get_weather{city:"Paris"}<tool_call|>', "a JSON-quoted string"),
        ('<|tool_call>call:get_weather{city: <|"|>Paris<|"|>}<tool_call|>', "whitespace"),
        ('<|tool_call>call:get_weather{city:<|"|>Par<turn|>is<|"|>}<tool_call|>', "a control token in a string"),
        ('<|tool_call>call:get_wether{city:<|"|>Paris<|"|>}<tool_call|>', "an undeclared tool"),
        (call("create_event", {"title": "t", "all_day": "yes"}), "a string for a boolean"),
        (call("create_event", {"title": "t", "all_day": True, "attendees": [{"email": "a"}] * 3}), "over maxItems"),
        (call("create_event", {"title": "t", "all_day": True, "attendees": [{}]}), "a nested required key missing"),
        (call("get_time", {"now": True}), "arguments for a tool without parameters"),
        (call("get_weather", {"city": "Paris"}) + "and then some text", "text after a call"),
    ],
)
def test_malformed_or_invalid_calls_are_rejected(text: str, why: str) -> None:
    assert not accepts(text + HAND_OVER), why


def test_tool_choice_modes() -> None:
    weather = call("get_weather", {"city": "Paris"}) + HAND_OVER
    time_call = call("get_time", {}) + HAND_OVER
    assert accepts("The answer is 4.<turn|>", choice="auto")
    assert not accepts("The answer is 4.<turn|>", choice="required")  # no call: not allowed
    assert not accepts("Sure." + weather, choice="required")  # required starts with the call
    assert accepts(weather, choice="get_weather")
    assert not accepts(time_call, choice="get_weather")  # a name allows that tool only
    assert accepts("The answer is 4.<turn|>", choice="none")
    assert not accepts("Sure." + weather, choice="none")
    # Thinking on: the thought channel may come first, then the required call; no call inside the thought.
    thought = "<|channel>thought\nThe user wants weather.<channel|>"
    assert accepts(thought + weather, choice="required", thinking=True)
    assert not accepts("<|channel>thought\n" + weather, choice="required", thinking=True)
    assert not accepts(thought + weather, choice="required", thinking=False)


def test_tool_choice_is_checked_against_the_tools() -> None:
    assert check_tool_choice("get_weather", ["get_weather"]) == "get_weather"
    with pytest.raises(ValueError, match=r"neither a mode nor a declared tool.*'required'.*'get_weather'"):
        check_tool_choice("get_wether", ["get_weather"])
    with pytest.raises(ValueError, match="needs at least one tool"):
        check_tool_choice("required", [])
    with pytest.raises(ValueError, match="neither a mode"):
        tool_call_grammar(TOOLS, "Required")


def test_the_grammar_is_built_once_per_tool_set() -> None:
    first = tool_call_grammar(TOOLS, "required")
    again = tool_call_grammar(json.loads(json.dumps(TOOLS)), "required")  # equal, not the same dicts
    assert again is first
    assert tool_call_grammar(TOOLS, "auto") is not first


def test_an_enum_no_call_can_carry_is_an_error() -> None:
    with pytest.raises(ValueError, match="no member of the enum"):
        arguments_grammar({"type": "object", "properties": {"x": {"type": "string", "enum": ["a<turn|>b"]}}})


# Characters that make up control tokens, so random strings often contain one or a near miss.
_PIECES = st.sampled_from(["<", "|", ">", '"', "t", "turn", "tool_call", "eos", "bos", "channel", "é", "\n", " ", "a"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES | st.sampled_from(CONTROL_TOKENS) | st.text(max_size=3), max_size=12).map("".join))
def test_a_string_value_is_accepted_exactly_when_it_holds_no_control_token(value: str) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"properties": {"s": {"type": "string"}}}}}]
    text = '<|tool_call>call:f{s:<|"|>' + value + '<|"|>}<tool_call|>' + HAND_OVER
    holds_token = any(t in value for t in CONTROL_TOKENS)
    surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    assert accepts(text, tools) is (not holds_token and not surrogate)
    if not holds_token and not surrogate:
        assert parse_response(text).tool_calls[0].arguments == {"s": value}  # and it reads back exactly


# The grammar writes exponents of at most two digits (no float overflows to inf): |x| < 1e99, x = 0 or |x| >= 1e-99.
_FLOATS = st.floats(-1e98, 1e98).filter(lambda x: x == 0 or abs(x) >= 1e-98)


def depth(value: Any) -> int:
    """How many containers deep ``value`` nests ({} and [] count one each)."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def test_untyped_values_nest_at_most_generic_depth() -> None:
    deep: Any = "x"
    for _ in range(GENERIC_DEPTH - 1):
        deep = [deep]
    ok = call("create_event", {"title": "t", "all_day": True, "meta": {"a": deep}}) + HAND_OVER
    too_deep = call("create_event", {"title": "t", "all_day": True, "meta": {"a": [deep]}}) + HAND_OVER
    assert accepts(ok) and not accepts(too_deep)


_SCALARS = st.none() | st.booleans() | st.integers(-(10**18), 10**18) | _FLOATS
_VALUES = st.recursive(
    _SCALARS | st.text(alphabet=st.characters(blacklist_characters="<", blacklist_categories=("Cs",)), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True), _VALUES, max_size=3))
def test_any_value_written_by_format_tool_call_fits_an_untyped_mapping(meta: dict[str, Any]) -> None:
    assume(depth(meta) <= GENERIC_DEPTH)
    text = call("create_event", {"title": "t", "all_day": True, "meta": meta}) + HAND_OVER
    assert accepts(text)


@pytest.mark.parametrize(
    "value", [0.015086764051873857, 0.00012345678901234567, -0.0009999999999999998, 1234567.123456789]
)
def test_every_float_python_writes_plainly_fits(value: float) -> None:
    """Hypothesis found 0.015086764051873857 (18 fraction digits) refused by a 17-digit bound: leading zeros count."""
    text = call("create_event", {"title": "t", "all_day": True, "meta": {"x": value}}) + HAND_OVER
    assert accepts(text)


@pytest.mark.parametrize("bound", ["maxLength", "maxItems", "minItems"])
def test_a_bound_past_int32_leaves_every_tool_callable(bound: str) -> None:
    """xgrammar reads bounds as int32: one tool declaring "maxLength": 4294967296 (an MCP server's "4 GB at most")
    made the whole grammar fail to compile, so every constrained request failed, whatever tool it was for."""
    schema: dict[str, Any] = {"type": "string"} if bound == "maxLength" else {"type": "array", "items": {}}
    schema[bound] = 2**32
    big = {
        "type": "function",
        "function": {
            "name": "upload",
            "parameters": {
                "type": "object",
                "properties": {"data": schema},
                "required": ["data"] if bound != "minItems" else [],
            },
        },
    }
    assert accepts(call("get_weather", {"city": "Paris"}) + HAND_OVER, [*TOOLS, big])
    if bound != "minItems":  # a list of 4 billion items is no call anyone writes
        value = "x" * 20 if bound == "maxLength" else [1, 2, 3]
        assert accepts(call("upload", {"data": value}) + HAND_OVER, [*TOOLS, big])
