"""Read a call whose arguments are Continue.dev's ``BEGIN_ARG``/``END_ARG`` blocks instead of ``{…}``.

Continue.dev prompts models without native tools to write a ```` ```tool ```` block: ``TOOL_NAME: name``, then one
``BEGIN_ARG: key`` line, the value's lines and an ``END_ARG`` line per argument (its
``core/tools/systemMessageTools``). Gemma 4 run through Continue mixes that with its own head: ``call:name:`` and
``BEGIN_ARG:`` blocks without keys, the values in the order the tool declares its parameters (ollama/ollama#18275,
#18471). A value is trimmed and, as Continue reads it, JSON when it parses as JSON, except for a parameter the
schema types as a string, whose text is kept as written.

Only complete blocks count: a value whose ``END_ARG`` never came was cut off, and more positional values than the
tool has parameters fit no mapping; both are errors, never a call. Where such a call ends while it streams is
:mod:`agentkit.gemma4.loose`'s business; which tool it names, :mod:`agentkit.gemma4.repair`'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from .coerce import type_of

__all__ = ["BEGIN_ARG", "BLOCKS_HEAD", "END_ARG", "read_arg_blocks"]

BEGIN_ARG: Final = "BEGIN_ARG"
#: The most blank space between the head's line and the first ``BEGIN_ARG`` (as between blocks): a head followed by
#: endless blank lines is no call, and waiting for its ``BEGIN_ARG`` re-read the head at every chunk.
MAX_GAP: Final = 64
END_ARG: Final = "END_ARG"
#: ``call:name:`` (Gemma's head, its colon doubled) or ``TOOL_NAME: name`` (Continue's), then a line break and the
#: first ``BEGIN_ARG``. Group 1 is the name as written.
BLOCKS_HEAD: Final = re.compile(
    r"\s*+(?:call[ \t]*+:[ \t]*+|TOOL_NAME[ \t]*+:[ \t]*+)([A-Za-z_][\w.:\-]*?)[ \t]*+(?::[ \t]*+)?\r?\n"
    rf"\s{{0,{MAX_GAP}}}+(?=BEGIN_ARG[ \t]*:)"
)
_BEGIN = re.compile(r"BEGIN_ARG[ \t]*+:([^\n]*+)\n")  # the key is the line's rest, trimmed
_END = re.compile(r"(?:^|\n)[ \t]*+END_ARG[ \t]*+(?=\r?\n|\Z)")
_WS: Final = " \t\r\n"


def read_arg_blocks(text: str, pos: int, schema: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The arguments of the blocks from ``text[pos]`` (the first ``BEGIN_ARG``) to the end; ValueError if none fit.

    Returns the arguments and the liberties taken (positional values).
    """
    props = schema.get("properties")
    props = props if isinstance(props, Mapping) else {}
    free = [key for key in props]  # parameters a positional value may still take, in declared order
    arguments: dict[str, Any] = {}
    notes: list[str] = []
    n = len(text)
    while True:
        while pos < n and text[pos] in _WS:
            pos += 1
        if pos >= n:
            break
        begin = _BEGIN.match(text, pos)
        if begin is None:
            raise ValueError(f"expected BEGIN_ARG but found {text[pos : pos + 20]!r}")
        end = _END.search(text, begin.end() - 1)
        if end is None:
            raise ValueError("an argument block has no END_ARG: the call was cut off")
        key = begin.group(1).strip()
        if not key:
            if not free:
                raise ValueError(f"more positional BEGIN_ARG values than the tool's {len(props)} parameters")
            key = free[0]
            if "positional BEGIN_ARG values, in declared order" not in notes:
                notes.append("positional BEGIN_ARG values, in declared order")
        if key in arguments:
            raise ValueError(f"argument {key!r} is given twice")
        if key in free:
            free.remove(key)
        prop = props.get(key)
        arguments[key] = _value(text[begin.end() : end.start()], prop if isinstance(prop, Mapping) else {})
        pos = end.end()
    if not arguments:
        raise ValueError("no argument blocks")
    return arguments, notes


def _value(raw: str, schema: Mapping[str, Any]) -> Any:
    """A block's value as Continue reads it: trimmed, JSON when it is JSON, unless the schema says string."""
    value = raw.strip()
    if type_of(schema) == "string":
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value
