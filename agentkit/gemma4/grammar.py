"""Grammars for Gemma 4 tool calls: make a malformed call impossible to generate, where the engine allows it.

An engine with grammar-constrained decoding (vLLM's ``structured_outputs``, xgrammar in process) masks every
token that would break the grammar. This module writes that grammar for Gemma 4's own call syntax, from the
tools' JSON schemas::

    <|tool_call>call:NAME{key:value,…}<tool_call|>   (one or more in a row)   <|tool_response>

Each tool's arguments are an EBNF grammar in xgrammar's dialect: the declared keys in the order the reference
template writes them (sorted case-insensitively, :func:`~agentkit.gemma4.values.iter_sorted_items`), required
keys always, optional ones skippable, no other keys, and values of the declared type: ``<|"|>…<|"|>`` strings
that cannot contain a control token, integers, numbers, ``true``/``false``, ``null`` where nullable, enum
members, nested objects and lists. A value without a declared type (``dict``, ``Any``) gets a generic Gemma
value nested at most :data:`GENERIC_DEPTH` levels deep.

The calls are wrapped in an xgrammar *structural tag* (the JSON vLLM takes as ``structured_outputs.
structural_tag``, and ``xgrammar.GrammarCompiler.compile_structural_tag`` in process). What it allows depends on
``tool_choice``:

- ``auto``: any text (thinking included, ``<|turn>`` not), then optionally calls followed by the ``<|tool_response>``
  hand-over;
- ``required``: calls right away (after the thought channel when thinking is on), at least one;
- a tool's name: the same, but only calls to that tool;
- ``none``: any text without ``<|tool_call>`` (or ``<|turn>``).

Why these choices:

- Strings are closable at every character, and bounded by the schema's ``maxLength`` when it declares one. A
  model that never ends a string (a random-weight test model does not) still runs into ``max_tokens``; a bound
  on strings without ``maxLength`` would silently truncate real arguments (a file's content), which is worse.
- No whitespace between tokens of a call: the template writes none, and optional whitespace is where a
  degenerate model loops.
- Digits are bounded: an integer has at most 19, a fraction 20 (all Python writes plainly), an exponent at
  most two (so no number overflows to ``inf``; a magnitude of 1e100 or more cannot be written). Lists are
  bounded only by their schema's ``maxItems``.

Pure: the output is text and JSON-ready dicts; no engine is imported. :func:`tool_call_grammar` is cached, so
a tool set is converted once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from .tokens import (
    CHANNEL_END,
    CHANNEL_START,
    CONTROL_TOKENS,
    STRING_DELIM,
    TOOL_CALL_END,
    TOOL_CALL_START,
    TURN_START,
)
from .tokens import TOOL_RESPONSE_START as HAND_OVER
from .values import check_tool_name, iter_sorted_items

__all__ = [
    "GENERIC_DEPTH",
    "TOOL_CHOICES",
    "ToolCallGrammar",
    "arguments_grammar",
    "calls_grammar",
    "check_tool_choice",
    "tool_call_grammar",
]

#: The tool_choice keywords; any other value must be a declared tool's name.
TOOL_CHOICES: Final = ("auto", "required", "none")
#: How deep a value without a declared type may nest ``{…}``/``[…]``.
GENERIC_DEPTH: Final = 6

_BARE_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")  # what values.write_key writes bare
_INT = '"-"? ("0" | [1-9] [0-9]{0,18})'
# Python writes a float plainly down to 1e-4 with up to 17 significant digits: 3 leading zeros + 17 = 20 fraction
# digits (0.00012345678901234567). The exponent stays below 100: never a float inf.
_FRACTION = '("." [0-9]{1,20})? ([eE] [+\\-]? [0-9]{1,2})?'


def _lit(text: str) -> str:
    """An EBNF string literal for ``text`` (xgrammar reads C-style escapes and raw UTF-8)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _class(chars: Sequence[str], *, negated: bool = False) -> str:
    """An EBNF character class of whole characters (xgrammar matches code points, never partial UTF-8)."""
    out = []
    for ch in chars:
        if ch in "\\]^-[":
            out.append("\\" + ch)
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    if negated:
        # xgrammar takes UTF-8-encoded surrogates as characters; Python decodes each of their bytes to U+FFFD,
        # so a string would come out longer than its maxLength (and not valid UTF-8). Exclude them.
        out.append("\\ud800-\\udfff")
    return "[" + ("^" if negated else "") + "".join(out) + "]"


