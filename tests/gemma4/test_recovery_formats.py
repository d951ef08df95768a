"""Round 7 of tolerant parsing: other tools' call formats Gemma writes, Python strings, prose glued to a call.

Each test fails on the code before round 7 (``tests/data/toolcall_heldout.json`` holds the cited cases). The rule
that guards every one of them: a format is a call only for a declared tool, at a call boundary or on a line of its
own followed by the hand-over or the end of the output; anywhere else it is text.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.gemma4 import ParsedResponse, ToolCall, parse_response

from .test_toolcall_corpus import _check_stream

D = '<|"|>'
TERMINAL = {
    "name": "run_terminal_command",
    "parameters": {
        "type": "object",
        "properties": {"command": {"type": "string"}, "waitForCompletion": {"type": "boolean"}},
    },
}
NEW_FILE = {
    "name": "create_new_file",
    "parameters": {"type": "object", "properties": {"filepath": {"type": "string"}, "contents": {"type": "string"}}},
}
RECALL = {"name": "Recall", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}
WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
WRITE = {
    "name": "write_file",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}},
}
TOOLS = [TERMINAL, NEW_FILE, RECALL, WEATHER, WRITE]


def _calls(result: ParsedResponse) -> list[tuple[str, dict[str, Any]]]:
    return [(c.name, c.arguments) for c in result.tool_calls]


# -- Continue.dev's BEGIN_ARG / END_ARG blocks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        (  # Gemma's head, positional values in the declared order, inside the token
            "<|tool_call>call:create_new_file:\nBEGIN_ARG:\na.py\nEND_ARG\n"
            "BEGIN_ARG:\nx = {'a': \"}\"}\nEND_ARG\n<tool_call|>",
            [("create_new_file", {"filepath": "a.py", "contents": "x = {'a': \"}\"}"})],
        ),
        (  # no token, at the start, then the hand-over; a JSON value for a boolean parameter
            "call:run_terminal_command:\nBEGIN_ARG:\nls\nEND_ARG\nBEGIN_ARG:\nfalse\nEND_ARG\n<|tool_response>",
            [("run_terminal_command", {"command": "ls", "waitForCompletion": False})],
        ),
        (  # named blocks in Continue's own ```tool block; a string parameter keeps "123" as written
            "```tool\nTOOL_NAME: run_terminal_command\nBEGIN_ARG: command\n123\nEND_ARG\n```",
            [("run_terminal_command", {"command": "123"})],
        ),
        (  # after prose, on a line of its own, then the end of the output
            "I'll list the files.\ncall:run_terminal_command:\nBEGIN_ARG:\nls -la\nEND_ARG",
            [("run_terminal_command", {"command": "ls -la"})],
        ),
        (  # "END_ARG" inside a value's line is text
            "call:create_new_file:\nBEGIN_ARG:\nnotes.md\nEND_ARG\nBEGIN_ARG:\nwrite END_ARG last\nEND_ARG\n",
            [("create_new_file", {"filepath": "notes.md", "contents": "write END_ARG last"})],
        ),
    ],
)
def test_begin_arg_blocks_are_calls(text: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
    result = parse_response(text, tools=TOOLS)
    assert _calls(result) == calls and result.errors == []
    assert "BEGIN_ARG/END_ARG argument blocks" in (result.tool_calls[0].repair or "")
    assert parse_response(text).tool_calls == []  # without declared tools: the strict parser only


@pytest.mark.parametrize(
    ("text", "reported"),
    [
        ("I'll list the files.\ncall:run_terminal_command:\nBEGIN_ARG:\nls\nEND_ARG\nThat shows them.", False),
        ("Continue wants:\n```tool\nTOOL_NAME: run_terminal_command\nBEGIN_ARG: command\nls\nEND_ARG\n```\nOK?", False),
        ("call:rm_everything:\nBEGIN_ARG:\n/\nEND_ARG\n<|tool_response>", False),  # not declared
        ("<|tool_call>call:run_terminal_command:\nBEGIN_ARG:\nls\nEND_ARG\n" + "BEGIN_ARG:\nx\nEND_ARG\n" * 2, True),
        ("call:run_terminal_command:\nBEGIN_ARG:\nls", True),  # cut off before END_ARG: reported, never run
        (
            "<|tool_call>call:run_terminal_command:\nBEGIN_ARG: command\nls\nEND_ARG\n"
            "BEGIN_ARG: command\npwd\nEND_ARG\n",  # the same argument twice
            True,
        ),
    ],
)
def test_begin_arg_lookalikes_are_no_calls(text: str, reported: bool) -> None:
    result = parse_response(text, tools=TOOLS)
    assert result.tool_calls == []
    assert bool(result.errors) == reported


# -- LM Studio's and Mistral's wrappers ---------------------------------------------------------------------------

REQUEST = '[TOOL_REQUEST]{"name": "Recall", "arguments": {"query": "x"}}[END_TOOL_REQUEST]'


@pytest.mark.parametrize(
    ("text", "content"),
    [
        (REQUEST, ""),
        ("<|channel>thought\nplan<channel|>" + REQUEST, ""),
        ("Let me look that up.\n" + REQUEST + "\n<|tool_response>", "Let me look that up."),
        ('[TOOL_CALLS]Recall[ARGS]{"query": "x"}', ""),
        ('Searching.\n[TOOL_CALLS]Recall[ARGS]{"query": "x"}', "Searching."),
    ],
)
def test_lm_studio_and_mistral_wrappers_are_calls(text: str, content: str) -> None:
    result = parse_response(text, tools=TOOLS)
    assert _calls(result) == [("Recall", {"query": "x"})] and result.content == content


@pytest.mark.parametrize(
    "text",
    [
        "The wrapper is " + REQUEST + " in LM Studio.",
        "For example:\n" + REQUEST + "\nwhere x is your query.",
        '[TOOL_CALLS]Forget[ARGS]{"query": "x"}',  # not declared
        '[TOOL_CALLS]Recall{"query": "x"}',  # no [ARGS]: not Mistral's format
        "[TOOL_REQUEST]" + '{"name": "Recall", "arguments": {"query": "x"}',  # cut off
    ],
)
def test_wrapper_lookalikes_are_no_calls(text: str) -> None:
    assert parse_response(text, tools=TOOLS).tool_calls == []


# -- a ```tool_code block of several calls after prose -------------------------------------------------------------


def test_tool_code_block_of_several_calls_after_prose() -> None:
    block = "```tool_code\nget_weather(city='Paris')\nget_weather(\n  city='Tokyo')\n```"
    result = parse_response("Checking both.\n" + block + "\n<|tool_response>", tools=TOOLS)
    assert _calls(result) == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Tokyo"})]
    assert result.content == "Checking both." and "several calls" in (result.tool_calls[1].repair or "")
    for after in ("\nThese would fetch both.", "<turn|>"):  # an example: prose or the turn's end follows
        assert parse_response("For example:\n" + block + after, tools=TOOLS).tool_calls == []
    other_code = "Look:\n```tool_code\nget_weather(city='Paris')\nos.remove('x')\n```"
    assert parse_response(other_code, tools=TOOLS).tool_calls == []  # one line is no declared call: code


# -- Python strings in Python-style calls --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "content"),
    [
        (r"path='a', content='it\'s'", "it's"),
        (r"path='a', content='one\ntwo'", "one\ntwo"),
        (r"path='a', content='caf\u00e9'", "café"),
        (r"path='a', content='\\d+'", "\\d+"),
        (r"path='a', content='\d+'", "\\d+"),  # an unknown escape stays as written, as in Python
        (r"path='a', content='C:\Users\me'", "C:\\Users\\me"),  # not Python's escapes: kept as written
        (r'path="a", content="it\'s"', "it's"),
        ("path='a', content='it's'", "it's"),  # an unescaped apostrophe stays text
    ],
)
def test_python_escapes_in_parenthesis_calls(arguments: str, content: str) -> None:
    result = parse_response(f"<|tool_call>call:write_file({arguments})<tool_call|>", tools=TOOLS)
    assert _calls(result) == [("write_file", {"path": "a", "content": content})]


def test_gemma_braces_keep_backslashes() -> None:
    """Gemma's own format has no escapes: a backslash in a quoted value of call:NAME{…} is text."""
    result = parse_response(r"<|tool_call>call:write_file{path:'a',content:'x\ny'}<tool_call|>", tools=TOOLS)
    assert _calls(result) == [("write_file", {"path": "a", "content": r"x\ny"})]


