"""A forgiving reader of one call's arguments, typed by the tool's JSON schema: the second read of a drifted call.

:func:`~agentkit.gemma4.repair.repair_call` has found the call's head and resolved its name to a declared tool; this
reads what follows (``{…}`` or ``(…)``) the way a model that drifted from the format meant it: strings in ``"…"`` or
``'…'`` (with Python's escapes in a ``call:name(…)`` call) or in backticks or bare, a ``<|"|>`` missing on one side,
``key=value``, a missing comma or ``}``, a positional value for the tool's one parameter. The schema decides what a
bare value is, and where a string that lost its closing delimiter ends (before the next declared key). Each liberty is
recorded in ``repairs``. A close is only assumed missing when the call was ``complete`` (a control token ended it),
never at the end of a cut-off output. Forward searches are memoized, so the work stays linear in the text.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Final

from .coerce import NUMBER, read_number, type_of
from .tokens import STRING_DELIM
from .values import LITERALS, ValueCursor

__all__ = ["read_arguments"]

_WORD = re.compile(r"[A-Za-z]+")
_KEY_AHEAD = re.compile(r"\s*+(?:[A-Za-z_][A-Za-z0-9_.\-]*|<\|\"\|>[^<]{1,64}<\|\"\|>|\"[^\"]{1,64}\")\s*+[:=]")
_NEXT_KEY = re.compile(r",\s*+(?:[A-Za-z_][A-Za-z0-9_.\-]*|<\|\"\|>[^<]{1,64}<\|\"\|>|\"[^\"]{1,64}\")\s*+[:=]")
_NESTING = re.compile(r"[{\[]")
_BARE_KEY = re.compile(r"[^,{}\[\]()<>\"'\n:=]+")
_PLAIN_START = re.compile(r"[\w./~]")
_WORDLIKE = re.compile(r"\w")
_STRICT_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
_WS: Final = " \t\r\n"
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


class _Reader(ValueCursor):
    """A forgiving reader of one call's arguments; records each liberty it takes in ``repairs``."""

    __slots__ = ("_found", "complete", "limit", "python", "repairs")

    def __init__(self, text: str, pos: int, repairs: list[str], complete: bool) -> None:
        self.text, self.pos, self.depth = text, pos, 0  # ValueCursor's fields (one call less per repaired call)
        self.repairs = repairs
        self.complete = complete  # a control token ended the call: a missing close may be assumed
        self.limit = len(text)  # where the outermost closer sits (set by arguments())
        self.python = False  # call:name(…): the model wrote Python, so its string escapes are Python's
        # Forward searches are memoized: positions only grow, so each search scans the text once in total.
        self._found: dict[object, tuple[int, int]] = {}

    def search(self, key: object, find: Callable[[int], int], pos: int) -> int:
        """``find(pos)`` (index or -1), reusing an earlier search from a smaller position when it still holds."""
        cached = self._found.get(key)
        if cached is not None and cached[0] <= pos and (cached[1] < 0 or cached[1] >= pos):
            return cached[1]
        found = find(pos)
        self._found[key] = (pos, found)
        return found

    def find_delim(self, pos: int) -> int:
        return self.search(STRING_DELIM, lambda p: self.text.find(STRING_DELIM, p), pos)

    def note(self, repair: str) -> None:
        if repair not in self.repairs:
            self.repairs.append(repair)

    def arguments(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        opener = self.text[self.pos]
        closer = "}" if opener == "{" else ")"
        if opener == "(":
            self.note("parenthesis arguments")
            self.python = True
        tail = self.text.rstrip(_WS + ">")
        if tail.endswith(closer):
            self.limit = len(tail) - 1
        elif not self.complete:
            raise self.fail("the call was cut off before its closing brace")
        self.pos += 1
        self.skip_ws()
        sole = _sole_parameter(schema) if opener == "(" else None
        if opener == "(" and self.text.startswith("{", self.pos):
            inner = self.mapping(schema, "}")  # call:name({"k": "v"})
            self.skip_ws()
            if self.text.startswith(")", self.pos):
                self.pos += 1
            result = inner
        elif sole is not None and self._positional_ahead():
            # get_weather("Paris"): one positional value for the one parameter the tool requires
            props = schema.get("properties")
            prop = props.get(sole) if isinstance(props, Mapping) else None
            value = self.value(prop if isinstance(prop, Mapping) else {}, ")", top=False, siblings=[])
            self.skip_ws()
            if not self.text.startswith(")", self.pos):
                raise self.fail("expected ')' after a positional argument")
            self.pos += 1
            self.note("positional argument")
            result = {sole: value}
        else:
            result = self.entries(schema, closer, top=True)
        self.skip_ws()
        while self.pos < len(self.text) and self.text[self.pos] in closer + ">":
            if self.text[self.pos] == closer:
                self.note("extra closing brace")
            self.pos += 1  # "}>" is written by the collapsed "<tool_call:" form
            self.skip_ws()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected text after the arguments: {self.text[self.pos : self.pos + 20]!r}")
        return result

    def _positional_ahead(self) -> bool:
        """A value, not a ``key:``/``key=`` pair, opens the parenthesis arguments."""
        text, pos = self.text, self.pos
        starts_value = text.startswith(STRING_DELIM, pos) or (pos < len(text) and text[pos] in "\"'-0123456789[")
        return starts_value and not _KEY_AHEAD.match(text, pos)

    def mapping(self, schema: Mapping[str, Any], closer: str) -> dict[str, Any]:
        self.pos += 1
        return self.entries(schema, closer, top=False)

    def entries(self, schema: Mapping[str, Any], closer: str, *, top: bool) -> dict[str, Any]:
        self.enter()
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        result: dict[str, Any] = {}
        text = self.text
        while True:
            self.skip_ws()
            if self.pos >= len(text) or (top and self.pos > self.limit):
                if top and self.limit < len(text) and self.pos > self.limit:
                    self.note("missing closing brace")  # the last "}" closed a nested value
                    break
                if not self.complete:
                    raise self.fail("the arguments end before their closing brace")
                self.note("missing closing brace")
                break
            if text[self.pos] == closer:
                self.pos += 1
                break
            key = self.key()
            self.skip_ws()
            sep = text[self.pos] if self.pos < len(text) else ""
            if sep == "=":
                self.note("'=' instead of ':'")
            elif sep != ":":
                raise self.fail(f"expected ':' after key {key!r}")
            self.pos += 1
            prop = props.get(key)
            result[key] = self.value(
                prop if isinstance(prop, Mapping) else {}, closer, top=top, siblings=[k for k in props if k != key]
            )
            self.skip_ws()
            if self.pos < len(text) and text[self.pos] == ",":
                self.pos += 1
            elif self.pos < len(text) and text[self.pos] != closer and _KEY_AHEAD.match(text, self.pos):
                self.note("missing comma")
        self.depth -= 1
        return result

    def key(self) -> str:
        text, pos = self.text, self.pos
        if text.startswith(STRING_DELIM, pos):
            end = text.find(STRING_DELIM, pos + len(STRING_DELIM))
            if end < 0:
                raise self.fail("unterminated key")
            self.pos = end + len(STRING_DELIM)
            return text[pos + len(STRING_DELIM) : end]
        if pos < len(text) and text[pos] in "\"'":
            end = text.find(text[pos], pos + 1)
            if end < 0:
                raise self.fail("unterminated key")
            self.pos = end + 1
            return text[pos + 1 : end]
        m = _BARE_KEY.match(text, pos)
        if not m or not m.group(0).strip():
            raise self.fail(f"expected a key but found {text[pos : pos + 20]!r}")
        key = m.group(0).strip()
        if not _STRICT_KEY.match(key):
            self.note("key with spaces")
        self.pos = m.end()
        return key

    def value(
        self, schema: Mapping[str, Any], closer: str, *, top: bool, siblings: list[str], in_list: bool = False
    ) -> Any:
        ch = self.peek()
        if self.text.startswith(STRING_DELIM, self.pos):
            return self.delimited(closer, top=top, siblings=siblings)
        if ch == '"':
            return self.double_quoted(closer)
        if ch == "'":
            return self.single_quoted(closer)
        if ch == "`" and (quoted := self.backtick_quoted(closer)) is not None:
            return quoted
        if ch == "{":
            return self.mapping(schema, "}")
        if ch == "[":
            return self.sequence(schema)
        return self.bare(schema, closer, top=top, siblings=siblings, in_list=in_list)

    def _structural_after(self, i: int, closer: str) -> bool:
        n = len(self.text)
        while i < n and self.text[i] in _WS:
            i += 1
        # ")" is structure only where it closes the arguments (call:f(…)); in braces it is text: "sql(…)".
        return i >= n or self.text[i] in ",]}" or self.text[i] == closer or bool(_KEY_AHEAD.match(self.text, i))

    def _value_end(self, closer: str, *, top: bool, siblings: list[str]) -> int:
        """Where a string that lost its closing delimiter ends: before the next declared key, else the closer."""
        text, start = self.text, self.pos
        if siblings:
            pattern = _sibling_pattern(tuple(siblings))
            found = self.search(pattern, lambda p: _start(pattern.search(text, p)), start)
            if found >= 0 and (found < self.limit or not top):
                return found
        if top:
            return self.limit
        end = self.search(("closer", closer), lambda p: text.find(closer, p), start)
        return end if end >= 0 else len(text)

    def delimited(self, closer: str, *, top: bool, siblings: list[str]) -> str:
        text = self.text
        start = self.pos + len(STRING_DELIM)
        end = self.find_delim(start)
        if end >= 0 and self._structural_after(end + len(STRING_DELIM), closer):
            self.pos = end + len(STRING_DELIM)
            return text[start:end]
        # No closing delimiter where one belongs: the string ends before the next declared key or the closer.
        if end < 0 and not self.complete:
            raise self.fail('unterminated string: no closing <|"|>')
        self.pos = start
        stop = self._value_end(closer, top=top, siblings=siblings)
        # <|"|> written for a quote inside the string (a Python triple quote is three of them): the string
        # ends at the first delimiter followed by structure before the next declared key; earlier ones are quotes.
        j = end
        while j >= 0 and j + len(STRING_DELIM) <= stop:
            if self._structural_after(j + len(STRING_DELIM), closer):
                self.note('<|"|> inside a string read as a quote')
                self.pos = j + len(STRING_DELIM)
                return text[start:j].replace(STRING_DELIM, '"')
            j = text.find(STRING_DELIM, j + len(STRING_DELIM))
        self.note('missing closing <|"|>')
        self.pos = stop
        return text[start:stop]

    def _dangling_delimiter(self) -> None:
        if self.text.startswith(STRING_DELIM, self.pos):
            self.pos += len(STRING_DELIM)
            self.note('stray <|"|>')

    def double_quoted(self, closer: str) -> str:
        try:
            result, end = _scanstring(self.text, self.pos + 1)
        except json.JSONDecodeError:
            pass
        else:
            self.pos = end
            self._dangling_delimiter()
            return result
        # Raw backslashes (a Windows path) or a raw quote: the string ends at a quote before structure.
        i = self.pos + 1
        while True:
            i = self.text.find('"', i)
            if i < 0:
                raise self.fail("unterminated double-quoted string")
            if self._structural_after(i + 1, closer):
                break
            i += 1
        value = self.text[self.pos + 1 : i]
        decoded = _python_string(value, '"') if self.python else None
        self.note(
            "Python string escapes" if decoded is not None else "raw backslash or quote in a double-quoted string"
        )
        self.pos = i + 1
        return value if decoded is None else decoded

    def single_quoted(self, closer: str) -> str:
        """A ``'…'`` string: it ends at a quote before structure (an apostrophe inside stays text).

        In a Python-style call an escaped quote (``\\'``) never ends it, and its escapes (``\\n``, ``\\u00e9``)
        mean what Python says; elsewhere a backslash is text, as in Gemma's own strings.
        """
        text = self.text
        i = self.pos + 1
        while True:
            i = text.find("'", i)
            if i < 0:
                raise self.fail("unterminated single-quoted string")
            after = i + 1
            if self.python and _escaped(text, i):
                i = after
                continue
            if text.startswith(STRING_DELIM, after) or self._structural_after(after, closer):
                break
            i += 1
        value = text[self.pos + 1 : i]
        self.note("single-quoted string")
        if self.python and "\\" in value:
            decoded = _python_string(value, "'")
            if decoded is not None:
                value = decoded
                self.note("Python string escapes")
        self.pos = i + 1
        self._dangling_delimiter()
        return value

    def backtick_quoted(self, closer: str) -> str | None:
        """A string in backticks (a JavaScript template literal), if the next backtick closes it before structure.

        ``None`` when it does not (a value that merely starts with inline code): then it is read as bare text.
        """
        end = self.text.find("`", self.pos + 1)
        if end < 0 or not self._structural_after(end + 1, closer):
            return None
        value = self.text[self.pos + 1 : end]
        self.note("string in backticks")
        self.pos = end + 1
        self._dangling_delimiter()
        return value

    def sequence(self, schema: Mapping[str, Any]) -> list[Any]:
        # Apart from value(): a lambda there would make its locals closure cells on every call.
        items = schema.get("items")
        item = items if isinstance(items, Mapping) else {}
        return self.items(lambda: self.value(item, "]", top=False, siblings=[], in_list=True))

    def bare(
        self, schema: Mapping[str, Any], closer: str, *, top: bool, siblings: list[str], in_list: bool = False
    ) -> Any:
        """A value with no quotes: a number or word if it is one, else text (typed by the schema).

        In a list a bare string ends at the next comma (``[bug,ui]`` is two items); elsewhere a string
        property's text runs to the next declared key, so commas inside it survive.
        """
        text, pos = self.text, self.pos
        kind = type_of(schema)
        # A lone closing delimiter before structure, with no key or nesting in between: the opening <|"|>
        # was left out ("query:Paris, France<|"|>,limit:5"). Searches are memoized, so this stays linear.
        delim = self.find_delim(pos)
        if delim >= 0 and self._structural_after(delim + len(STRING_DELIM), closer):
            next_key = self.search(_NEXT_KEY, lambda p: _start(_NEXT_KEY.search(text, p)), pos)
            nesting = self.search(_NESTING, lambda p: _start(_NESTING.search(text, p)), pos)
            if not (0 <= next_key < delim or 0 <= nesting < delim) and text[pos:delim].strip(_WS):
                self.pos = delim + len(STRING_DELIM)
                self.note('missing opening <|"|>')
                return text[pos:delim]
        for pattern, convert in ((NUMBER, read_number), (_WORD, LITERALS.get)):
            m = pattern.match(text, pos)
            if m and self._structural_after(m.end(), closer) and (pattern is NUMBER or m.group(0) in LITERALS):
                if kind == "string" and pattern is NUMBER:
                    break  # a string property: keep the text as written
                self.pos = m.end()
                return convert(m.group(0))
        if kind == "string" and not in_list:
            stop = self._value_end(closer, top=top, siblings=siblings)
        else:
            stop = self._first_structural(closer)
        piece = text[pos:stop].strip(_WS)
        if not piece or not _WORDLIKE.search(piece) or (not kind and not _PLAIN_START.match(piece)):
            # Without a schema saying "string", only text that reads like a word or path is taken as one.
            raise self.fail(f"expected a value but found {text[pos : pos + 20]!r}")
        self.pos = stop
        if kind in ("integer", "number"):
            m = NUMBER.fullmatch(piece)
            if m is None:
                raise self.fail(f"expected a number but found {piece[:20]!r}")
            self.note("unquoted value typed by the schema")
            return read_number(piece)
        self.note("unquoted string")
        return piece

    def _first_structural(self, closer: str) -> int:
        text, i, n = self.text, self.pos, len(self.text)
        while i < n and text[i] not in ",]})\n" and text[i] != closer:
            i += 1
        return i


def _sole_parameter(schema: Mapping[str, Any]) -> str | None:
    """The one parameter a positional argument can mean: the only required one, else the only one."""
    required = schema.get("required")
    if isinstance(required, list) and len(required) == 1 and isinstance(required[0], str):
        return required[0]
    props = schema.get("properties")
    if isinstance(props, Mapping) and len(props) == 1:
        return str(next(iter(props)))
    return None


@functools.lru_cache(maxsize=256)
def _sibling_pattern(siblings: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r",\s*(?:" + "|".join(map(re.escape, siblings)) + r")\s*[:=]")


def _escaped(text: str, i: int) -> bool:
    """Whether ``text[i]`` follows an odd number of backslashes (it is escaped)."""
    j = i
    while j > 0 and text[j - 1] == "\\":
        j -= 1
    return (i - j) % 2 == 1


def _python_string(inner: str, quote: str) -> str | None:
    """The text between two quotes decoded as a Python string literal would be (``\\'``, ``\\n``, ``\\u00e9``).

    A raw quote or line break inside is read as the character the model meant. Python keeps an unknown escape
    (``\\d`` in a regular expression) as written, with a warning that is not the user's concern. ``None`` if the
    escapes are not Python's (``\\x`` without hex digits, ``C:\\Users``): the text is then kept as written.
    """
    body = _UNESCAPED[quote].sub(lambda m: m.group(1) + "\\" + quote, inner)
    body = body.replace("\n", "\\n").replace("\r", "\\r")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = ast.literal_eval(quote + body + quote)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    return value if isinstance(value, str) else None


_UNESCAPED: Final = {q: re.compile(r"(?<!\\)((?:\\\\)*)" + q) for q in "'\""}


def _start(m: re.Match[str] | None) -> int:
    return m.start() if m else -1


def read_arguments(
    text: str, pos: int, schema: Mapping[str, Any], repairs: list[str], *, complete: bool
) -> dict[str, Any]:
    """The arguments whose ``{`` or ``(`` is at ``text[pos]``, to the end of ``text``; ValueSyntaxError if none.

    ``repairs`` receives a note for each liberty taken; ``complete`` says a control token ended the call.
    """
    return _Reader(text, pos, repairs, complete).arguments(schema)