class _Builder:
    """Writes EBNF rules for schema nodes; identical nodes share one rule."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self._by_key: dict[str, str] = {}

    def add(self, key: str, prefix: str, body: str, attrs: str = "") -> str:
        name = self._by_key.get(key)
        if name is None:
            name = f"{prefix}{len(self._by_key)}"
            self._by_key[key] = name
            self.rules[name + attrs] = body
        return name

    def text(self) -> str:
        return "\n".join(f"{name} ::= {body}" for name, body in self.rules.items())

    # -- values ---------------------------------------------------------------------------------------------

    def string(self, max_chars: int | None) -> str:
        attrs = f"[max_chars={max_chars}]" if max_chars is not None else ""
        body = self.add(f"strbody:{max_chars}", "strbody", self._text_without_tokens(), attrs)
        delim = _lit(STRING_DELIM)
        return self.add(f"str:{max_chars}", "str", f"{delim} {body} {delim}")

    def _text_without_tokens(self) -> str:
        """Text (whole characters, valid UTF-8) in which no control token occurs, as a trie walk.

        Every control token starts with ``<`` and has no other ``<``, so after a ``<`` the text either follows a
        token's spelling (state per trie node) or leaves it with a character no token continues with, and is
        plain text again. Ending inside a partial token is safe: the closing ``<|"|>`` cannot complete one.
        """
        found = self._by_key.get("text")
        if found is not None:
            return found
        words = [t[1:] for t in CONTROL_TOKENS]
        assert all(t.startswith("<") and "<" not in w for t, w in zip(CONTROL_TOKENS, words, strict=True))
        prefixes = sorted({w[:k] for w in words for k in range(len(w))}, key=lambda p: (len(p), p))
        names = {p: f"tok{i}" for i, p in enumerate(prefixes)}
        plain = self.add("text", "text", "")  # reserve the name; body set below
        for prefix in prefixes:
            nexts = sorted({w[len(prefix)] for w in words if w.startswith(prefix) and len(w) > len(prefix)})
            alts = ['""', f'"<" {names[""]}']
            alts += [f"{_lit(c)} {names[prefix + c]}" for c in nexts if prefix + c in names]
            alts.append(f"{_class(['<', *nexts], negated=True)} {plain}")
            self.rules[names[prefix]] = " | ".join(alts)
        self.rules[plain] = f'{_class(["<"], negated=True)}* ("<" {names[""]})?'
        return plain

    def key(self, name: str) -> str:
        return _lit(name) if _BARE_KEY.match(name) else _lit(STRING_DELIM + name + STRING_DELIM)

    def value(self, schema: Any) -> str:
        """The rule (or inline expression) for one value of ``schema``."""
        if not isinstance(schema, Mapping):
            return self.generic(GENERIC_DEPTH)
        key = json.dumps(schema, sort_keys=True, default=str)
        found = self._by_key.get("v:" + key)
        if found is not None:
            return found
        alternatives = self._alternatives(schema)
        return self.add("v:" + key, "v", " | ".join(f"({a})" for a in alternatives))

    def _alternatives(self, schema: Mapping[str, Any]) -> list[str]:
        nullable = schema.get("nullable") is True
        if "enum" in schema or "const" in schema:
            members = list(schema["enum"]) if "enum" in schema else [schema["const"]]
            alts = [lit for lit in map(_enum_literal, members) if lit is not None]
            if not alts:
                raise ValueError(f"no member of the enum {members!r} can be written in a Gemma call")
            if nullable and None not in members:
                alts.append('"null"')
            return alts
        kind = schema.get("type")
        kinds = [k for k in kind if isinstance(k, str)] if isinstance(kind, list) else [kind]
        if "null" in kinds:
            nullable = True
            kinds = [k for k in kinds if k != "null"] or ["null"]
        alts = [self._typed(k, schema) for k in kinds]
        if nullable and "null" not in kinds:
            alts.append('"null"')
        return alts

    def _typed(self, kind: Any, schema: Mapping[str, Any]) -> str:
        if kind == "string":
            return self.string(_bound(schema.get("maxLength"), beyond=None))
        if kind == "integer":
            return _INT
        if kind == "number":
            return f"{_INT} {_FRACTION}"
        if kind == "boolean":
            return '"true" | "false"'
        if kind == "null":
            return '"null"'
        if kind == "array":
            return self.array(schema)
        if kind == "object" and isinstance(schema.get("properties"), Mapping) and schema["properties"]:
            return '"{" ' + self.members(schema) + ' "}"'
        return self.generic(GENERIC_DEPTH, object_only=kind == "object")

    def array(self, schema: Mapping[str, Any]) -> str:
        items = schema.get("items")
        item = self.value(items) if isinstance(items, Mapping) and items else self.generic(GENERIC_DEPTH - 1)
        low = _bound(schema.get("minItems"), beyond=_MAX_BOUND) or 0
        high = _bound(schema.get("maxItems"), beyond=None)
        high = high if high is not None and high >= low else None
        if high == 0:
            return '"[" "]"'
        repeat = f"{{{max(low - 1, 0)},{'' if high is None else high - 1}}}"
        body = f'{item} ("," {item}){repeat}'
        return f'"[" {body} "]"' if low else f'"[" ({body})? "]"'

    def members(self, schema: Mapping[str, Any]) -> str:
        """``key:value`` pairs in template order; required keys always, optional ones skippable, commas between."""
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        ordered = iter_sorted_items(properties)
        if not ordered:
            return '""'
        # first_i: pairs from i on, none written yet; after_i: from i on, something already written (needs ",").
        first, after = '""', '""'
        for name, sub in reversed(ordered):
            pair = f'{self.key(name)} ":" {self.value(sub)}'
            new_first = f"{pair} {after}"
            new_after = f'"," {pair} {after}'
            if name not in required:
                new_first = f"({new_first}) | ({first})"
                new_after = f"({new_after}) | ({after})"
            first = self.add(f"mf:{len(self.rules)}", "mf", new_first)
            after = self.add(f"ma:{len(self.rules)}", "ma", new_after)
        return first

    def generic_key(self) -> str:
        """A key of a mapping whose keys are not declared: bare, or delimited (values.write_key)."""
        bare = "[A-Za-z0-9_] [A-Za-z0-9_.\\-]{0,63}"
        return self.add("gkey", "gkey", f"({bare}) | ({self.string(256)})")

    def generic(self, depth: int, *, object_only: bool = False) -> str:
        """Any Gemma value (or any mapping), nested at most ``depth`` more levels."""
        depth = max(depth, 0)
        scalar = " | ".join([self.string(None), _INT + " " + _FRACTION, '"true"', '"false"', '"null"'])
        if depth == 0:
            return self.add("g0", "g", scalar) if not object_only else '"{" "}"'
        inner = self.generic(depth - 1)
        key = self.generic_key()
        mapping = f'"{{" (({key}) ":" {inner} ("," ({key}) ":" {inner})*)? "}}"'
        if object_only:
            return self.add(f"go{depth}", "go", mapping)
        listing = f'"[" ({inner} ("," {inner})*)? "]"'
        return self.add(f"g{depth}", "g", f"{scalar} | {mapping} | {listing}")


#: The largest bound xgrammar reads (an int32; a larger one made every grammar with it fail to compile, so one
#: tool whose schema said ``"maxLength": 4294967296`` failed every request).
_MAX_BOUND = 2**31 - 1


def _bound(value: Any, *, beyond: int | None) -> int | None:
    """A schema's count bound as the grammar takes it: None when absent or not a count, ``beyond`` when too
    large to write (no bound for a maximum, the largest there is for a minimum)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return None
    return value if value <= _MAX_BOUND else beyond


