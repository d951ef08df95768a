"""Long blank runs inside and around calls: read in time linear in the output, and read as before.

A model that collapses into writing whitespace, or a tool result full of it that the model repeats, fed regexes
whose adjacent ``\\s*`` split one run every way (cubic: 2,000 spaces after ``<|tool_call>`` took 21 s), a trailing
``\\s*TAG\\s*\\Z`` searched from every blank, a ``BEGIN_ARG`` key line of spaces, and a held-back blank run grown
by string concatenation. Each input below took minutes to hours on the code before; the timeout only catches a
hang, it measures nothing (``tools/bench/prompt_security.py`` prints the figures).
"""

from __future__ import annotations

from typing import Any

import pytest

from agentkit.gemma4 import StreamParser, parse_response
from agentkit.gemma4 import parse as parse_module
from agentkit.gemma4.blocks import strip_closing_tag

WRITE: list[dict[str, Any]] = [
    {
        "name": "write_file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "n": {"type": "integer"}}},
    }
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "text",
    [
        "<|tool_call>" + " " * 20_000 + "!<tool_call|>",  # cubic in _HEAD's three \s*
        "<|tool_call>" + "\n" * 20_000 + "<tool_call|>",
        "<|tool_call>call:write_file{path:1}" + " \n" * 200_000 + "x</tool_call>",  # the closer's \s*…\Z
        "call:write_file:\nBEGIN_ARG: path" + " \t" * 100_000 + "x\nv\nEND_ARG\n",  # the key line's lazy group
        "call:write_file:\nBEGIN_ARG:\nv\n" + "  " * 100_000 + "END_ARGx\nEND_ARG\n",
    ],
    ids=["spaces-in-call", "newlines-in-call", "blank-before-closer", "begin-arg-key-line", "end-arg-lookalike"],
)
def test_blank_runs_in_a_call_are_read_in_linear_time(text: str) -> None:
    result = parse_response(text, WRITE)
    assert len(result.tool_calls) + len(result.errors) <= 1


def test_the_recoveries_still_read_calls_around_blank_runs() -> None:
    text = "call:write_file:\nBEGIN_ARG: path   \t\nnotes.txt\n   END_ARG  \nBEGIN_ARG: n\n3\nEND_ARG\n"
    assert [c.arguments for c in parse_response(text, WRITE).tool_calls] == [{"path": "notes.txt", "n": 3}]
    call = "<|tool_call>  \n call:write_file{path:1}  \n</tool_call>"
    assert [c.name for c in parse_response(call, WRITE).tool_calls] == ["write_file"]
    assert strip_closing_tag("call:f{}  \n [END_TOOL_REQUEST] \n") == ("call:f{}", "[END_TOOL_REQUEST]")
    assert strip_closing_tag("call:f{}  <|tool_call|>") == ("call:f{}", "<|tool_call|>")
    assert strip_closing_tag("call:f{} </tool_call> x") == ("call:f{} </tool_call> x", None)


def test_a_blocks_head_followed_by_endless_blank_lines_is_not_held_back() -> None:
    """``call:name:`` then blank lines: past a short gap no ``BEGIN_ARG`` is waited for, so the head is not re-read
    at every chunk (quadratic) and the text streams."""
    seen = 0
    real = parse_module.match_loose_head

    def head(text: str, tools: Any) -> Any:
        nonlocal seen
        seen += len(text)
        return real(text, tools)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parse_module, "match_loose_head", head)
        totals = []
        for n in (20_000, 40_000):
            seen = 0
            text = "call:write_file:" + "\n" * n + "x"
            parser = StreamParser(WRITE)
            shown = sum(
                len(getattr(e, "text", "")) for i in range(0, len(text), 64) for e in parser.feed(text[i : i + 64])
            )
            parser.finish()
            totals.append(seen)
            assert shown > n // 2  # streamed, not held to the end
    assert totals[0] > 0 and totals[1] <= 2.2 * totals[0]


class _Counted(str):
    """A chunk that counts the characters a concatenation before it copies (``held + chunk``)."""

    copied = 0

    def __radd__(self, other: str) -> str:
        _Counted.copied += len(other)
        return other + str(self)


def test_a_held_bare_thought_header_is_not_copied_per_chunk() -> None:
    """A bare ``thought`` header waits for a control token; its text was re-joined with every chunk (quadratic:
    4 MB without one took seconds). Now chunks that settle nothing are kept aside and joined once."""
    _Counted.copied = 0
    parser = StreamParser(WRITE)
    parser.feed("thought\n")
    for _ in range(2000):
        assert parser.feed(_Counted("a " * 32)) == []  # held, as before
    parser.feed("<channel|>ok")
    result = parser.finish()
    assert result.content == "ok" and len(result.thinking) == 2000 * 64 - 1
    assert _Counted.copied <= 4 * 2000 * 64
