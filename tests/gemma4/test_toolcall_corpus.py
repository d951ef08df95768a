"""Tolerant parsing: the real-world corpora, their negatives, streaming equivalence and linear work.

Each case of ``tests/data/toolcall_corpus.json`` cites the public report it comes from; the held-out
``toolcall_heldout.json`` was collected before the fixes it checks, each case citing a report, another engine's
parser or a stated reason. Recovery is on only when tools are declared; without them the parser is the exact
one the conformance vectors pin down.
"""

from __future__ import annotations

import contextlib
import json
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
)
from agentkit.gemma4 import calls as calls_module
from agentkit.gemma4 import lenient as lenient_module
from agentkit.gemma4 import parse as parse_module
from agentkit.gemma4 import repair as repair_module

from .helpers import DATA, PARSE_VECTORS, count_tokens
from .test_parse import _ARGS

CORPUS = json.loads((DATA / "toolcall_corpus.json").read_text(encoding="utf-8"))
HELDOUT = json.loads((DATA / "toolcall_heldout.json").read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = CORPUS["cases"] + HELDOUT["cases"]
NEGATIVES: list[dict[str, Any]] = CORPUS["negatives"] + HELDOUT["negatives"]
D = '<|"|>'
HOLD_BACK = parse_module._HEAD_WINDOW + 16


def _calls(result: ParsedResponse) -> list[dict[str, Any]]:
    return [{"name": c.name, "arguments": c.arguments} for c in result.tool_calls]


def test_every_case_cites_a_public_source() -> None:
    assert len(CORPUS["cases"]) >= 40 and len(CORPUS["negatives"]) >= 15
    assert len(HELDOUT["cases"]) >= 30 and len(HELDOUT["negatives"]) >= 20
    for case in CORPUS["cases"]:
        assert case["source"].startswith("https://github.com/"), case["id"]
    for case in HELDOUT["cases"] + HELDOUT["negatives"]:
        assert case["source"].startswith(("https://", "reason")), case["id"]
    assert len({c["id"] for c in CASES + NEGATIVES}) == len(CASES) + len(NEGATIVES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_corpus_case_is_recovered_or_reported(case: dict[str, Any]) -> None:
    result = parse_response(case["text"], tools=case["tools"])
    if case.get("known_miss"):  # counted as lost by the bench; it must stay text, never become another call
        assert result.tool_calls == [] and case["expected_calls"], case["known_miss"]
        return
    assert _calls(result) == case["expected_calls"]
    if case.get("expect_error"):
        assert result.errors, "a cut-off or degenerate call must be reported, not dropped"
    # A call the strict parser reads (no tools) is not marked repaired; every other one says how it was.
    strict = {json.dumps(c, sort_keys=True) for c in _calls(parse_response(case["text"]))}
    for call in result.tool_calls:
        as_dict = json.dumps({"name": call.name, "arguments": call.arguments}, sort_keys=True)
        assert (call.repair is None) == (as_dict in strict), (call, strict)


@pytest.mark.parametrize("case", NEGATIVES, ids=lambda c: c["id"])
def test_negative_corpus_invents_no_call(case: dict[str, Any]) -> None:
    assert parse_response(case["text"], tools=case["tools"]).tool_calls == []


def test_recovery_needs_declared_tools_and_a_declared_name() -> None:
    text = f"<|channel>thought\nok<channel|>call:bash{{command:{D}ls{D}}}"
    assert parse_response(text).tool_calls == []  # no tools given: exactly the strict parser
    assert parse_response(text, tools=["grep"]).tool_calls == []
    assert parse_response(text, tools=["bash"]).tool_calls == [
        ToolCall("bash", {"command": "ls"}, "no <|tool_call> opener")
    ]


def test_loose_calls_only_at_a_call_boundary() -> None:
    tools = ["get_weather"]
    assert parse_response("Sure. call:get_weather{city:Paris}", tools=tools).tool_calls == []
    after_call = parse_response(
        f"<|tool_call>call:get_weather{{city:{D}A{D}}}<tool_call|>\ncall:get_weather{{city:B}}", tools
    )
    assert [c.arguments["city"] for c in after_call.tool_calls] == ["A", "B"]
    assert after_call.tool_calls[1].repair == "no <|tool_call> opener; unquoted string"
    # A closed loose call with prose after it on the same line was prose.
    prose = parse_response("call:get_weather{city:Paris} is the syntax.", tools)
    assert prose.tool_calls == [] and prose.content == "call:get_weather{city:Paris} is the syntax."


def test_schema_types_guide_bare_values() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "f",
                "parameters": {
                    "properties": {"n": {"type": "integer"}, "zip": {"type": "string"}, "city": {"type": "string"}}
                },
            },
        }
    ]
    # Strictly unreadable (a bare "New York"), so the schema types every bare value: zip stays text.
    result = parse_response("<|tool_call>call:f{n: 42 ,zip:01234,city:New York}<tool_call|>", tools=tools)
    assert result.tool_calls[0].arguments == {"n": 42, "zip": "01234", "city": "New York"}
    bad = parse_response("<|tool_call>call:f{n:forty two}<tool_call|>", tools=tools)
    assert bad.tool_calls == [] and "'f'" in bad.errors[0]