def _enum_literal(value: Any) -> str | None:
    """The grammar literal for one enum member, or None when a Gemma call cannot carry it."""
    if isinstance(value, str):
        if any(t in value for t in CONTROL_TOKENS):
            return None
        return _lit(STRING_DELIM + value + STRING_DELIM)
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return '"true"' if value else '"false"'
    if isinstance(value, int | float):
        return _lit(json.dumps(value))
    return None


def _arguments(builder: _Builder, parameters: Mapping[str, Any] | None) -> str:
    """The expression for what goes between ``{`` and ``}`` of one tool's call."""
    params: Mapping[str, Any] = parameters if isinstance(parameters, Mapping) else {}
    if params.get("type", "object") != "object":
        raise ValueError(f"a tool's parameters must be an object schema, not type {params.get('type')!r}")
    if isinstance(params.get("properties"), Mapping) and params["properties"]:
        return builder.members(params)
    if params.get("additionalProperties") not in (None, False):
        inner = builder.generic(GENERIC_DEPTH - 1)
        pair = f'({builder.generic_key()}) ":" {inner}'
        return f'({pair} ("," {pair})*)?'
    return '""'


def arguments_grammar(parameters: Mapping[str, Any] | None) -> str:
    """EBNF (root rule ``root``) for what goes between ``call:NAME{`` and ``}``: the arguments of one tool.

    A schema without properties takes no arguments, unless it allows ``additionalProperties`` (a free-form
    mapping: any bare keys with generic values).
    """
    builder = _Builder()
    root = _arguments(builder, parameters)
    return f"root ::= {root}\n{builder.text()}".rstrip("\n")


