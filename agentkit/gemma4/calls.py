"""Read the text of one call once it has ended: what it says, with no state and no streaming.

:class:`~agentkit.gemma4.StreamParser` buffers a call's text until a terminator and hands it here; the answer is
the calls it holds (or an error message saying what was wrong) and any prose the model wrote after the call inside
the same block. The strict reader (:mod:`agentkit.gemma4.values`) is tried first; only with declared tools is the
name-aware second read of :mod:`agentkit.gemma4.repair` tried, so without tools this is exactly the conformance
vectors' reader.
"""

from __future__ import annotations

import re
from typing import Any, Final

from .blocks import split_call_lines, split_calls, split_python_list, strip_closing_tag, value_end
from .repair import (
    FUNCTION_GEMMA_ESCAPE,
    FUNCTION_GEMMA_OPENER,
    TOOL_CODE_FENCE,
    DeclaredTools,
    repair_call,
    unwrap_envelope,
)
from .results import ToolCall
from .tokens import STRING_DELIM, TOOL_CALL_END
from .values import TOOL_NAME_CHARS, ValueSyntaxError, parse_arguments

__all__ = ["join_repair", "read_block", "read_call", "read_loose"]

_WS: Final = " \t\r\n"
_CALL_HEAD = re.compile(rf"\s*+call:([{TOOL_NAME_CHARS}]*)")
_MORE_ARGUMENTS = re.compile(r"[\w\-. ]{1,64}\s*+[:=]")


def join_repair(repair: str | None, note: str) -> str:
    """A call's repair note with one more liberty added."""
    return f"{repair}; {note}" if repair else note


def read_block(text: str, terminator: str | None, tools: DeclaredTools) -> tuple[list[ToolCall | str], str] | None:
    """A block :func:`read_call` rejected, read again as several calls or as a call then prose; ``None`` if neither.

    Returns the calls (or error messages) of the block, and the prose that followed its call inside it.
    """
    pieces = split_calls(text)  # "call:a{…}call:b{…}" in one block: each is read on its own
    if len(pieces) > 1:
        outcomes: list[ToolCall | str] = []
        for k, piece in enumerate(pieces):
            read = read_call(piece, terminator if k == len(pieces) - 1 else TOOL_CALL_END, tools)
            if isinstance(read, ToolCall):
                read = ToolCall(
                    read.name, read.arguments, join_repair(read.repair, "several calls in one <|tool_call> block")
                )
            outcomes.append(read)
        return outcomes, ""
    end = value_end(text)  # "call:f{…}Let me check." with no <tool_call|>: the call, then prose
    if end > 0 and _reads_as_prose(text[end:].lstrip(_WS)):
        call = read_call(text[:end], TOOL_CALL_END, tools)
        if isinstance(call, ToolCall):
            note = "text after the call before <tool_call|>"
            return [ToolCall(call.name, call.arguments, join_repair(call.repair, note))], text[end:]
    return None