@pytest.mark.parametrize(
    ("text", "arguments", "repair"),
    [
        (f"call: web_search {{query:{D}x{D}}}", {"query": "x"}, "spaces in the call head"),
        (f"call:web_search{{query:{D}x{D}}}}}", {"query": "x"}, "extra closing brace"),
        ('call:web_search({"query": "x"})', {"query": "x"}, "parenthesis arguments"),
        ("call:web_search{'query': 'x y'}", {"query": "x y"}, "single-quoted string"),
        ("call:web_search{query:x y z,limit=2}", {"query": "x y z", "limit": 2}, "unquoted string; '=' instead of ':'"),
    ],
)
def test_more_drifts_inside_the_call_token(text: str, arguments: dict[str, Any], repair: str) -> None:
    tools = [
        {
            "name": "web_search",
            "parameters": {"properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}},
        }
    ]
    result = parse_response(f"<|tool_call>{text}<tool_call|>", tools=tools)
    assert result.tool_calls == [ToolCall("web_search", arguments, repair)] and result.errors == []


def test_truncated_calls_are_never_completed() -> None:
    cut = parse_response(f"<|tool_call>call:get_weather{{city:{D}Par", tools=["get_weather"])
    assert cut.tool_calls == [] and "output ended" in cut.errors[0]
    # The same shape ended by a control token is a finished call whose closing delimiter was left out.
    ended = parse_response(f"<|tool_call>call:get_weather{{city:{D}Paris<tool_call|>", tools=["get_weather"])
    assert ended.tool_calls == [
        ToolCall("get_weather", {"city": "Paris"}, 'missing closing <|"|>; missing closing brace')
    ]


WELL_FORMED = [v for v in PARSE_VECTORS if not v.get("malformed")]


@pytest.mark.parametrize("vector", PARSE_VECTORS, ids=lambda v: v["name"])
def test_conformance_vectors_unchanged_with_tools_declared(vector: dict[str, Any]) -> None:
    plain = parse_response(vector["text"])
    names = [c["name"] for c in vector.get("expected", {}).get("tool_calls", [])] or ["get_weather", "f"]
    declared = parse_response(vector["text"], tools=names)
    if not vector.get("malformed"):
        assert declared == plain
        assert all(c.repair is None for c in declared.tool_calls)
    elif vector["name"] in ("unterminated_call_truncated", "missing_name", "garbage_value"):
        assert declared.tool_calls == [] and declared.errors  # truncated or garbage: still reported


def _stream(text: str, chunks: list[str], tools: Any) -> tuple[ParsedResponse, list[StreamEvent]]:
    parser = StreamParser(tools)
    events: list[StreamEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
        assert len(parser._buf) < HOLD_BACK  # a head or a token prefix at most is carried over
    events.extend(parser.close())
    return parser.finish(), events


def _check_stream(text: str, chunks: list[str], tools: Any) -> None:
    whole = parse_response(text, tools=tools)
    result, events = _stream(text, chunks, tools)
    assert result == whole, chunks
    content = [e.text for e in events if isinstance(e, ContentDelta)]
    thinking = [e.text for e in events if isinstance(e, ThinkingDelta)]
    assert "".join(content) == whole.content and "".join(thinking) == whole.thinking
    assert sum(map(count_tokens, content)) == count_tokens(whole.content)  # never half a control token
    assert [e.call for e in events if isinstance(e, ToolCallEvent)] == whole.tool_calls
    assert [e.message for e in events if isinstance(e, ParseErrorEvent)] == whole.errors


@pytest.mark.parametrize("case", CASES + NEGATIVES, ids=lambda c: c["id"])
def test_corpus_streams_like_the_whole_text(case: dict[str, Any]) -> None:
    text, tools = case["text"], case["tools"]
    for a in range(0, len(text) + 1, max(1, len(text) // 40)):
        _check_stream(text, [text[:a], text[a:]], tools)
    _check_stream(text, list(text), tools)


_PIECES = st.sampled_from(
    [
        "call:",
        "get_weather",
        "bash",
        "{",
        "}",
        "(",
        ")",
        "city:",
        "city=",
        D,
        '"',
        "'",
        "Paris",
        ",",
        " ",
        "\n",
        "thought",
        "<channel|>",
        "<|channel>thought\n",
        "<|tool_call>",
        "<tool_call|>",
        "<|tool_call|>",
        "<tool_call:",
        "<turn|>",
        "<|tool_response>",
        ">",
        "mcp:",
        "<",
        "<call>",
        "```tool_code\n",
        "```",
        "Bash",
        "[",
        "]",
        "tool_call",
        "id:",
        "args:",
        "days:",
        ";",
        "</tool_call>",
        "</call>",
        "<tool_call>",
        '{"name": "bash", ',
        '"arguments": {}}',
        "<start_function_call>",
        "<escape>",
        "<end_function_call>",
        "<start_function_response>",
        "<tool>",
        "</tool>",
        "-",
        "response:",
        "declaration:",
        "Let me check.",
        "```",
        "BEGIN_ARG:",
        "BEGIN_ARG: command",
        "END_ARG",
        "TOOL_NAME: ",
        "```tool\n",
        "[TOOL_REQUEST]",
        "[END_TOOL_REQUEST]",
        "[TOOL_CALLS]",
        "[ARGS]",
        "\\",
        "`",
        "Done.",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_PIECES, max_size=16).map("".join), st.lists(st.integers(0, 200), max_size=6))
def test_any_split_of_drifted_output_matches_the_whole(text: str, cut_points: list[int]) -> None:
    cuts = sorted({min(c, len(text)) for c in cut_points})
    bounds = [0, *cuts, len(text)]
    tools = [
        "get_weather",
        "bash",
        {"name": "get_forecast", "parameters": {"properties": {"days": {"type": "integer"}}}},
    ]
    _check_stream(text, [text[a:b] for a, b in pairwise(bounds)], tools)


def test_work_stays_linear_in_the_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Characters handed to the head matcher and the repair reader grow linearly with the output."""
    seen = {"head": 0, "repair": 0}
    real_head, real_repair = parse_module.match_loose_head, calls_module.repair_call

    def head(text: str, tools: Any) -> Any:
        seen["head"] += len(text)
        return real_head(text, tools)

    def repair(text: str, tools: Any, **kw: Any) -> Any:
        seen["repair"] += len(text)
        return real_repair(text, tools, **kw)

    monkeypatch.setattr(parse_module, "match_loose_head", head)
    monkeypatch.setattr(calls_module, "repair_call", repair)
    unit = (
        f"<|channel>thought\nstep<channel|>call:get_weather{{city:Paris, France{D},unit=c}}\n"
        "<|tool_call>:get_weather(city='Rome')<tool_call|>call:nope{x:1} "
    )
    totals = []
    for n in (50, 100):
        seen.update(head=0, repair=0)
        text = unit * n
        parser = StreamParser(["get_weather"])
        for i in range(0, len(text), 7):
            parser.feed(text[i : i + 7])
        result = parser.finish()
        assert len(result.tool_calls) == 2 * n
        totals.append(seen["head"] + seen["repair"])
    assert totals[0] > 0 and totals[1] <= 2.2 * totals[0]


def _shapes(n: int) -> dict[str, str]:
    """Argument texts of n values, shaped to make a naive forward search rescan the rest for every value."""
    return {
        "bare values, a delimiter at the end": "call:f{" + ",".join(f"a{i}:x{i}" for i in range(n)) + f",b:y{D}}}",
        "nested bare strings": "call:f{a:{" + ",".join(f"a:x{i}" for i in range(n)) + "}}",
        "unclosed delimiters": "call:f{" + ",".join(f"a:{D}x{i}" for i in range(n)) + "}",
        "single quotes": "call:f{" + ",".join(f"a:'x{i}'" for i in range(n)) + "}",
    }


def test_repair_reader_scans_linearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Characters the reader's forward searches scan stay proportional to the call, however it is shaped."""
    scanned = 0
    real_search = lenient_module._Reader.search

    def counting(self: Any, key: object, find: Any, pos: int) -> int:
        def measured(p: int) -> int:
            nonlocal scanned
            found = int(find(p))
            scanned += (found if found >= 0 else len(self.text)) - p
            return found

        return int(real_search(self, key, measured, pos))

    monkeypatch.setattr(lenient_module._Reader, "search", counting)
    tools = repair_module.DeclaredTools.of(
        [{"name": "f", "parameters": {"properties": {"a": {"type": "string"}, "b": {"type": "string"}}}}]
    )
    for label, text in _shapes(2000).items():
        scanned = 0
        with contextlib.suppress(ValueError):
            repair_module.repair_call(text, tools, complete=True)
        assert scanned <= 4 * len(text), label


@settings(max_examples=80, deadline=None)
@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,11}", fullmatch=True), _ARGS, st.sampled_from(["", "Let me see. "]))
def test_well_formed_calls_are_read_exactly_with_tools_declared(
    name: str, arguments: dict[str, Any], before: str
) -> None:
    text = before + format_tool_call(name, arguments) + "<|tool_response>"
    result = parse_response(text, tools=[name, "other"])
    assert result == parse_response(text)
    assert result.tool_calls == [ToolCall(name, arguments)] and result.tool_calls[0].repair is None


# -- held-out mechanisms: each test fails on the code before the held-out fixes ---------------------------------

WEATHER = [{"name": "get_weather", "parameters": {"properties": {"city": {"type": "string"}}}}]


def test_several_calls_in_one_block_are_each_read() -> None:
    text = f"<|tool_call>call:get_weather{{city:{D}a}}b{D}}}; call:get_weather{{city:'Rome'}}<tool_call|>"
    result = parse_response(text, tools=WEATHER)
    assert [c.arguments for c in result.tool_calls] == [{"city": "a}b"}, {"city": "Rome"}]
    assert [c.repair for c in result.tool_calls] == [
        "several calls in one <|tool_call> block",
        "single-quoted string; several calls in one <|tool_call> block",
    ]
    # Without declared tools the strict reader reports the block, as the conformance vectors pin down.
    assert parse_response(text).tool_calls == [] and parse_response(text).errors
    # A "call:" inside a string value never splits a call.
    inside = parse_response(f"<|tool_call>call:get_weather{{city:{D}x}}call:y{D}}}<tool_call|>", tools=WEATHER)
    assert inside.tool_calls == [ToolCall("get_weather", {"city": "x}call:y"})]


def test_a_cut_block_runs_only_its_finished_calls() -> None:
    result = parse_response(f"<|tool_call>call:get_weather{{city:{D}A{D}}}call:get_weather{{city:{D}B", WEATHER)
    assert [c.arguments for c in result.tool_calls] == [{"city": "A"}] and "output ended" in result.errors[0]


@pytest.mark.parametrize(
    "text",
    [
        f"<|tool_call>call:tool_call{{args:{{city:{D}Oslo{D}}},id:{D}get_weather{D}}}<tool_call|>",
        '<|tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}<tool_call|>',
        '<|tool_call>call:function{name:"get_weather",arguments:"{\\"city\\": \\"Oslo\\"}"}<tool_call|>',
        '<|tool_call>{"id": "c1", "type": "function", '
        '"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}<tool_call|>',
    ],
)
def test_envelopes_inside_the_token_are_unwrapped(text: str) -> None:
    (call,) = parse_response(text, tools=WEATHER).tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Oslo"}) and "wrapped" in (call.repair or "")


@pytest.mark.parametrize(
    "text",
    [
        f"<|tool_call>call:tool_call{{args:{{city:{D}Oslo{D}}},id:{D}rm_rf{D}}}<tool_call|>",  # names no tool
        f"<|tool_call>call:tool_call{{args:{{}},id:{D}get_weather{D},extra:1}}<tool_call|>",  # more than an envelope
        '<|tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}',  # cut: never completed
    ],
)
def test_envelope_lookalikes_are_not_unwrapped(text: str) -> None:
    assert all(c.name != "get_weather" for c in parse_response(text, tools=WEATHER).tool_calls)


def test_a_declared_envelope_name_is_a_call_to_that_tool() -> None:
    tools = [*WEATHER, "tool_call"]
    text = f"<|tool_call>call:tool_call{{args:{{}},id:{D}get_weather{D}}}<tool_call|>"
    assert parse_response(text, tools=tools).tool_calls[0].name == "tool_call"


def test_schema_types_strings_that_are_numbers_booleans_or_json() -> None:
    schema = {
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": ["number", "null"]},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "integer"}},
            "opts": {"type": "object", "properties": {"k": {"type": "integer"}}},
            "zip": {"type": "string"},
        }
    }
    text = (
        f"<|tool_call>call:f{{n:{D}3{D},x:{D}2.5{D},ok:{D}False{D},tags:[{D}1{D},2],"
        f'opts:{D}{{"k": "4"}}{D},zip:{D}01234{D}}}<tool_call|>'
    )
    (call,) = parse_response(text, tools=[{"name": "f", "parameters": schema}]).tool_calls
    assert call.arguments == {"n": 3, "x": 2.5, "ok": False, "tags": [1, 2], "opts": {"k": 4}, "zip": "01234"}
    assert call.repair == "value typed by the schema"
    # A string that is not wholly a number stays as written: schema validation reports it.
    bad = parse_response(
        f"<|tool_call>call:f{{n:{D}3 days{D}}}<tool_call|>", tools=[{"name": "f", "parameters": schema}]
    )
    assert bad.tool_calls == [ToolCall("f", {"n": "3 days"})]


def test_tool_name_case_resolves_only_when_unambiguous() -> None:
    text = f"<|tool_call>call:GET_WEATHER{{city:{D}Oslo{D}}}<tool_call|>"
    assert parse_response(text, tools=WEATHER).tool_calls[0].name == "get_weather"
    assert parse_response(text, tools=["get_weather", "Get_Weather"]).tool_calls[0].name == "GET_WEATHER"


def test_bare_strings_in_a_list_end_at_commas() -> None:
    tools = [{"name": "f", "parameters": {"properties": {"tags": {"type": "array", "items": {"type": "string"}}}}}]
    result = parse_response("<|tool_call>call:f{tags:[a b, c,d]}<tool_call|>", tools=tools)
    assert result.tool_calls[0].arguments == {"tags": ["a b", "c", "d"]}


def test_call_opener_and_gemma3_tool_code_block() -> None:
    call = parse_response(f"<call>get_weather{{city:{D}Oslo{D}}}<eos>", tools=WEATHER)
    assert call.tool_calls[0].arguments == {"city": "Oslo"} and call.content == ""
    block = parse_response("```tool_code\nget_weather(city='Oslo')\n```\n", tools=WEATHER)
    assert block.tool_calls[0].arguments == {"city": "Oslo"} and block.content == ""
    # After prose, a block is a call only if the output ends (or hands over) right after it; followed by prose or
    # by the end of the turn it was an example: text.
    for text in (
        "See:\n```tool_code\nget_weather(city='Oslo')\n```<turn|>",
        "See:\n```tool_code\nget_weather(city='Oslo')\n```\nThat is the format.",
        "<call>get_weather{x} is a tag",
    ):
        assert parse_response(text, tools=WEATHER).tool_calls == []


def test_a_loose_call_cut_by_the_end_is_reported_not_run() -> None:
    result = parse_response(f"<|channel>thought\nx<channel|>call:get_weather{{city:{D}Os", tools=WEATHER)
    assert result.tool_calls == [] and "'get_weather' was cut off" in result.errors[0]
    assert parse_response("call: me maybe", tools=WEATHER).errors == []  # no declared tool named: just text


def test_a_call_inside_the_thought_channel_is_a_call() -> None:
    """Decision: <|tool_call> inside an unclosed thought ends the thought and is a real call (as vLLM does).

    The token is only ever written by the model itself (untrusted text is neutralized before it reaches a
    prompt), so it carries intent; text after the call is visible content and a later <channel|> is dropped.
    A call-shaped line in a thought *without* the token stays thinking: thoughts discuss calls.
    """
    text = f"<|channel>thought\nplan<|tool_call>call:get_weather{{city:{D}Oslo{D}}}<tool_call|>more<channel|>"
    result = parse_response(text, tools=WEATHER)
    assert result.tool_calls == [ToolCall("get_weather", {"city": "Oslo"})]
    assert (result.thinking, result.content) == ("plan", "more")
    planned = parse_response(f"<|channel>thought\ncall:get_weather{{city:{D}Oslo{D}}}<channel|>ok", WEATHER)
    assert planned.tool_calls == [] and planned.content == "ok"


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["f", "g"]), _ARGS), min_size=2, max_size=4),
    st.sampled_from(["", "\n", ",", "; ", " , "]),
)
def test_any_calls_written_in_one_block_are_read_back(calls: list[tuple[str, dict[str, Any]]], sep: str) -> None:
    """Well-formed calls joined in one <|tool_call> block come back exactly, whatever their strings hold."""
    inner = sep.join(format_tool_call(name, args)[len("<|tool_call>") : -len("<tool_call|>")] for name, args in calls)
    text = f"<|tool_call>{inner}<tool_call|><|tool_response>"
    result = parse_response(text, tools=["f", "g"])
    assert [(c.name, c.arguments) for c in result.tool_calls] == calls and result.errors == []
    _check_stream(text, [text[: len(text) // 3], text[len(text) // 3 :]], ["f", "g"])


@pytest.mark.parametrize(
    ("text", "repair"),
    [
        (f"<call>get_weather{{city:{D}Oslo{D}}}</call>", "drifted opener '<call>' instead of <|tool_call>; no 'call:'"),
        ("<tool_call>call:get_weather{city:'Oslo'}\n</tool_call>", "drifted opener '<tool_call>' instead of"),
        (f"<|tool_call>call:get_weather{{city:{D}Oslo{D}}}</tool_call>", "closed by '</tool_call>'"),
        ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>', "call wrapped in a JSON"),
        ('<|tool_call|>{"name": "get_weather", "arguments": {"city": "Oslo"}}<tool_call|>', "call wrapped in a JSON"),
    ],
)
def test_other_formats_closers_and_envelopes_after_an_opener(text: str, repair: str) -> None:
    """Hermes/Qwen-style ``</tool_call>`` closers and JSON bodies after an explicit opener are calls; no leftovers."""
    result = parse_response(text, tools=WEATHER)
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("get_weather", {"city": "Oslo"})]
    assert repair in (result.tool_calls[0].repair or "") and result.content == "" and result.errors == []


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',  # names no declared tool
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Os',  # cut off: never completed
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}',  # no opener at all: an answer
        "</tool_call> closes a Hermes call.",  # a closer with no call before it is text
    ],
)
def test_envelope_and_closer_lookalikes_stay_text(text: str) -> None:
    result = parse_response(text, tools=WEATHER)
    assert result.tool_calls == [] and result.content == text


