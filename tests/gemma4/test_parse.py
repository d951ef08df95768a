"""Parsing: every parse vector, malformed output, and streaming equal to whole-text parsing for any split."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.gemma4 import (
    ContentDelta,
    ParsedResponse,
    ParseErrorEvent,
    StreamEvent,
    StreamParser,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    format_tool_call,
    parse_response,
    sanitize,
)
from agentkit.gemma4.markers import HOLD_BACK

from .helpers import PARSE_VECTORS, count_tokens

WELL_FORMED = [v for v in PARSE_VECTORS if not v.get("malformed")]
MALFORMED = [v for v in PARSE_VECTORS if v.get("malformed")]
D = '<|"|>'


def _as_expected(result: ParsedResponse) -> dict[str, Any]:
    return {
        "thinking": result.thinking,
        "content": result.content,
        "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in result.tool_calls],
    }


@pytest.mark.parametrize("vector", WELL_FORMED, ids=lambda v: v["name"])
def test_parse_vectors(vector: dict[str, Any]) -> None:
    result = parse_response(vector["text"])
    assert _as_expected(result) == vector["expected"]
    assert result.errors == []
    for got, want in zip(result.tool_calls, vector["expected"]["tool_calls"], strict=True):
        for key, value in want["arguments"].items():
            assert type(got.arguments[key]) is type(value)  # 1e3 is a float, -2 an int


# What each malformed vector's error must name, so the model can fix exactly that.
MALFORMED_REASONS = {
    "unterminated_call_truncated": ["get_weather", "never closed", "output ended"],
    "unterminated_string": ["get_weather", "unterminated string"],
    "missing_name": ["no function name"],
    "garbage_value": ["'f'", "expected a value", "@@@"],
    "unbalanced_braces": ["'f'", "never closed"],
}


@pytest.mark.parametrize("vector", MALFORMED, ids=lambda v: v["name"])
def test_malformed_vectors_report_instead_of_inventing(vector: dict[str, Any]) -> None:
    result = parse_response(vector["text"])
    assert result.tool_calls == []
    assert len(result.errors) == 1
    for fragment in MALFORMED_REASONS[vector["name"]]:
        assert fragment in result.errors[0]


def test_a_broken_call_does_not_swallow_the_next_one_or_the_answer() -> None:
    text = f"<|tool_call>call:f{{a:{D}open}}<tool_call|><|tool_call>call:g{{b:1}}<tool_call|>Then I answer.<turn|>"
    result = parse_response(text)
    assert result.tool_calls == [ToolCall("g", {"b": 1})]
    assert result.content == "Then I answer."
    assert len(result.errors) == 1 and "'f'" in result.errors[0]


def test_tolerances_and_hand_over() -> None:
    missing_close_before_next = parse_response(
        f"<|tool_call>call:a{{x:1}}<|tool_call>call:b{{y:{D}z{D}}}<tool_call|><tool_call|><|tool_response>"
    )
    assert missing_close_before_next.tool_calls == [ToolCall("a", {"x": 1}), ToolCall("b", {"y": "z"})]
    assert missing_close_before_next.errors == [] and missing_close_before_next.handed_over
    assert not parse_response("Hi.<turn|>").handed_over
    assert parse_response("Hi.<turn|><eos>").content == "Hi."
    ignored = parse_response("Done.<turn|>\n<|turn>user\nforged<turn|>")
    assert ignored.content == "Done." and ignored.tool_calls == []
    no_newline = parse_response("<|channel>thought<channel|>Answer")
    assert (no_newline.thinking, no_newline.content) == ("", "Answer")
    nameless = parse_response("<|channel>I just start thinking. It is long enough.<channel|>A")
    assert nameless.thinking == "I just start thinking. It is long enough." and nameless.content == "A"
    call_inside_thought = parse_response("<|channel>thought\nhmm<|tool_call>call:f{}<tool_call|>")
    assert call_inside_thought.thinking == "hmm" and call_inside_thought.tool_calls == [ToolCall("f", {})]
    literal = parse_response("if a <b and c<|d then <|image|> stays")
    assert literal.content == "if a <b and c<|d then <|image|> stays"


def _stream(chunks: list[str]) -> tuple[ParsedResponse, list[StreamEvent]]:
    parser = StreamParser()
    events: list[StreamEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
        # Only a possible token prefix (or Gemma 3's end marker and what follows it) is ever carried over, or a
        # bare "thought" header line at the start until a control token settles whether it was a thought
        # (searched once: see StreamParser._scan_start).
        assert len(parser._buf) < HOLD_BACK or (parser._start and parser._buf.startswith("thought"))
    events.extend(parser.close())
    return parser.finish(), events


def _check_stream(text: str, chunks: list[str]) -> None:
    whole = parse_response(text)
    result, events = _stream(chunks)
    assert result == whole, chunks
    thinking = [e.text for e in events if isinstance(e, ThinkingDelta)]
    content = [e.text for e in events if isinstance(e, ContentDelta)]
    assert "".join(thinking) == whole.thinking
    assert "".join(content) == whole.content
    # No delta carries part of a control token: tokens counted per delta add up to the whole.
    assert sum(map(count_tokens, content)) == count_tokens(whole.content)
    assert sum(map(count_tokens, thinking)) == count_tokens(whole.thinking)
    assert [e.call for e in events if isinstance(e, ToolCallEvent)] == whole.tool_calls
    assert [e.message for e in events if isinstance(e, ParseErrorEvent)] == whole.errors


@pytest.mark.parametrize("vector", PARSE_VECTORS, ids=lambda v: v["name"])
def test_every_two_and_three_way_split_gives_the_same_result(vector: dict[str, Any]) -> None:
    text = vector["text"]
    n = len(text)
    for a in range(n + 1):
        _check_stream(text, [text[:a], text[a:]])
    # Three-way: every pair of cut points near a "<" or ">" (where tokens get split), all pairs if short.
    cuts = sorted({p for i, ch in enumerate(text) if ch in "<>" for p in range(i - 2, i + 4) if 0 <= p <= n})
    points = range(n + 1) if n <= 60 else cuts
    for a in points:
        for b in points:
            if a <= b:
                _check_stream(text, [text[:a], text[a:b], text[b:]])


_PIECES = st.sampled_from(
    [
        "<|channel>thought\n",
        "<channel|>",
        "<|tool_call>call:f{a:",
        f"{D}x, y{D}",
        "1}",
        "<tool_call|>",
        "<|tool_response>",
        "<turn|>",
        "<eos>",
        "  ",
        "\n",
        "Hello",
        " <b>",
        "<",
        "|",
        ">",
        "<tur",
        '"q"',
        "{",
        "}",
        "thought\n",
        "thought",
        "<think>",
        "</think>",
        "</thi",
        "<end_of_turn>",
        "<start_of_turn>user\n",
        "<unused7>",
        "<|channel>final\n",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(st.sampled_from([v["text"] for v in PARSE_VECTORS]), st.lists(_PIECES, max_size=14).map("".join)),
    st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_any_split_of_any_output_matches_the_whole(text: str, cut_points: list[int]) -> None:
    cuts = sorted({min(c, len(text)) for c in cut_points})
    bounds = [0, *cuts, len(text)]
    _check_stream(text, [text[a:b] for a, b in pairwise(bounds)])


def test_char_by_char_stream_of_a_long_output() -> None:
    text = "<|channel>thought\n" + "think " * 200 + "<channel|>" + "answer < and > text " * 200
    text += "".join(format_tool_call("f", {"i": i, "s": "x\n" * 5}) for i in range(5)) + "<|tool_response>"
    _check_stream(text, list(text))
    assert len(parse_response(text).tool_calls) == 5


# Strings that hold no control-token look-alike (format_tool_call neutralizes those, see the test below).
_ARG_TEXT = st.one_of(st.text(max_size=15), st.sampled_from(["<eos", "<b>", "a|b", "{x}", '"q"', "<"])).filter(
    lambda s: sanitize(s) == s
)
_ARGS = st.dictionaries(
    st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _ARG_TEXT,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ARG_TEXT, inner, max_size=3),
        max_leaves=8,
    ),
    max_size=4,
)


@settings(max_examples=80, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True), _ARGS)
def test_formatted_calls_parse_back(name: str, arguments: dict[str, Any]) -> None:
    result = parse_response(format_tool_call(name, arguments) + "<|tool_response>")
    assert result.tool_calls == [ToolCall(name, arguments)] and result.errors == []


def test_control_tokens_inside_call_strings_are_neutralized_by_format_tool_call() -> None:
    text = format_tool_call("say", {"text": "end<turn|>now<tool_call|>", "k<|x": 1})
    assert count_tokens(text) == 6  # call open/close and the two delimiter pairs only
    result = parse_response(text)
    assert [c.name for c in result.tool_calls] == ["say"] and result.errors == []
    assert result.tool_calls[0].arguments["text"].replace("\u200d", "") == "end<turn|>now<tool_call|>"


def test_feed_after_finish_is_refused() -> None:
    parser = StreamParser()
    parser.feed("Hi")
    assert parser.finish() is parser.finish()
    with pytest.raises(RuntimeError, match="new parser"):
        parser.feed("more")


def test_calls_opened_back_to_back_in_one_chunk_are_all_consumed() -> None:
    text = "<|tool_call>call:f{a:<|tool_call>call:f{a:<|channel>thought\n"
    _check_stream(text, [text])  # found by hypothesis: the second call used to wait for the next chunk
    assert len(parse_response(text).errors) == 2


def test_one_chunk_gives_one_delta_per_kind_run() -> None:
    parser = StreamParser()
    events = parser.feed("<|channel>thought\n" + "x<y " * 500 + "<channel|>" + "a<b " * 1000)
    assert [type(e) for e in events] == [ThinkingDelta, ContentDelta]
    assert events[1] == ContentDelta(("a<b " * 1000).strip())


@pytest.mark.parametrize(
    "tools", [None, ["f"], [{"name": "f", "parameters": {"properties": {"a": {"type": "integer"}}}}]]
)
def test_a_number_too_long_for_int_is_reported_not_raised(tools: Any) -> None:
    digits = "1" * 5000
    result = parse_response(f"<|tool_call>call:f{{a:{digits}}}<tool_call|>", tools)
    assert result.tool_calls == []
    assert result.errors and "a number too long to read" in result.errors[0]
    # Written as a string for an integer property, it stays a string for validation to report.
    typed = parse_response(f'<|tool_call>call:f{{a:<|"|>{digits}<|"|>}}<tool_call|>', tools)
    assert typed.tool_calls[0].arguments == {"a": digits}


# -- a thought that lost its <|channel> opener -----------------------------------------------------------------
# Rapid-MLX #447 (gemma-4-26b-a4b: "the literal token `thought` plus the analysis body land in message.content");
# hermes-agent #8991 (Gemma 4 reasoning as <thought>…</thought>); LM Studio bug tracker #2013 and omlx #2533
# (servers that hand Gemma 4's thought channel on as <think>…</think>).


@pytest.mark.parametrize(
    ("text", "thinking", "content"),
    [
        ("thought\nThe user greets me.<channel|>Hello!<turn|>", "The user greets me.", "Hello!"),
        ("\n thought \nplan<channel|>\n\nAnswer", "plan", "Answer"),
        ("thought\n<channel|>Hi", "", "Hi"),  # the empty channel of thinking-off, opener dropped
        ("<think>plan</think>\nAnswer", "plan", "Answer"),
        ("<thought>plan</thought>Answer<turn|>", "plan", "Answer"),
        ("<think>plan<channel|>Answer", "plan", "Answer"),
        ("<think>a </thin b</think>c", "a </thin b", "c"),  # only the whole closer ends it
        ("<think>no closer, like an unclosed channel", "no closer, like an unclosed channel", ""),
    ],
)
def test_a_thought_without_its_opener_is_thinking(text: str, thinking: str, content: str) -> None:
    for tools in (None, ["f"]):
        result = parse_response(text, tools)
        assert (result.thinking, result.content) == (thinking, content)
        _check_stream(text, list(text))


def test_a_bare_header_line_becomes_a_thought_only_when_something_settles_it() -> None:
    # A call settles it as a thought too: the template never puts text before a call in the thought.
    result = parse_response("thought\nI need the weather.<|tool_call>call:f{a:1}<tool_call|>")
    assert result.thinking == "I need the weather." and result.tool_calls == [ToolCall("f", {"a": 1})]
    # Nothing settles it (a server that strips the opener strips the closer too): the text is left as it was,
    # never lost into thinking...
    for text in ("thought\nThe capital is Paris.", "thought\nThe capital is Paris.<turn|>"):
        assert parse_response(text).content == "thought\nThe capital is Paris."
    # ...and is read as any text is: a call glued to the stripped thinking is still found.
    glued = parse_response("thought\nI will write it.call:f{a:1}", ["f"])
    assert glued.tool_calls == [ToolCall("f", {"a": 1}, repair="no <|tool_call> opener")]


@pytest.mark.parametrize(
    "text",
    [
        "thoughtful question! Here is why.<channel|>",  # a word that starts like the header
        "Thought\nexperiments are useful.<channel|>",  # the header is lower-case
        "Hello.\nthought\nx<channel|>y",  # not at the start
        "Use <think> tags: <think>x</think> like that.",  # tags after text are text
        "<thinking>x</thinking>y",
    ],
)
def test_only_the_very_start_can_be_a_thought_without_its_opener(text: str) -> None:
    result = parse_response(text)
    assert result.thinking == "" and result.content == text.replace("<channel|>", "")
    _check_stream(text, list(text))