def read_call(text: str, terminator: str | None, tools: DeclaredTools | None) -> ToolCall | str:
    """One call's text read strictly, then (with declared tools) forgivingly: a ToolCall or an error message."""
    head = _CALL_HEAD.match(text)
    ended = "the output ended" if terminator is None else f"{terminator} came"
    if head is None:
        message = f"a tool call must start with 'call:NAME{{', but it starts with {text[:30]!r}"
        body, tag = strip_closing_tag(text)
        if tools is not None and body.lstrip(_WS).startswith("{") and (terminator is not None or tag):
            try:  # {"name": …, "arguments": {…}} written inside the token
                envelope = unwrap_envelope("", parse_arguments(body), tools)
            except ValueSyntaxError:
                envelope = None
            if envelope is not None:
                note = envelope[2] + (f"; closed by {tag!r}" if tag else "")
                return ToolCall(envelope[0], envelope[1], note)
    elif not head.group(1):
        message = f"a tool call has no function name: {text[:40]!r}"
    else:
        name = head.group(1)
        try:
            arguments = parse_arguments(text[head.end() :])
        except ValueSyntaxError as exc:
            message = f"the arguments of tool call {name!r} are malformed: {exc}"
            if terminator != TOOL_CALL_END:
                message += f"; {ended} before <tool_call|>"
        else:
            if tools is None or name in tools.schemas:
                return ToolCall(name, arguments)
            resolved = tools.resolve(name)  # "ns.get_weather", "Get_Weather": a declared name
            if resolved is not None:
                return ToolCall(resolved[0], arguments, resolved[1])
            envelope = unwrap_envelope(name, arguments, tools)  # call:tool_call{args:{…},id:NAME}
            return ToolCall(*envelope) if envelope is not None else ToolCall(name, arguments)
    if tools is not None:
        try:
            name, arguments, repair = repair_call(text, tools, complete=terminator is not None)
        except ValueError:
            pass
        else:
            return ToolCall(name, arguments, repair)
    return message


def read_loose(opener: str, text: str, tools: DeclaredTools, *, complete: bool) -> list[ToolCall]:
    """The calls of a loose call (written without ``<|tool_call>``) after ``opener``; ValueError if it is none."""
    if opener == TOOL_CODE_FENCE:
        repairs = ["```tool_code block instead of <|tool_call>"]
    else:
        repairs = [f"drifted opener {opener!r} instead of <|tool_call>" if opener else "no <|tool_call> opener"]
    body = "call:" + text if opener == "<tool_call:" else text
    if opener == FUNCTION_GEMMA_OPENER:  # FunctionGemma quotes strings with <escape> where Gemma 4 has <|"|>
        body = body.replace(FUNCTION_GEMMA_ESCAPE, STRING_DELIM)
    if opener and body.lstrip(_WS).startswith("{"):  # "<tool_call>{"name": …, "arguments": …}"
        return [ToolCall(*_loose_envelope(body, tools, repairs, complete))]
    if opener == TOOL_CODE_FENCE and body.lstrip(_WS).startswith("["):  # [f(a=1), g(b=2)]
        pieces = split_python_list(body) if complete else None
        if pieces is None:
            raise ValueError("not a complete list of calls")
        notes = [*repairs, "a Python list of calls"]
        return [ToolCall(*repair_call(piece, tools, complete=True, head_repairs=notes)) for piece in pieces]
    lines = split_call_lines(body) if opener == TOOL_CODE_FENCE else [body]
    if len(lines) > 1:  # one call per line in the block: each must be a call, or none is
        notes = [*repairs, "several calls in one ```tool_code block"]
        return [
            ToolCall(*repair_call(line, tools, complete=complete or k < len(lines) - 1, head_repairs=notes))
            for k, line in enumerate(lines)
        ]
    return [ToolCall(*repair_call(body, tools, complete=complete, head_repairs=repairs))]


def _loose_envelope(
    body: str, tools: DeclaredTools, repairs: list[str], complete: bool
) -> tuple[str, dict[str, Any], str]:
    """A name/arguments object after a drifted opener, if it names one declared tool; else ValueError."""
    body, tag = strip_closing_tag(body)
    if not complete and tag is None:
        raise ValueError("cut off")
    envelope = unwrap_envelope("", parse_arguments(body), tools)  # ValueSyntaxError is a ValueError
    if envelope is None:
        raise ValueError("not a call envelope")
    notes = [*repairs, envelope[2]] + ([f"closed by {tag!r}"] if tag else [])
    return envelope[0], envelope[1], "; ".join(notes)


def _reads_as_prose(text: str) -> bool:
    """Text after a call's closing brace that is prose, not more of its arguments (``b:2}``) or a stray closer."""
    return (
        text[:1].isalpha()
        and not _MORE_ARGUMENTS.match(text)
        and text.count("}") <= text.count("{")
        and text.count(")") <= text.count("(")
    )