def calls_grammar(tools: Sequence[tuple[str, Mapping[str, Any] | None]]) -> str:
    """EBNF for ``NAME{arguments}`` of any of ``tools`` ((name, parameters) pairs), one grammar for all.

    One grammar rather than one per tool: the engine compiles the string rules (the costly part, a few states
    per control-token prefix, each masked over the whole vocabulary) once for the tool set instead of per tool.
    """
    builder = _Builder()
    alternatives = [
        f'({_lit(check_tool_name(name) + "{")} {_arguments(builder, params)} "}}")' for name, params in tools
    ]
    return f"root ::= {' | '.join(alternatives)}\n{builder.text()}".rstrip("\n")


def _declaration(tool: Mapping[str, Any]) -> tuple[str, Mapping[str, Any] | None]:
    """(name, parameters) of an OpenAI function-tool dict or a bare function dict."""
    function = tool.get("function", tool) if tool.get("type", "function") == "function" else tool
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise ValueError(f"not a function tool declaration: {dict(tool)!r}")
    params = function.get("parameters")
    return check_tool_name(function["name"]), params if isinstance(params, Mapping) else None


def check_tool_choice(tool_choice: str, names: Sequence[str]) -> str:
    """Return ``tool_choice`` if it fits the declared ``names``, else ValueError saying what would."""
    if not isinstance(tool_choice, str):
        raise ValueError(f"tool_choice must be a string, not {type(tool_choice).__name__}")
    if tool_choice in ("auto", "none"):
        return tool_choice
    if not names:
        raise ValueError(f"tool_choice={tool_choice!r} needs at least one tool, and none is declared")
    if tool_choice == "required" or tool_choice in names:
        return tool_choice
    choices = ", ".join(repr(c) for c in (*TOOL_CHOICES, *names))
    raise ValueError(f"tool_choice={tool_choice!r} is neither a mode nor a declared tool; use one of: {choices}")