def test_a_tool_code_block_may_hold_several_calls() -> None:
    text = "```tool_code\nget_weather(city='Oslo')\nget_weather(city='Rome')\n```\nBoth asked."
    result = parse_response(text, tools=WEATHER)
    assert [c.arguments["city"] for c in result.tool_calls] == ["Oslo", "Rome"] and result.content == "Both asked."
    assert result.tool_calls[0].repair.startswith("```tool_code block instead of <|tool_call>")  # type: ignore[union-attr]
    # A line in the block that calls no declared tool ends the recovery there: it stays visible.
    other = parse_response("```tool_code\nget_weather(city='Oslo')\nprint(1)\n```", tools=WEATHER)
    assert len(other.tool_calls) == 1 and other.content == "print(1)\n```"
    for chunks in (list(text), [text[:20], text[20:]]):
        _check_stream(text, chunks, WEATHER)


REQUIRED_CITY = [
    {
        "name": "get_weather",
        "parameters": {"properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]},
    }
]


@pytest.mark.parametrize(
    ("text", "content", "repair"),
    [
        ('<|tool_call>call:get_weather("Oslo")<tool_call|>', "", "parenthesis arguments; positional argument"),
        (f"<|tool_call>call:get_weather{{city:{D}Oslo{D}}}<|tool_call|>", "", "closed by '<|tool_call|>'"),
        (f"<|tool_call>call:get_weather{{city:{D}Oslo{D}}}\nLet me check.", "Let me check.", "text after the call"),
        (f"<|channel>thought\nplan<|tool_call>call:get_weather{{city:{D}Oslo{D}}}<channel|>Done.", "Done.", None),
    ],
)
def test_positional_mirrored_closer_trailing_prose_and_channel_end(text: str, content: str, repair: str | None) -> None:
    result = parse_response(text, tools=REQUIRED_CITY)
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("get_weather", {"city": "Oslo"})]
    assert result.content == content and result.errors == []
    assert (result.tool_calls[0].repair or "").startswith(repair or "") and (repair is None) == (
        result.tool_calls[0].repair is None
    )


