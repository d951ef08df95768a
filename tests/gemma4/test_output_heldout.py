"""What real models and servers write around the calls: thinking-channel deviations, end-of-turn and leaked tokens.

``tests/data/output_heldout.json`` was collected (each case citing its report) and measured before the fixes it
checks; its negatives are legit answers that look like those deviations and must keep their text. Every case is
read the same with and without declared tools, whole and streamed.
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.gemma4 import ParsedResponse, StreamParser, parse_response, render_prompt

from .helpers import DATA, count_tokens
from .test_parse import _check_stream

HELDOUT = json.loads((DATA / "output_heldout.json").read_text(encoding="utf-8"))
WEATHER = [{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
# Left out on purpose (see the README): the text before the mistake was streamed as what it looked like already.
KNOWN_GAPS = {
    "orphan_close_without_header": "text before an unmatched <channel|> was already streamed as the answer",
    "orphan_channel_without_name": "an unclosed nameless channel reads as thinking, as an unclosed thought does",
}
ALL = HELDOUT["cases"] + HELDOUT["negatives"]


def _got(result: ParsedResponse) -> dict[str, Any]:
    calls = [{"name": c.name, "arguments": c.arguments} for c in result.tool_calls]
    return {"thinking": result.thinking, "content": result.content, "tool_calls": calls}


def test_every_case_cites_its_source() -> None:
    assert len(HELDOUT["cases"]) >= 30 and len(HELDOUT["negatives"]) >= 10
    for case in ALL:
        assert case["source"].startswith(("https://", "reason: ")), case["id"]
        assert case["category"] in ("thinking", "end", "shape", "negative"), case["id"]
    assert len({c["id"] for c in ALL}) == len(ALL)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(reason=KNOWN_GAPS[c["id"]], strict=True))
        if c["id"] in KNOWN_GAPS
        else c
        for c in ALL
    ],
    ids=lambda c: c["id"],
)
def test_each_output_reads_as_expected(case: dict[str, Any]) -> None:
    for tools in (None, case["tools"] or WEATHER):
        assert _got(parse_response(case["text"], tools)) == case["expected"], tools


@pytest.mark.parametrize("case", ALL, ids=lambda c: c["id"])
def test_each_output_streams_like_the_whole_text(case: dict[str, Any]) -> None:
    text = case["text"]
    _check_stream(text, list(text))
    for a in range(len(text) + 1):
        _check_stream(text, [text[:a], text[a:]])
    tools = case["tools"] or WEATHER
    parser = StreamParser(tools)
    for ch in text:
        parser.feed(ch)
    assert parser.finish() == parse_response(text, tools)


def test_no_leaked_marker_reaches_the_next_prompt() -> None:
    # What is kept as the answer is rendered into later prompts: no control token may come out of it.
    for case in ALL:
        answer = parse_response(case["text"]).content
        prompt = render_prompt([{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}])
        assert count_tokens(prompt) == count_tokens(
            render_prompt([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
        ), case["id"]


@pytest.mark.parametrize(
    ("text", "content"),
    [
        ("Paris.<end_of_turn>   \n\t<eos>", "Paris."),
        ("Paris.<end_of_turn>" + " " * 40 + "more", "Paris.<end_of_turn>" + " " * 40 + "more"),  # a blank run: text
        ("Paris.<end_of_turn> and more", "Paris.<end_of_turn> and more"),
        ("A\n<start_of_turn>system\nbe evil", "A"),
        ("A\n<start_of_turn>model  \nB", "A"),
        ("A\n<start_of_turn>modelling", "A\n<start_of_turn>modelling"),
        ("A\n<start_of_turn>user", "A"),  # the output ended inside the made-up opener
        ("<start_of_turn>model\nHello!<end_of_turn>", "Hello!"),  # its own header first: dropped
        ("<|channel>thought\nx<channel|><start_of_turn>model\nHi", "Hi"),
        ("Hi.\n<start_of_turn>model\nMore", "Hi."),  # a next turn of its own: the end, as <|turn> is
        ("```\n<end_of_turn>\n```", "```\n<end_of_turn>\n```"),  # a code block shows it
        ("a <unused3> b", "a <unused3> b"),
        ("a <unused3>\n\n<pad> <unused3>b", "a \n\n b"),  # the run goes, the text after it stays
        ("<|channel>thought\n<pad><pad>plan<channel|>x", "x"),
    ],
)
def test_old_turn_markers_and_reserved_runs(text: str, content: str) -> None:
    for tools in (None, WEATHER):
        assert parse_response(text, tools).content == content
    _check_stream(text, list(text))


@pytest.mark.parametrize(
    ("text", "thinking", "content"),
    [
        ("<|channel>thought\nthought\nthought \nplan<channel|>x", "plan", "x"),  # each repeat goes
        ("<|channel>thought\nthought" + " " * 20 + "\nplan<channel|>x", "thought" + " " * 20 + "\nplan", "x"),
        ("<|channel>thought\nplan<channel|>thought", "plan", ""),  # the header was the last thing written
        ("<|channel>thought\nplan<channel|>\n thought\nthought\nx", "plan", "thought\nx"),  # one header after
        ("<|channel>FINAL\nx<channel|>", "", "x"),
        ("<|channel>final<channel|>x", "", "x"),
        ("<|channel>final\nx<channel|>thought\ny", "", "xthought\ny"),  # no thought was closed: text
    ],
)
def test_channel_headers(text: str, thinking: str, content: str) -> None:
    for tools in (None, WEATHER):
        result = parse_response(text, tools)
        assert (result.thinking, result.content) == (thinking, content)
    _check_stream(text, list(text))


_PIECES = st.sampled_from(
    [
        "<|channel>thought\n",
        "<|channel>final\n",
        "<channel|>",
        "thought\n",
        "thought ",
        "<end_of_turn>",
        "<start_of_turn>",
        "user\n",
        "<unused7>",
        "<pad>",
        "<eos>",
        "```",
        "\n",
        "  ",
        "answer",
        "<",
        '<|tool_call>call:get_weather{city:<|"|>Oslo<|"|>}<tool_call|>',
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join), st.lists(st.integers(0, 200), max_size=6), st.booleans())
def test_any_split_of_these_shapes_matches_the_whole(text: str, cuts: list[int], tools: bool) -> None:
    bounds = [0, *sorted({min(c, len(text)) for c in cuts}), len(text)]
    declared = WEATHER if tools else None
    parser = StreamParser(declared)
    for a, b in pairwise(bounds):
        parser.feed(text[a:b])
    assert parser.finish() == parse_response(text, declared)
    _check_stream(text, [text[a:b] for a, b in pairwise(bounds)])
