"""Read the tool calls real Gemma 4 models write when they drift from the format, knowing what was declared.

The strict reader (:mod:`agentkit.gemma4.values`) is exact on the reference template's format. Real models
drift (``tests/data/toolcall_corpus.json`` and the held-out ``toolcall_heldout.json`` cite a source for each
case): strings in ``"…"`` or ``'…'`` or bare, a ``<|"|>`` missing on one side, ``key=value``, ``call:name(…)``,
a ``}`` never written, keys with spaces, ``:name{`` or ``mcp:ns:name{`` heads, drifted openers, a
name/arguments envelope. This module is the second try, used by :class:`~agentkit.gemma4.StreamParser` only
when the strict reader failed and the caller declared its tools (how a block holding several calls is cut up
is :mod:`agentkit.gemma4.blocks`; the arguments after a resolved name, :mod:`agentkit.gemma4.lenient`; strings
typed by the schema, :mod:`agentkit.gemma4.coerce`):

- the name must resolve to a declared tool (exactly, as the last part of a namespaced name, or as the one
  declared name it equals ignoring case), so text that merely looks like a call never becomes one;
- the tool's JSON schema decides what a bare value is (a bare ``5`` for an ``integer`` property is 5, bare
  text for a ``string`` property runs to the next declared key or the closing brace);
- a call cut off by the end of the output is never completed: a ``}`` or ``<|"|>`` is only assumed missing
  when a control token ended the call, because a truncated value would run with the wrong arguments.

Every accepted repair is named (``ToolCall.repair``) so runs can count them and a person can see them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .argblocks import BEGIN_ARG, BLOCKS_HEAD, read_arg_blocks
from .blocks import strip_closing_tag
from .lenient import read_arguments
from .values import TOOL_NAME_CHARS

__all__ = [
    "CONTINUE_FENCE",
    "FUNCTION_GEMMA_ESCAPE",
    "FUNCTION_GEMMA_HAND_OVER",
    "FUNCTION_GEMMA_OPENER",
    "LM_STUDIO_OPENER",
    "MISTRAL_ARGS",
    "MISTRAL_OPENER",
    "TAG_OPENERS",
    "TOOL_CODE_FENCE",
    "DeclaredTools",
    "LooseHead",
    "loose_call_name",
    "match_loose_head",
    "repair_call",
    "unwrap_envelope",
]

_NAME_CHARS: Final = TOOL_NAME_CHARS + ":"  # a namespaced name ("mcp:ns:name") is read whole, then resolved
_HEAD = re.compile(rf"\s*+(call\b)?\s*+([:\-])?\s*+([A-Za-z_][{_NAME_CHARS}]*)\s*+(?:\[ARGS\]\s*+)?([{{(])")
# A call with nothing after its name ("<|tool_call>call:get_time<tool_call|>"): only for a tool that needs no arguments.
_NAME_ONLY = re.compile(rf"\s*+(call\b)?\s*+([:\-])?\s*+([A-Za-z_][{_NAME_CHARS}]*)\s*+\Z")
# Gemma's own words for what is not a call: "response:NAME{…}" is a tool result (written by the runtime, or made up by
# the model), "declaration:NAME{…}" a tool declaration (echoed back). Never a namespace before a tool name.
_FORMAT_WORDS: Final = frozenset({"response", "declaration"})
_STRICT_HEAD = re.compile(rf"\s*+call:[{_NAME_CHARS}]+[{{(]")
_WS: Final = " \t\r\n"


@dataclass(frozen=True, slots=True)
class DeclaredTools:
    """The tools a caller declared: names and their parameter schemas, for name-aware recovery."""

    schemas: Mapping[str, Mapping[str, Any]]

    @classmethod
    def of(cls, tools: Iterable[str | Mapping[str, Any]] | DeclaredTools) -> DeclaredTools:
        """From tool names, OpenAI function-tool dicts (``{"type": "function", "function": {…}}``) or function dicts."""
        if isinstance(tools, DeclaredTools):
            return tools
        schemas: dict[str, Mapping[str, Any]] = {}
        for tool in tools:
            if isinstance(tool, str):
                schemas[tool] = {}
                continue
            if not isinstance(tool, Mapping):
                raise TypeError(f"a declared tool is a name or an OpenAI function-tool dict, not {type(tool).__name__}")
            fn = tool.get("function", tool)
            name = fn.get("name") if isinstance(fn, Mapping) else None
            if not isinstance(name, str) or not name:
                raise ValueError(f"a declared tool has no name: {dict(tool)!r:.80}")
            params = fn.get("parameters") if isinstance(fn, Mapping) else None
            schemas[name] = params if isinstance(params, Mapping) else {}
        return cls(schemas)

    def resolve(self, raw: str) -> tuple[str, str | None] | None:
        """The declared name ``raw`` stands for, and how it differed (``None``: exactly), or ``None`` if none.

        A namespace prefix (``mcp:x:name``, ``ns.name``) is dropped, and a name that differs only in case
        (``Bash`` for ``bash``) is taken when exactly one declared name matches it. Gemma's own ``response:`` and
        ``declaration:`` are no namespace: what follows them is a result or a declaration, never a call; nor is a
        word before ``call:`` (``Done.call:NAME``: prose glued to a call, which the parser's glued-call rule reads).
        """
        if raw in self.schemas:
            return raw, None
        segments = re.split(r"[:.]", raw)
        if segments[0].casefold() in _FORMAT_WORDS:
            return None  # response:NAME / declaration:NAME: a result or a declaration, not a call
        if any(part.casefold() == "call" for part in segments[1:-1]):
            return None  # "Done.call:NAME": Gemma's call keyword with prose glued before it, never a namespace
        for i, ch in enumerate(raw):
            if ch in ":." and raw[i + 1 :] in self.schemas:
                return raw[i + 1 :], f"namespaced name {raw!r}"
        folded = [name for name in self.schemas if name.casefold() == raw.casefold()]
        if len(folded) == 1:
            return folded[0], f"tool name {raw!r} in another case"
        return None


@dataclass(frozen=True, slots=True)
class LooseHead:
    """Where a call written without ``<|tool_call>`` starts its arguments, and what opened it."""

    end: int  # index just past the head, at the "{" or "(" (or the first BEGIN_ARG)
    opener: str  # the drifted opener text ("" when the call starts with "call:" or the bare name)
    blocks: bool = False  # the arguments are BEGIN_ARG/END_ARG blocks (see agentkit.gemma4.argblocks)


# Openers models write instead of the <|tool_call> token, longest first (each was seen; see the corpora):
# "<call>" is in Google's own fallback parser, "```tool_code" the block Gemma's prompted-function-calling
# guides (Gemma 2/3) ask for, "<start_function_call>" FunctionGemma's token (its strings are in <escape>),
# "<tool>" a Gemma 3 tools template's JSON wrapper; "[TOOL_REQUEST]" LM Studio's wrapper of a name/arguments object
# and "[TOOL_CALLS]NAME[ARGS]{…}" Mistral's call, both written as text by Gemma 3 in LM Studio.
TOOL_CODE_FENCE: Final = "```tool_code\n"
CONTINUE_FENCE: Final = "```tool\n"  # Continue.dev's block of TOOL_NAME: and BEGIN_ARG/END_ARG lines
LM_STUDIO_OPENER: Final = "[TOOL_REQUEST]"
MISTRAL_OPENER: Final = "[TOOL_CALLS]"
MISTRAL_ARGS: Final = "[ARGS]"  # between a Mistral call's name and its arguments
FUNCTION_GEMMA_OPENER: Final = "<start_function_call>"
FUNCTION_GEMMA_ESCAPE: Final = "<escape>"  # FunctionGemma's string delimiter: the <|"|> of its calls
FUNCTION_GEMMA_HAND_OVER: Final = "<start_function_response>"  # FunctionGemma's <|tool_response> after its calls
_DRIFTED_OPENERS: Final = (
    FUNCTION_GEMMA_OPENER,
    "<|tool_call|>",
    "<tool_call>",
    "<tool_call:",
    "<call>",
    "<tool>",
    LM_STUDIO_OPENER,
    MISTRAL_OPENER,
    TOOL_CODE_FENCE,
    CONTINUE_FENCE,
    "",
)
_BLOCK_OPENERS: Final = (CONTINUE_FENCE, "")  # where a BEGIN_ARG call may start
_OPENERS_BY_FIRST: Final = {
    c: (*(o for o in _DRIFTED_OPENERS if o[:1] == c), "") for c in {o[0] for o in _DRIFTED_OPENERS if o}
}
_NO_OPENER: Final = ("",)  # text that starts like no opener: only a head without one
#: The openers that are tags: explicit enough to start a call after text on the same line (see StreamParser).
TAG_OPENERS: Final = tuple(opener for opener in _DRIFTED_OPENERS if opener.startswith("<"))
_MAX_HEAD: Final = 160


def match_loose_head(text: str, tools: DeclaredTools) -> LooseHead | bool | None:
    """At a call boundary: a loose call head (``LooseHead``), ``True`` when more text is needed, else ``None``."""
    if not text:
        return True
    for opener in _OPENERS_BY_FIRST.get(text[0], _NO_OPENER):  # this runs at every boundary: few openers tried
        if text.startswith(opener):
            rest = text[len(opener) :]
        elif opener.startswith(text):
            return True
        else:
            continue
        head = _match_after_opener(rest, tools, opener)
        if head is not None:
            return head if head is True else LooseHead(len(opener) + head, opener)
        if opener in _BLOCK_OPENERS and rest.lstrip(_WS)[:1] in ("c", "T"):  # "call:name:" or "TOOL_NAME:"
            blocks = _match_blocks_head(rest, tools)
            if blocks is not None:
                return blocks if blocks is True else LooseHead(len(opener) + blocks, opener, blocks=True)
    return None


_BLOCKS_PREFIX = re.compile(BLOCKS_HEAD.pattern.removesuffix(f"(?={BEGIN_ARG}[ \\t]*:)"))
_BLOCKS_CUT = re.compile(r"\s*TOOL_NAME[ \t]*(?::[ \t]*[\w.:\-]*[ \t]*\r?)?\Z")


def _match_blocks_head(rest: str, tools: DeclaredTools) -> int | bool | None:
    """``call:name:`` or ``TOOL_NAME: name``, a line break and ``BEGIN_ARG:`` (index of the ``BEGIN_ARG``), or wait."""
    m = _BLOCKS_PREFIX.match(rest)
    if m is None:  # still inside "TOOL_NAME: name" at the end of the text so far: wait (bounded)
        cut = _BLOCKS_CUT.match(rest) or "TOOL_NAME".startswith(rest.lstrip(_WS))
        return True if cut and len(rest) < _MAX_HEAD else None
    if tools.resolve(m.group(1).rstrip(":")) is None:
        return None
    after = rest[m.end() : m.end() + len(BEGIN_ARG) + 1]
    if after.startswith(BEGIN_ARG):
        return m.end()
    return True if (BEGIN_ARG + ":").startswith(after) and m.end() + len(after) == len(rest) else None


def _match_after_opener(rest: str, tools: DeclaredTools, opener: str) -> int | bool | None:
    i, n = 0, len(rest)
    while i < n and rest[i] in _WS:
        i += 1
    if i == n:
        return True if n < _MAX_HEAD else None
    if rest[i] == "{" and opener not in ("", TOOL_CODE_FENCE):
        return i  # "<tool_call>{"name": …}": an envelope, read (name-aware) when it closes
    if rest[i] == "[" and opener == TOOL_CODE_FENCE:  # "[f(a=1), g(b=2)]": a Python list of calls
        inner = _match_after_opener(rest[i + 1 :], tools, opener)
        return inner if inner is None or inner is True else i
    has_call = False
    if rest.startswith("call", i) or "call".startswith(rest[i:]):
        if n - i <= 4:
            return True
        j = i + 4
        while j < n and rest[j] in " \t":
            j += 1
        if j == n:
            return True
        if rest[j] == ":":
            has_call, i = True, j + 1
    if opener == "<tool_call:":
        has_call = True  # the collapsed form "<tool_call:NAME{" already says "call:"
    while i < n and rest[i] in " \t":
        i += 1
    start = i
    while i < n and (rest[i].isalnum() or rest[i] in "_.:-"):
        i += 1
    name = rest[start:i].rstrip(":")
    if i == n:
        # Still inside the name: any word may turn out to be "ns:" before a declared name, so wait (bounded).
        return True if n < _MAX_HEAD else None
    while i < n and rest[i] in " \t":
        i += 1
    if i == n:
        return True if n < _MAX_HEAD else None
    if opener == MISTRAL_OPENER:  # "[TOOL_CALLS]NAME[ARGS]{…}"
        if not rest.startswith(MISTRAL_ARGS, i):
            return True if MISTRAL_ARGS.startswith(rest[i:]) else None
        i += len(MISTRAL_ARGS)
        if i == n:
            return True
    if rest[i] not in "{(" or not name or tools.resolve(name) is None:
        return None
    if not has_call and not opener and rest[i] == "(":
        return None  # "name(...)" at the start of a sentence is prose far more often than a call
    return i


def loose_call_name(text: str, tools: DeclaredTools) -> str | None:
    """The declared tool a call head at the start of ``text`` names (``call:Name{``, ``name(``, ``call:name:`` and a
    ``BEGIN_ARG`` line), else ``None``."""
    m = _HEAD.match(text)
    raw = m.group(3) if m else (b.group(1) if (b := BLOCKS_HEAD.match(text)) else None)
    resolved = tools.resolve(raw.rstrip(":")) if raw else None
    return resolved[0] if resolved else None


def repair_call(
    text: str, tools: DeclaredTools, *, complete: bool, head_repairs: Iterable[str] = ()
) -> tuple[str, dict[str, Any], str]:
    """Read ``call:NAME{…}`` (or a drifted form) forgivingly: ``(name, arguments, repair)``; ValueError if not."""
    text, tag = strip_closing_tag(text)
    complete = complete or tag is not None  # the model closed the call, in another format's words
    m = _HEAD.match(text)
    if m is None:
        blocks = BLOCKS_HEAD.match(text)
        if blocks is not None:
            return _arg_blocks_call(text, blocks, tools, head_repairs)
        return _name_only_call(text, tools, complete=complete, head_repairs=head_repairs)
    repairs = list(head_repairs)
    has_call, has_colon, raw, _ = m.groups()
    resolved = tools.resolve(raw.rstrip(":"))
    if resolved is None:
        raise ValueError(f"{raw!r} is not a declared tool")
    name, renamed = resolved
    if not has_call:
        repairs.append(f"'{has_colon}NAME' without 'call'" if has_colon else "no 'call:' before the name")
    elif not _STRICT_HEAD.match(text):
        repairs.append("spaces in the call head")
    if renamed:
        repairs.append(renamed)
    if tag is not None:
        repairs.append(f"closed by {tag!r}")
    try:
        arguments = read_arguments(text, m.end(4) - 1, tools.schemas[name], repairs, complete=complete)
    except (ValueError, RecursionError) as exc:  # ValueSyntaxError, or a number too long for int()
        raise ValueError(str(exc)) from exc
    return name, arguments, "; ".join(repairs) or "reformatted"


def _arg_blocks_call(
    text: str, head: re.Match[str], tools: DeclaredTools, head_repairs: Iterable[str]
) -> tuple[str, dict[str, Any], str]:
    """``call:name:`` or ``TOOL_NAME: name`` and Continue.dev's ``BEGIN_ARG``/``END_ARG`` blocks (see argblocks)."""
    resolved = tools.resolve(head.group(1).rstrip(":"))
    if resolved is None:
        raise ValueError(f"{head.group(1)!r} is not a declared tool")
    name, renamed = resolved
    arguments, notes = read_arg_blocks(text, head.end(), tools.schemas[name])
    repairs = [*head_repairs, f"{BEGIN_ARG}/END_ARG argument blocks", *notes]
    if renamed:
        repairs.append(renamed)
    return name, arguments, "; ".join(repairs)


def _name_only_call(
    text: str, tools: DeclaredTools, *, complete: bool, head_repairs: Iterable[str]
) -> tuple[str, dict[str, Any], str]:
    """``call:NAME`` and nothing else, ended by a control token: a call without arguments, if the tool needs none.

    The name must be all there (a cut-off output may have stopped inside it) and the tool's schema must require no
    parameter; words after the name are not arguments, so they make it no call at all.
    """
    m = _NAME_ONLY.match(text)
    resolved = tools.resolve(m.group(3).rstrip(":")) if m and complete else None
    if m is None or resolved is None:
        raise ValueError(f"no 'call:NAME{{' head in {text[:30]!r}")
    name = resolved[0]
    required = tools.schemas[name].get("required")
    if required:
        raise ValueError(f"the tool call {name!r} has no arguments, but {name!r} requires {list(required)!r}")
    repairs = [*head_repairs, "no arguments written (no braces)"]
    if not m.group(1):
        repairs.append(f"'{m.group(2)}NAME' without 'call'" if m.group(2) else "no 'call:' before the name")
    if resolved[1]:
        repairs.append(resolved[1])
    return name, {}, "; ".join(repairs)


# Keys of a call wrapped in an envelope: "call:tool_call{args:{…},id:NAME}" or {"name": NAME, "arguments": {…}}.
_ENVELOPE_NAME_KEYS: Final = frozenset({"name", "id", "function", "tool", "tool_name"})
_ENVELOPE_ARGS_KEYS: Final = frozenset({"arguments", "args", "parameters", "params", "input"})


def unwrap_envelope(
    outer: str, arguments: Mapping[str, Any], tools: DeclaredTools
) -> tuple[str, dict[str, Any], str] | None:
    """A call wrapped in a name/arguments envelope, as ``(name, arguments, repair)``; ``None`` if it is not one.

    Models that saw OpenAI- or Hermes-style calls sometimes write one inside the native token: the outer name
    (``tool_call``, ``function``, none at all) is no declared tool, and its arguments hold only a key naming
    exactly one declared tool and at most one mapping of arguments. Anything else is left alone.
    """
    if outer and tools.resolve(outer) is not None:
        return None
    keys = set(arguments)
    function = arguments.get("function")
    if isinstance(function, Mapping) and keys <= {"function", "type", "id"}:
        return unwrap_envelope(outer, function, tools)  # OpenAI's {"type": "function", "function": {…}}
    if not keys <= _ENVELOPE_NAME_KEYS | _ENVELOPE_ARGS_KEYS | {"type"}:
        return None
    names = [arguments[k] for k in keys & _ENVELOPE_NAME_KEYS if isinstance(arguments[k], str)]
    targets = {r[0] for r in (tools.resolve(n) for n in names) if r is not None}
    arg_keys = keys & _ENVELOPE_ARGS_KEYS
    if len(targets) != 1 or len(arg_keys) > 1:
        return None
    inner: Any = arguments[next(iter(arg_keys))] if arg_keys else {}
    if isinstance(inner, str):
        try:
            inner = json.loads(inner)
        except ValueError:
            return None
    if not isinstance(inner, Mapping):
        return None
    shape = f"{outer}{{…}}" if outer else "a JSON object"
    return targets.pop(), dict(inner), f"call wrapped in {shape} instead of call:NAME{{…}}"