@dataclass(frozen=True, slots=True)
class ToolCallGrammar:
    """The grammar for one tool set, ``tool_choice`` and thinking switch.

    ``structural_tag`` is the xgrammar structural-tag JSON text (vLLM: ``structured_outputs.structural_tag``;
    xgrammar: ``GrammarCompiler.compile_structural_tag``). Equal inputs give the identical object (cached), so
    engines can cache their compiled form on it.
    """

    structural_tag: str
    tool_choice: str
    thinking: bool
    tool_names: tuple[str, ...]


def _free_text(excludes: Sequence[str]) -> dict[str, Any]:
    return {"type": "any_text", "excludes": list(excludes)}


def _build(tools_json: str, tool_choice: str, thinking: bool) -> ToolCallGrammar:
    tools = json.loads(tools_json)
    declared = [_declaration(t) for t in tools]
    names = [name for name, _ in declared]
    check_tool_choice(tool_choice, names)
    if tool_choice == "none" or not declared:
        fmt: dict[str, Any] = _free_text(_NOT_IN_TEXT)
        return ToolCallGrammar(json.dumps({"type": "structural_tag", "format": fmt}), tool_choice, thinking, ())
    chosen = [(n, p) for n, p in declared if tool_choice in ("auto", "required") or n == tool_choice]
    tag: dict[str, Any] = {
        "type": "tag",
        "begin": f"{TOOL_CALL_START}call:",
        "content": {"type": "grammar", "grammar": calls_grammar(chosen)},
        "end": TOOL_CALL_END,
    }
    calls: dict[str, Any] = {
        "type": "sequence",
        "elements": [{"type": "plus", "content": tag}, {"type": "const_string", "value": HAND_OVER}],
    }
    if tool_choice == "auto":
        # Free text may hold <turn|> (the answer ends there) but not a call opener outside a checked call.
        fmt = {"type": "sequence", "elements": [_free_text(_NOT_IN_TEXT), {"type": "optional", "content": calls}]}
    elif thinking:
        thought = {
            "type": "sequence",
            "elements": [
                {"type": "const_string", "value": CHANNEL_START},
                _free_text([CHANNEL_END, TOOL_CALL_START, *_ENDINGS]),
                {"type": "const_string", "value": CHANNEL_END},
            ],
        }
        fmt = {"type": "sequence", "elements": [{"type": "optional", "content": thought}, calls]}
    else:
        fmt = calls
    text = json.dumps({"type": "structural_tag", "format": fmt}, ensure_ascii=False)
    return ToolCallGrammar(text, tool_choice, thinking, tuple(n for n, _ in chosen))


_ENDINGS: Final = ("<turn|>", "<eos>", HAND_OVER, TURN_START)
# Not in free text: a call opener outside a checked call, and <|turn>, which ends the output for every parser
# but stops no engine (calls written after it would be lost).
_NOT_IN_TEXT: Final = (TOOL_CALL_START, TURN_START)


@lru_cache(maxsize=64)
def _cached(tools_json: str, tool_choice: str, thinking: bool) -> ToolCallGrammar:
    return _build(tools_json, tool_choice, thinking)


def tool_call_grammar(
    tools: Sequence[Mapping[str, Any]], tool_choice: str = "auto", *, thinking: bool = False
) -> ToolCallGrammar:
    """The grammar for calls to ``tools`` (OpenAI function-tool dicts, as agentkit declares them).

    Raises ValueError for a ``tool_choice`` that names no declared tool, or a schema a call cannot satisfy.
    """
    key = json.dumps([dict(t) for t in tools], sort_keys=True, default=str)
    return _cached(key, tool_choice, thinking)