def test_backtick_strings() -> None:
    text = f"<|tool_call>call:write_file{{path:{D}a.css{D},content:`b {{\n  c: 'd';\n}}`}}<tool_call|>"
    assert _calls(parse_response(text, tools=TOOLS)) == [
        ("write_file", {"path": "a.css", "content": "b {\n  c: 'd';\n}"})
    ]
    inline = f"<|tool_call>call:write_file{{path:{D}a{D},content:`x` is the name}}<tool_call|>"
    assert _calls(parse_response(inline, tools=TOOLS)) == [("write_file", {"path": "a", "content": "`x` is the name"})]


# -- prose glued to a call at the start ------------------------------------------------------------------------------


def test_prose_glued_to_a_call_is_no_namespace() -> None:
    call = f"call:write_file{{path:{D}a.txt{D}}}"
    result = parse_response("Done." + call + "<|tool_response>", tools=TOOLS)
    assert result.content == "Done." and result.tool_calls == [
        ToolCall("write_file", {"path": "a.txt"}, "no <|tool_call> opener")
    ]
    assert parse_response("Done." + call + "\nThat is the call.", tools=TOOLS).tool_calls == []
    assert parse_response("<|tool_call>x.call:write_file{path:'a'}<tool_call|>", tools=TOOLS).tool_calls == []
    namespaced = parse_response(f"<|tool_call>call:mcp:files:write_file{{path:{D}a{D}}}<tool_call|>", tools=TOOLS)
    assert _calls(namespaced) == [("write_file", {"path": "a"})]