@pytest.mark.parametrize(
    "text",
    [
        '<|tool_call>call:get_weather("Oslo", 3)<tool_call|>',  # two positionals: which is which is a guess
        f"<|tool_call>call:get_weather{{city:{D}Oslo{D}}} days:3}}",  # more arguments after a stray brace
        f"<|tool_call>call:get_weather{{city:{D}Oslo{D}}} Note: later",  # "Note:" could be a key: not prose
    ],
)
def test_guesses_are_not_made(text: str) -> None:
    result = parse_response(text, tools=REQUIRED_CITY)
    assert result.tool_calls == [] and result.errors


CODE = [
    {
        "name": "run",
        "parameters": {
            "properties": {"code": {"type": "string"}, "args": {"type": "array", "items": {"type": "string"}}}
        },
    }
]


@pytest.mark.parametrize(
    ("inner", "code"),
    [
        (f"code:{D}print({D}hi{D}){D},args:[]", 'print("hi")'),
        (f"code:{D}x = {D}{D}{D}doc{D}{D}{D}{D}", 'x = """doc"""'),
        (f"args:[{D}a{D}],code:{D}s = {D}a, b{D}.split(','){D}", "s = \"a, b\".split(',')"),
    ],
)
def test_a_delimiter_inside_a_string_is_a_quote(inner: str, code: str) -> None:
    (call,) = parse_response(f"<|tool_call>call:run{{{inner}}}<tool_call|>", tools=CODE).tool_calls
    assert call.arguments["code"] == code and '<|"|> inside a string read as a quote' in (call.repair or "")


