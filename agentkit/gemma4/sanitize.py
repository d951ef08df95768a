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
"""

from __future__ import annotations

import re

__all__ = ["ZWJ", "sanitize"]

ZWJ = "\u200d"

_LT = "<\ufe64\uff1c"
_BAR = "|\uff5c"
_GT = ">\ufe65\uff1e"
_NAMED = r"bos|eos|pad|unk|mask|start_of_\w+|end_of_\w+|unused\d+|\w*soft_token"
_BREAK = re.compile(rf"[{_LT}](?=[{_BAR}])|[{_BAR}](?=[{_GT}])|[{_LT}](?=(?:{_NAMED})[{_GT}])")


def _join(match: re.Match[str]) -> str:
    return match.group(0) + ZWJ


def sanitize(text: str) -> str:
    """Return ``text`` with every control-token look-alike broken so it cannot become a token."""
    if text.isascii() and "<" not in text:
        return text  # the common case: nothing can pair up (every pattern needs a "<" or a look-alike)
    return _BREAK.sub(_join, text)
