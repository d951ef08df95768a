"""A Gemma 4 object value cut off mid-stream, closed where it was cut and parsed: what has been written so far.

A caller showing a tool call's arguments while the model writes them (structured output's partial results,
:class:`agentkit.output.PartialCallReader`) needs the complete part of a prefix. The open string, then the open
lists and objects are closed the way they would end; an element cut in the middle (a half-written key,
``tru``) is dropped back to the last complete one. The result is parsed, not validated.
"""

from __future__ import annotations

from typing import Any

from .tokens import STRING_DELIM
from .values import ValueSyntaxError, parse_value

__all__ = ["parse_partial_object"]

_CLOSERS = {"{": "}", "[": "]"}


def parse_partial_object(text: str) -> dict[str, Any] | None:
    """``text`` (starting with ``{``) closed where it was cut and parsed; None if nothing complete yet."""
    stack: list[str] = []
    cuts: list[tuple[int, tuple[str, ...]]] = []  # (end of a complete prefix, containers open there)
    in_string = False
    i = 0
    while i < len(text):
        if text.startswith(STRING_DELIM, i):
            in_string = not in_string
            i += len(STRING_DELIM)
            continue
        char = text[i]
        if not in_string:
            if char in _CLOSERS:
                stack.append(char)
                cuts.append((i + 1, tuple(stack)))
            elif char in "}]":
                if not stack:
                    break
                stack.pop()
                if not stack:  # the arguments are complete
                    return _try_parse(text[: i + 1])
            elif char == ",":
                cuts.append((i, tuple(stack)))
        i += 1
    tail = text
    if in_string:
        for n in range(len(STRING_DELIM) - 1, 0, -1):  # a delimiter cut in half
            if tail.endswith(STRING_DELIM[:n]):
                tail = tail[:-n]
                break
        closed = _try_parse(tail + STRING_DELIM + "".join(_CLOSERS[c] for c in reversed(stack)))
        if closed is not None:
            return closed
    else:
        closed = _try_parse(tail + "".join(_CLOSERS[c] for c in reversed(stack)))
        if closed is not None:
            return closed
    for end, open_at in reversed(cuts[-4:]):  # the last element was cut: drop it
        closed = _try_parse(text[:end] + "".join(_CLOSERS[c] for c in reversed(open_at)))
        if closed is not None:
            return closed
    return None


def _try_parse(text: str) -> dict[str, Any] | None:
    try:
        value = parse_value(text)
    except ValueSyntaxError:
        return None
    return value if isinstance(value, dict) else None
