"""The Gemma value codec: how call arguments and tool results are written inside the native format.

Gemma 4 does not use JSON for arguments. A value is one of::

    <|"|>any text, newlines included<|"|>     string (the delimiter is one token; there is no escape)
    42   -0.5   1e+16                           number, written as Python writes it
    true   false   null                         (``None`` is accepted when parsing, see the protocol doc)
    {key:value,other:value}                     mapping: bare keys, sorted case-insensitively like Jinja's dictsort
    [value,value]                               list

Why the odd rules:

- Keys are bare in the reference template. A key that could not be read back bare (spaces, ``:``, braces …)
  is written as ``<|"|>key<|"|>`` instead, the template's own ``escape_keys`` form, so every JSON object
  round-trips.
- A string cannot contain the delimiter ``<|"|>`` itself: there is no escape. :func:`format_value` neutralizes
  it with :func:`~agentkit.gemma4.sanitize.sanitize` (a zero-width joiner lands inside it), so the output stays
  well-formed and the text still reads the same; that one substring does not round-trip. Everything else
  does, exactly.
- :func:`format_value` writes every other character of a string verbatim, control-token look-alikes
  included: it is the codec, not the safety layer. Prompts are built by :func:`agentkit.gemma4.render`, which
  marks string contents as untrusted segments so that ``Prompt.text`` neutralizes them and
  ``Prompt.token_ids`` encodes them with special-token parsing off.

:func:`parse_value` is lenient where real models are untidy: JSON double-quoted strings, ``None``/``True``/
``False``, quoted keys, whitespace between items and a trailing comma are all accepted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from enum import Enum
from typing import Any, Final

from .coerce import NUMBER, read_number
from .sanitize import sanitize
from .tokens import STRING_DELIM, TOOL_CALL_END, TOOL_CALL_START

__all__ = [
    "LITERALS",
    "TOOL_NAME_CHARS",
    "ValueCursor",
    "ValueSyntaxError",
    "check_tool_name",
    "format_tool_call",
    "format_value",
    "iter_sorted_items",
    "parse_value",
    "write_value",
]

#: Receives one piece of output: ``(text, trusted)``. Untrusted pieces are string contents and keys.
Emit = Callable[[str, bool], None]

#: The characters of a tool name, as a regex character class's body: what the parser reads after ``call:``.
#: The one statement of the rule; tool registration, toolset renaming and the grammar all go through it.
TOOL_NAME_CHARS = r"A-Za-z0-9_.\-"
_TOOL_NAME = re.compile(f"[{TOOL_NAME_CHARS}]+\\Z")
_BARE_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
#: The bare words a value may be, as both readers take them (JSON's and Python's spellings).
LITERALS: Final[Mapping[str, Any]] = {
    "true": True,
    "false": False,
    "null": None,
    "None": None,
    "True": True,
    "False": False,
}
_WORDS: dict[str, Any] = {
    **LITERALS,
    "NaN": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
}
_WORD = re.compile(r"-?[A-Za-z]+")
_WS = " \t\r\n"
# The stdlib's JSON string scanner (C-accelerated); typeshed does not declare it.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_BARE_KEY_READ = re.compile(r"[^\s:,{}\[\]\"<>]+")


class ValueSyntaxError(ValueError):
    """Raised when text is not a well-formed Gemma value; the message says where and what was expected."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position})")
        self.position = position


def iter_sorted_items(mapping: Mapping[Any, Any]) -> list[tuple[str, Any]]:
    """Items in the order the reference template writes them (Jinja ``dictsort``: case-insensitive, stable)."""
    return sorted(((str(k), v) for k, v in mapping.items()), key=lambda kv: kv[0].lower())


