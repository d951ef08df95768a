"""How one block of call text is laid out when it is not a single ``call:NAME{…}``: pure text, no names.

Real Gemma 4 outputs put several calls in one ``<|tool_call>`` block (``call:a{…}call:b{…}``), close a call with
another format's tag (``</tool_call>``, a mirrored ``<|tool_call|>``), follow a call with prose, or write a
Python list of calls in a ``tool_code`` block. These helpers find where such pieces begin and end, skipping
strings in ``<|"|>`` or ``"`` so that text inside a value never splits anything; each is one linear scan.
Which piece is a call, and to which declared tool, is :mod:`agentkit.gemma4.repair`'s business.
"""

from __future__ import annotations

import re
from typing import Final

from .tokens import STRING_DELIM

__all__ = [
    "CLOSING_TAGS",
    "LM_STUDIO_CLOSER",
    "split_call_lines",
    "split_calls",
    "split_python_list",
    "strip_closing_tag",
    "value_end",
]

_WS: Final = " \t\r\n"

#: Closers models borrow from other formats (Hermes/Qwen ``</tool_call>``, a Gemma 3 template's ``</tool>``,
#: FunctionGemma's ``<end_function_call>``, LM Studio's ``[END_TOOL_REQUEST]``): after a call they end it.
LM_STUDIO_CLOSER: Final = "[END_TOOL_REQUEST]"
CLOSING_TAGS: Final = (
    "<end_function_call>",
    "</function_call>",
    "</tool_call>",
    "</call>",
    "</tool>",
    LM_STUDIO_CLOSER,
)
_TRAILING_CLOSERS: Final = (*CLOSING_TAGS, "<|tool_call|>")


def strip_closing_tag(text: str) -> tuple[str, str | None]:
    """``text`` without a closing tag at its end (XML-style, or ``<|tool_call|>`` mirrored), and the tag.

    Trimmed with ``str`` methods, not a regex: ``\\s*TAG\\s*\\Z`` searched is tried from every character of a
    blank run, and one call with 40,000 spaces in a value took seconds.
    """
    body = text.rstrip()
    for tag in _TRAILING_CLOSERS:
        if body.endswith(tag):
            return body[: -len(tag)].rstrip(), tag
    return text, None


_NEXT_CALL = re.compile(r"[\s,;]*+(?=call\s*+:)")


def split_calls(text: str) -> list[str]:
    """The calls of one ``<|tool_call>`` block that holds several (``call:a{…}call:b{…}``), split; linear.

    A split happens only where a balanced top-level value closes and ``call:`` follows (after spaces, a comma
    or a semicolon); strings in ``<|"|>`` or ``"`` are skipped, so a ``call:`` inside a value never splits.
    """
    return _split_after_values(text, _NEXT_CALL)


_LINE_BREAK = re.compile(r"[ \t]*+\r?\n\s*+(?=\S)")


def split_call_lines(text: str) -> list[str]:
    """The calls of a ```` ```tool_code ```` block written one per line (``f(a=1)\\ng(b=2)``), split; linear.

    A split happens only where a balanced top-level value closes and a line break follows, so a call whose
    arguments span lines stays whole.
    """
    return _split_after_values(text, _LINE_BREAK)


def _split_after_values(text: str, separator: re.Pattern[str]) -> list[str]:
    """``text`` split where a balanced top-level value closes and ``separator`` matches right after it."""
    pieces: list[str] = []
    start = pos = 0
    # Each search resumes where a top-level value closed (no string open, depth 0): one scan in all.
    while (end := value_end(text, pos)) >= 0:
        m = separator.match(text, end)
        if m is not None:
            pieces.append(text[start:end])
            start = m.end()
        pos = end
    pieces.append(text[start:])
    return pieces


def value_end(text: str, start: int = 0) -> int:
    """Index just past the first balanced top-level ``{…}``/``(…)`` from ``start`` (strings skipped), or -1."""
    i, n, depth, quote = start, len(text), 0, ""
    while i < n:
        if text.startswith(STRING_DELIM, i):
            if quote in ("", STRING_DELIM):
                quote = "" if quote else STRING_DELIM
            i += len(STRING_DELIM)
            continue
        ch = text[i]
        if quote == '"':
            if ch == "\\":
                i += 1
            elif ch == '"':
                quote = ""
        elif quote:
            pass
        elif ch == '"':
            quote = '"'
        elif ch in "{([":
            depth += 1
        elif ch in "})]" and depth > 0:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def split_python_list(text: str) -> list[str] | None:
    """The calls of a Python list ``[f(a=1), g(b=2)]`` (as Gemma's prompted guides ask for), or ``None``."""
    inner = text.strip(_WS)
    if not (inner.startswith("[") and inner.endswith("]")):
        return None
    inner = inner[1:-1]
    pieces: list[str] = []
    pos, n = 0, len(inner)
    while True:
        while pos < n and inner[pos] in _WS + ",":
            pos += 1
        if pos >= n:
            return pieces or None
        end = value_end(inner, pos)
        if end < 0:
            return None
        pieces.append(inner[pos:end])
        pos = end