def test_a_missing_closing_delimiter_still_stops_at_the_next_key() -> None:
    text = f"<|tool_call>call:run{{code:{D}x = 1,args:[{D}a{D}]}}<tool_call|>"
    (call,) = parse_response(text, tools=CODE).tool_calls
    assert call.arguments == {"code": "x = 1", "args": ["a"]} and "missing closing" in (call.repair or "")


def test_a_python_list_of_calls_in_a_tool_code_block() -> None:
    text = "```tool_code\n[get_weather(city='Oslo'), get_weather(city=\"Rome\")]\n```"
    result = parse_response(text, tools=WEATHER)
    assert [c.arguments["city"] for c in result.tool_calls] == ["Oslo", "Rome"] and result.content == ""
    assert "a Python list of calls" in (result.tool_calls[0].repair or "")
    for bad in ("```tool_code\n[get_weather(city='Oslo'), rm(path='/')]\n```", "```tool_code\n[get_weather(city='Os"):
        assert parse_response(bad, tools=WEATHER).tool_calls == []  # one undeclared or cut call: none of them runs
    _check_stream(text, list(text), WEATHER)


def test_blocks_and_lists_of_many_calls_are_read_in_linear_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Characters handed to the repair reader stay proportional to a block of n calls or a list of n calls."""
    seen = 0
    real_repair = calls_module.repair_call

    def repair(text: str, tools: Any, **kw: Any) -> Any:
        nonlocal seen
        seen += len(text)
        return real_repair(text, tools, **kw)

    monkeypatch.setattr(calls_module, "repair_call", repair)
    shapes = {
        "block": lambda n: (
            "<|tool_call>" + "".join(f"call:get_weather{{city:'c{i}'}}" for i in range(n)) + "<tool_call|>"
        ),
        "list": lambda n: "```tool_code\n[" + ", ".join(f"get_weather(city='c{i}')" for i in range(n)) + "]\n```",
    }
    for label, make in shapes.items():
        totals = []
        for n in (200, 400):
            seen = 0
            assert len(parse_response(make(n), tools=WEATHER).tool_calls) == n, label
            totals.append(seen)
        assert totals[0] > 0 and totals[1] <= 2.2 * totals[0], label


# -- round 4: each test fails on the code before the round-4 fixes ---------------------------------------------------

AGENT = [*REQUIRED_CITY, {"name": "get_time", "parameters": {"properties": {}}}, "bash"]


@pytest.mark.parametrize(
    "text",
    [
        f"response:get_weather{{value:{D}Sunny{D}}}",  # a result the model made up
        "<|channel>thought\nok<channel|>response:get_weather{temperature:24}<turn|>",
        f"<|tool_call>response:get_weather{{value:{D}Sunny{D}}}<tool_call|>",
        f"declaration:get_weather{{description:{D}Weather{D}}}",  # an echoed declaration, tokens stripped
    ],
)
def test_gemma_format_words_are_never_a_namespace(text: str) -> None:
    assert parse_response(text, tools=AGENT).tool_calls == []
    # Well-formed in the token, the name is kept as written (the loop reports an unknown tool), never resolved.
    well_formed = f"<|tool_call>call:Declaration.get_weather{{city:{D}Oslo{D}}}<tool_call|>"
    assert [c.name for c in parse_response(well_formed, tools=AGENT).tool_calls] == ["Declaration.get_weather"]


def test_a_made_up_result_after_a_call_is_not_another_call() -> None:
    text = f"<|tool_call>call:get_time{{}}<tool_call|>response:get_time{{value:{D}noon{D}}}<tool_response|>Noon."
    assert [c.name for c in parse_response(text, tools=AGENT).tool_calls] == ["get_time"]
    # A tool that is really called "response" is still that tool.
    assert (
        parse_response("<|tool_call>call:response{}<tool_call|>", tools=["response"]).tool_calls[0].name == "response"
    )


def test_a_hyphen_before_the_name_inside_the_token() -> None:
    (call,) = parse_response(f"<|tool_call>-get_weather{{city:{D}Oslo{D}}}<tool_call|>", tools=AGENT).tool_calls
    assert (call.name, call.arguments, call.repair) == ("get_weather", {"city": "Oslo"}, "'-NAME' without 'call'")
    assert parse_response(f"-get_weather{{city:{D}Oslo{D}}}", tools=AGENT).tool_calls == []  # a list item, no token


@pytest.mark.parametrize("text", ["<|tool_call>call:get_time<tool_call|>", "<|tool_call>get_time<|tool_response>"])
def test_a_call_without_braces_to_a_tool_without_parameters(text: str) -> None:
    (call,) = parse_response(text, tools=AGENT).tool_calls
    assert (call.name, call.arguments) == ("get_time", {}) and "no arguments written" in (call.repair or "")


@pytest.mark.parametrize(
    "text",
    [
        "<|tool_call>call:get_weather<tool_call|>",  # city is required: nothing to run
        "<|tool_call>call:get_time now<tool_call|>",  # words after the name are no arguments
        "<|tool_call>call:get_time",  # cut off: the name may go on
        "<|tool_call>call:get_tim<tool_call|>",  # no such tool
    ],
)
def test_a_call_without_braces_is_otherwise_reported(text: str) -> None:
    result = parse_response(text, tools=AGENT)
    assert result.tool_calls == [] and result.errors


@pytest.mark.parametrize(
    ("tail", "is_call"),
    [
        ("", True),
        ("\n", True),
        ("<|tool_response>", True),
        ("\n<|tool_call>call:get_time{}<tool_call|>", True),
        ("<turn|>", False),
        ("<eos>", True),  # E2B/E4B write <eos> for the hand-over (Google's gemma tool manager says so)
        ("<tool_call|><turn|>", True),  # the model's own closer token: no quoted example holds it
        ("\nThat is the syntax.", False),
        (" is the syntax.", False),
    ],
)
def test_a_call_line_after_prose_needs_the_hand_over_or_the_end(tail: str, is_call: bool) -> None:
    text = f"I'll check the weather.\ncall:get_weather{{city:{D}Oslo{D}}}{tail}"
    result = parse_response(text, tools=AGENT)
    first = [(c.name, c.arguments) for c in result.tool_calls[:1]]
    assert first == ([("get_weather", {"city": "Oslo"})] if is_call else [])
    assert result.content.startswith("I'll check the weather.")
    for chunks in (list(text), [text[: len(text) // 2], text[len(text) // 2 :]]):
        _check_stream(text, chunks, AGENT)


@pytest.mark.parametrize(
    "text",
    [
        f"Example:\n```\ncall:get_weather{{city:{D}Oslo{D}}}\n```",  # inside a code block
        f"Example:\n```text\ncall:get_weather{{city:{D}Oslo{D}}}",  # a code block not closed yet
        f"Say:\nget_weather{{city:{D}Oslo{D}}}",  # no explicit marker: a bare name after prose is prose
        f"- call:get_weather{{city:{D}Oslo{D}}}",  # a list item
        f"One:\ncall:get_time{{}} is one way\ncall:get_weather{{city:{D}Oslo{D}}}",  # an example line came first
    ],
)
def test_lines_that_are_examples_stay_text(text: str) -> None:
    assert parse_response(text, tools=AGENT).tool_calls == []
    _check_stream(text, list(text), AGENT)


@pytest.mark.parametrize(
    ("text", "content"),
    [
        ("<start_function_call>call:bash{command:<escape>echo {a,b}<escape>}<end_function_call>", ""),
        ("Sure. <start_function_call>call:bash{command:<escape>ls<escape>}<end_function_call>", "Sure."),
        ("<start_function_call>call:bash{command:<escape>ls<escape>}<end_function_call><start_function_response>", ""),
        ('Sure.\n<tool>\n{"name": "bash", "parameters": {"command": "ls"}}\n</tool>', "Sure."),
    ],
)
def test_function_gemma_and_tool_tag_calls(text: str, content: str) -> None:
    result = parse_response(text, tools=AGENT)
    assert [c.name for c in result.tool_calls] == ["bash"] and result.content == content
    assert result.tool_calls[0].arguments["command"] in ("ls", "echo {a,b}")
    for chunks in (list(text), [text[:7], text[7:]]):
        _check_stream(text, chunks, AGENT)


@pytest.mark.parametrize(
    "text",
    [
        "It says <start_function_call>call:bash{command:<escape>rm -rf ~<escape>}<end_function_call>, ignored.<turn|>",
        '<tool>\n{"name": "rm_rf", "parameters": {}}\n</tool>',  # no such tool
        "Use the <tool> element.",
    ],
)
def test_tag_lookalikes_after_text_stay_text(text: str) -> None:
    result = parse_response(text, tools=AGENT)
    assert result.tool_calls == [] and result.content == text.removesuffix("<turn|>")


_LINE_TAILS = st.sampled_from(
    ["", "\n", "<|tool_response>", "<turn|>", "<eos>", "\nSo.", " so.", "\n```", "<tool_call|>"]
)
_LINE_HEADS = st.sampled_from(
    [
        f"call:get_weather{{city:{D}Oslo{D}}}",
        "<start_function_call>call:get_weather{city:<escape>Oslo<escape>}<end_function_call>",
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>',
        "```tool_code\nget_weather(city='Oslo')\n```",
        "get_weather{city:Oslo}",
        f"response:get_weather{{city:{D}Oslo{D}}}",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["Let me check.\n", "Sure. ", "```\n", "> ", "<|channel>thought\nplan\n"]),
    _LINE_HEADS,
    _LINE_TAILS,
    st.lists(st.integers(0, 300), max_size=5),
)
def test_calls_after_prose_stream_like_the_whole_and_need_the_end(
    before: str, head: str, tail: str, cut_points: list[int]
) -> None:
    """Any split gives the whole text's result; a call after prose exists only if the end or the hand-over follows."""
    text = before + head + tail
    cuts = sorted({min(c, len(text)) for c in cut_points})
    bounds = [0, *cuts, len(text)]
    _check_stream(text, [text[a:b] for a, b in pairwise(bounds)], AGENT)
    calls = parse_response(text, tools=AGENT).tool_calls
    if calls:
        assert tail in ("", "\n", "<|tool_response>", "<eos>", "<tool_call|>")
        assert before in ("Let me check.\n", "Sure. ")
        assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Oslo"})]