def _format_number(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _plain(value: Any) -> Any:
    """Turn enum members, dataclasses and pydantic models into plain data, so tool results need no prep."""
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return value


def write_value(value: Any, emit: Emit) -> None:
    """Write ``value`` as pieces: structure is trusted, string contents and keys are not."""
    if isinstance(value, str):
        emit(STRING_DELIM, True)
        emit(value, False)
        emit(STRING_DELIM, True)
    elif value is True:
        emit("true", True)
    elif value is False:
        emit("false", True)
    elif value is None:
        emit("null", True)
    elif isinstance(value, int | float) and not isinstance(value, Enum):
        emit(_format_number(value), True)
    elif isinstance(value, Mapping):
        emit("{", True)
        first = True
        for key, item in iter_sorted_items(value):
            if not first:
                emit(",", True)
            first = False
            write_key(key, emit)
            emit(":", True)
            write_value(item, emit)
        emit("}", True)
    elif isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        emit("[", True)
        for i, item in enumerate(items):
            if i:
                emit(",", True)
            write_value(item, emit)
        emit("]", True)
    else:
        plain = _plain(value)
        if plain is value:
            raise TypeError(
                f"cannot write a {type(value).__name__} as a Gemma value; convert it to str, number, bool, "
                "None, dict or list first"
            )
        write_value(plain, emit)


def write_key(key: str, emit: Emit) -> None:
    """Bare when it reads back bare (the template's form), else delimited like a string."""
    if _BARE_KEY.match(key):
        emit(key, False)
    else:
        emit(STRING_DELIM, True)
        emit(key, False)
        emit(STRING_DELIM, True)


def _neutralize_delimiter(text: str) -> str:
    return sanitize(text) if STRING_DELIM in text else text


def format_value(value: Any) -> str:
    """The native text of a JSON-like value; strings verbatim except a literal ``<|"|>`` (see module doc)."""
    parts: list[str] = []

    def emit(text: str, trusted: bool) -> None:
        parts.append(text if trusted else _neutralize_delimiter(text))

    write_value(value, emit)
    return "".join(parts)


def check_tool_name(name: str) -> str:
    """Return ``name`` if the format can carry it (letters, digits, ``_``, ``-``, ``.``), else ValueError."""
    if not _TOOL_NAME.match(name):
        raise ValueError(
            f"tool name {name!r} cannot appear in a Gemma call; use only letters, digits, '_', '-' and '.'"
        )
    return name


def format_tool_call(name: str, arguments: Mapping[str, Any]) -> str:
    """``<|tool_call>call:NAME{…}<tool_call|>``: a call as the model writes it (keys sorted).

    Unlike :func:`format_value`, every control-token look-alike inside strings and keys is neutralized
    (not just the delimiter): this text goes into prompts and back through
    :func:`~agentkit.gemma4.parse_response`, which ends a call at a control token even inside a string.
    """
    parts = [TOOL_CALL_START, "call:", check_tool_name(name)]

    def emit(text: str, trusted: bool) -> None:
        parts.append(text if trusted else sanitize(text))

    write_value(dict(arguments), emit)
    parts.append(TOOL_CALL_END)
    return "".join(parts)


_MAX_DEPTH = 100


class ValueCursor:
    """A position in one string and a nesting depth: what both value readers walk with.

    The strict reader below and the forgiving one in :mod:`agentkit.gemma4.repair` differ in what a value is;
    how a list is walked (items, commas, the closing bracket, the nesting limit) is the same, so it is here once.
    """

    __slots__ = ("depth", "pos", "text")

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos
        self.depth = 0

    def enter(self) -> None:
        # Model output is untrusted: a thousand "{" must give an error, not a RecursionError.
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.fail(f"values nested deeper than {_MAX_DEPTH} levels")

    def skip_ws(self) -> None:
        text, pos, n = self.text, self.pos, len(self.text)
        while pos < n and text[pos] in _WS:
            pos += 1
        self.pos = pos

    def fail(self, message: str) -> ValueSyntaxError:
        return ValueSyntaxError(message, self.pos)

    def peek(self) -> str:
        """The next character after whitespace (``pos`` moved to it); an error if the text ended."""
        text, pos, n = self.text, self.pos, len(self.text)
        while pos < n and text[pos] in _WS:  # skip_ws() inline: this runs once per value
            pos += 1
        self.pos = pos
        if pos >= n:
            raise self.fail("expected a value but the text ended")
        return text[pos]

    def items(self, read_item: Callable[[], Any]) -> list[Any]:
        """The list whose ``[`` is at ``pos``, each item read by ``read_item``."""
        self.pos += 1  # "["
        self.enter()
        result: list[Any] = []
        while True:
            self.skip_ws()
            if self.pos >= len(self.text):
                raise self.fail("unbalanced brackets: a [ is never closed")
            if self.text[self.pos] == "]":
                self.pos += 1
                self.depth -= 1
                return result
            result.append(read_item())
            self.skip_ws()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif not self.text.startswith("]", self.pos):
                if self.pos >= len(self.text):
                    raise self.fail("unbalanced brackets: a [ is never closed")
                raise self.fail("expected ',' or ']' in a list")


class _Reader(ValueCursor):
    """The strict recursive-descent reader; every method advances ``pos``."""

    __slots__ = ()

    def value(self) -> Any:
        ch = self.peek()
        text, pos = self.text, self.pos
        if text.startswith(STRING_DELIM, pos):
            return self.delimited_string()
        if ch == '"':
            return self.json_string()
        if ch == "{":
            return self.mapping()
        if ch == "[":
            return self.items(self.value)
        m = NUMBER.match(text, pos)
        if m:
            try:
                number = read_number(m.group(0))
            except ValueError:  # more digits than Python turns into an int (sys.get_int_max_str_digits)
                raise self.fail(f"a number too long to read ({len(m.group(0))} characters)") from None
            self.pos = m.end()
            return number
        w = _WORD.match(text, pos)
        if w and w.group(0) in _WORDS:
            self.pos = w.end()
            return _WORDS[w.group(0)]
        snippet = text[pos : pos + 20]
        raise self.fail(
            f'expected a value (<|"|>string<|"|>, number, true, false, null, {{…}} or […]) but found {snippet!r}'
        )

    def delimited_string(self) -> str:
        start = self.pos + len(STRING_DELIM)
        end = self.text.find(STRING_DELIM, start)
        if end < 0:
            raise self.fail('unterminated string: no closing <|"|>')
        self.pos = end + len(STRING_DELIM)
        return self.text[start:end]

    def json_string(self) -> str:
        try:
            result, end = _scanstring(self.text, self.pos + 1)
        except json.JSONDecodeError as exc:
            raise ValueSyntaxError(f"bad double-quoted string: {exc.msg}", exc.pos) from exc
        self.pos = end
        return result

    def key(self) -> str:
        self.skip_ws()
        text, pos = self.text, self.pos
        if text.startswith(STRING_DELIM, pos):
            return self.delimited_string()
        if pos < len(text) and text[pos] == '"':
            return self.json_string()
        m = _BARE_KEY_READ.match(text, pos)
        if not m:
            found = text[pos : pos + 20] if pos < len(text) else "the end of the text"
            raise self.fail(f"expected a key but found {found!r}")
        self.pos = m.end()
        return m.group(0)

    def mapping(self) -> dict[str, Any]:
        self.pos += 1  # "{"
        self.enter()
        result: dict[str, Any] = {}
        while True:
            self.skip_ws()
            if self.pos >= len(self.text):
                raise self.fail("unbalanced braces: a { is never closed")
            if self.text[self.pos] == "}":
                self.pos += 1
                self.depth -= 1
                return result
            key = self.key()
            self.skip_ws()
            if not self.text.startswith(":", self.pos):
                raise self.fail(f"expected ':' after key {key!r}")
            self.pos += 1
            result[key] = self.value()
            self.skip_ws()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif not self.text.startswith("}", self.pos):
                if self.pos >= len(self.text):
                    raise self.fail("unbalanced braces: a { is never closed")
                raise self.fail(f"expected ',' or '}}' after the value of {key!r}")


def parse_value(text: str) -> Any:
    """Read one Gemma value that makes up all of ``text`` (surrounding whitespace allowed)."""
    reader = _Reader(text)
    result = reader.value()
    reader.skip_ws()
    if reader.pos != len(text):
        raise reader.fail(f"unexpected text after the value: {text[reader.pos : reader.pos + 20]!r}")
    return result


def parse_arguments(text: str) -> dict[str, Any]:
    """Read a call's ``{…}`` argument map; used by the response parser."""
    reader = _Reader(text)
    reader.skip_ws()
    if not text.startswith("{", reader.pos):
        raise reader.fail("expected '{' to open the arguments")
    result = reader.mapping()
    reader.skip_ws()
    if reader.pos != len(text):
        raise reader.fail(f"unexpected text after the arguments: {text[reader.pos : reader.pos + 20]!r}")
    return result
