"""Neutralize control-token strings in untrusted text, so it can go into a text prompt safely.

The problem: a text prompt is tokenized with special-token parsing on, so the literal string
``<|tool_call>`` in a web page becomes the real control token and forges a call; ``<turn|>`` ends the
user's turn early; a stray ``<|"|>`` inside a tool result ends a string value. There is no escape syntax.

The approach: put a ZERO WIDTH JOINER (U+200D) inside every control-token look-alike, right after its
first character. The text reads the same to a person and to the model (the characters are all still
there), but no tokenizer can match the special token any more, because special tokens are matched on
the raw text before any normalization and U+200D is part of none of them. Concretely, a joiner goes
between

- ``<`` and ``|`` and between ``|`` and ``>`` — that breaks every Gemma token of the forms ``<|…>`` and
  ``<…|>`` (``<|turn>``, ``<turn|>``, ``<|"|>``, ``<|image|>`` …), including ones added to the vocabulary
  later;
- ``<`` and a named token such as ``bos``, ``eos``, ``pad``, ``unk``, ``mask``, ``start_of_…``,
  ``end_of_…``, ``unusedN``, ``…soft_token`` followed by ``>``;
- the same pairs written with the full-width and small-form look-alikes (``＜ ｜ ＞ ﹤ ﹥``), which NFKC
  normalization would otherwise fold into real ``<``, ``|``, ``>``. U+200D survives NFKC, so even a
  tokenizer that normalizes first sees no token.

Properties the tests check: the output never contains a control token (also after NFKC); the function is
idempotent; text without those pairs is returned unchanged. ASCII text without a ``<`` is returned at once:
every token starts with ``<``, and the renderer never puts a partial token next to untrusted text.

Backends that send token ids do not need this: :meth:`agentkit.gemma4.Prompt.token_ids` encodes
untrusted segments with special-token parsing off, so the literal text survives exactly.

Engines that render the prompt themselves (Ollama's ``/api/chat``, vLLM's chat API) get the conversation
as OpenAI-style messages and tool declarations instead, and render every string in them into a text prompt
that is tokenized with special tokens recognized. :func:`neutralize_messages` and :func:`neutralize_tools`
are the one place such a request is made safe: every string in it (contents, names, ids, thinking, call
arguments and their keys, descriptions, enum values) is passed through :func:`sanitize` — everything the
native renderer marks untrusted, and the structural strings too, which are plain words the function leaves
alone. Call arguments given as a JSON string are decoded first: the engine decodes them before rendering,
so a ``\\u003c|`` escape would otherwise reach the template as a real ``<|``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ZWJ", "neutralize", "neutralize_messages", "neutralize_tools", "sanitize"]

ZWJ = "\u200d"

_LT = "<\ufe64\uff1c"
_BAR = "|\uff5c"
_GT = ">\ufe65\uff1e"
_LEFT = frozenset(_LT + _BAR)  # the characters on the left of every pair the pattern breaks
_NAMED = r"bos|eos|pad|unk|mask|start_of_\w+|end_of_\w+|unused\d+|\w*soft_token"
_BREAK = re.compile(rf"[{_LT}](?=[{_BAR}])|[{_BAR}](?=[{_GT}])|[{_LT}](?=(?:{_NAMED})[{_GT}])")


def _join(match: re.Match[str]) -> str:
    return match.group(0) + ZWJ


def sanitize(text: str) -> str:
    """Return ``text`` with every control-token look-alike broken so it cannot become a token."""
    if text.isascii() and "<" not in text:
        return text  # the common case: nothing can pair up (every pattern needs a "<" or a look-alike)
    return _BREAK.sub(_join, text)


def neutralize(value: Any) -> Any:
    """``value`` (a JSON-like value) with every string in it, mapping keys included, passed through ``sanitize``.

    Mappings come back as dicts and sequences as lists; other values (numbers, bytes, None) are returned as
    they are, since an engine writes them as digits or base64, never as text that could hold a token.
    """
    if isinstance(value, str):
        return sanitize(value)
    if isinstance(value, Mapping):
        return {sanitize(str(k)): neutralize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [neutralize(v) for v in value]
    return value


def _neutral_arguments(arguments: Any) -> Any:
    """Call arguments made safe; a JSON string stays a JSON string, of the decoded and neutralized value."""
    if not isinstance(arguments, str):
        return neutralize(arguments)
    try:
        decoded = json.loads(arguments)
    except (ValueError, RecursionError):
        return sanitize(arguments)  # not JSON: an engine can only treat it as text
    return json.dumps(neutralize(decoded), ensure_ascii=False)


def _neutral_call(call: Any) -> Any:
    if not isinstance(call, Mapping):
        return neutralize(call)
    safe: dict[str, Any] = neutralize({k: v for k, v in call.items() if k != "function"})
    function = call.get("function")
    if isinstance(function, Mapping):
        fn: dict[str, Any] = neutralize({k: v for k, v in function.items() if k != "arguments"})
        if "arguments" in function:
            fn["arguments"] = _neutral_arguments(function["arguments"])
        safe["function"] = fn
    elif function is not None:
        safe["function"] = neutralize(function)
    if "arguments" in call:  # a flat call ({"name", "arguments"}), as some clients write it
        safe["arguments"] = _neutral_arguments(call["arguments"])
    return safe


def _sealed(text: str) -> str:
    """``text`` that cannot start a token with whatever follows it: a joiner after a trailing ``<`` or ``|``.

    Engines write the text parts of one message next to each other, each trimmed (``<`` + `` |turn>`` would
    become ``<|turn>``); every token look-alike starts with a ``<`` or ``|`` on the left of a pair, so a
    joiner after the last visible character, when it is one of those, closes that gap. Trimming does not
    remove the joiner: it is not whitespace.
    """
    body = text.rstrip()
    if body and body[-1] in _LEFT:
        return body + ZWJ + text[len(body) :]
    return text


def _neutral_content(content: Any) -> Any:
    if not isinstance(content, list | tuple):
        return neutralize(content)
    parts = neutralize(content)
    for part in parts:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            part["text"] = _sealed(part["text"])
    return [_sealed(p) if isinstance(p, str) else p for p in parts]


def neutralize_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-style ``messages`` safe to hand to an engine that renders and tokenizes them itself.

    Returns new dicts (the caller's history is not touched). Every string is sanitized, as in
    :func:`neutralize`; tool-call arguments sent as JSON text are decoded, neutralized and encoded again;
    the text parts of a content list are sealed so that, written side by side, they form no token either.
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        safe: dict[str, Any] = neutralize({k: v for k, v in message.items() if k not in ("tool_calls", "content")})
        if "content" in message:
            safe["content"] = _neutral_content(message["content"])
        if "tool_calls" in message:
            calls = message["tool_calls"]
            safe["tool_calls"] = (
                [_neutral_call(c) for c in calls] if isinstance(calls, list | tuple) else neutralize(calls)
            )
        out.append(safe)
    return out


def neutralize_tools(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """Tool declarations safe to hand to an engine that renders them (names, descriptions, enums, keys).

    Takes OpenAI function-tool dicts or objects with ``as_openai_tool()`` (as :func:`render` does).
    """
    out: list[dict[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, Mapping) and callable(getattr(tool, "as_openai_tool", None)):
            tool = tool.as_openai_tool()
        if not isinstance(tool, Mapping):
            raise TypeError(
                f"a tool must be an OpenAI function-tool dict or have as_openai_tool(), not {type(tool).__name__}"
            )
        out.append(neutralize(tool))
    return out