# -- round 5: each test fails on the code before the round-5 fixes ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'thought\nThe user wants a.txt.call:bash{command:<|"|>touch a.txt<|"|>}',  # <channel|> stripped
        "Checking (once)call:bash{command:ls}<|tool_response>",
        "Let me look.\n<start_function_call>call:bash{command:<escape>ls<escape>}<end_function_call><eos>",
    ],
)
def test_a_call_glued_to_a_sentence_or_ended_by_eos(text: str) -> None:
    result = parse_response(text, tools=AGENT)
    assert [c.name for c in result.tool_calls] == ["bash"]
    for chunks in (list(text), [text[:9], text[9:]]):
        _check_stream(text, chunks, AGENT)


@pytest.mark.parametrize(
    "text",
    [
        "Done.call:bash{command:ls} was the plan.<turn|>",  # prose follows
        "Total recall:bash{command:ls}",  # a word that ends in "call"
        "Use `call:bash{command:ls}`",  # inline code
        "Done. call:bash{command:ls} and more",  # after a space: prose
        "Ok.\nDone.call:bash{command:ls}<turn|>",  # the turn ended: an example
    ],
)
def test_glued_lookalikes_stay_text(text: str) -> None:
    assert parse_response(text, tools=AGENT).tool_calls == []
    _check_stream(text, list(text), AGENT)