# -- streaming: the new formats split anywhere read as the whole text ------------------------------------------------

_FORMATS = [
    REQUEST,
    '[TOOL_CALLS]Recall[ARGS]{"query": "a[1]"}',
    "call:run_terminal_command:\nBEGIN_ARG:\nls\nEND_ARG\n",
    "```tool\nTOOL_NAME: create_new_file\nBEGIN_ARG: filepath\na\nEND_ARG\nBEGIN_ARG: contents\n{\nEND_ARG\n```",
    "```tool_code\nget_weather(city='P')\nget_weather(city='Q')\n```",
    r"```tool_code" + "\n" + r"write_file(path='a', content='it\'s\n')" + "\n```",
    f"Done.call:write_file{{path:{D}a{D}}}",
]
_AROUND = ["", "Sure.\n", "Sure. ", "<|channel>thought\nx<channel|>", "\n"]
_AFTER = ["", "<|tool_response>", "\nMore prose.", " and prose", "<turn|>", "<eos>", "\n\n"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(_AROUND), st.sampled_from(_FORMATS), st.sampled_from(_AFTER)), max_size=3),
    st.lists(st.integers(0, 400), max_size=8),
)
def test_new_formats_stream_like_the_whole_text(parts: list[tuple[str, str, str]], cut_points: list[int]) -> None:
    text = "".join(a + f + b for a, f, b in parts)
    bounds = [0, *sorted({min(c, len(text)) for c in cut_points}), len(text)]
    _check_stream(text, [text[a:b] for a, b in pairwise(bounds)], TOOLS)
