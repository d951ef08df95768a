"""What the markers around Gemma 4's calls mean when a model or a server writes them another way.

Gemma 2/3's turn markers (``<end_of_turn>``, ``<start_of_turn>``), floods of reserved tokens (``<unused49>``,
``<pad>``), thinking as ``<think>``/``<thought>`` tags or as a bare ``thought`` header whose ``<|channel>`` was
dropped, and the channel names models imitating other formats write. Each is a pure function of the text at
hand: :class:`~agentkit.gemma4.parse.StreamParser` asks it what a marker is (the end of the output, text, or
something to drop; ``None`` while the next chunk decides) and keeps the state.
"""

from __future__ import annotations

import re
from typing import Final

from .tokens import (
    CHANNEL_END,
    CHANNEL_START,
    CONTROL_TOKENS,
    END_OF_OUTPUT,
    EOS,
    LONGEST_TOKEN,
    TOKEN_PREFIXES,
    TOOL_CALL_START,
    TOOL_RESPONSE_START,
    TURN_END,
    TURN_START,
    token_at,
)

_WS: Final = " \t\r\n"

THOUGHT_WORD: Final = "thought"
MAX_HEADER_PAD: Final = 8  # spaces after a repeated "thought" header word that still make it a header line
# Gemma 2/3's turn markers, which Gemma 4 renamed (<|turn>, <turn|>): written by a model or decoded by a tokenizer
# still on the old names. One ends the output only where nothing of the answer can follow (see legacy_end).
_OLD_TURN_END: Final = "<end_of_turn>"
_OLD_TURN_START: Final = "<start_of_turn>"
_OLD_ROLES: Final = ("user", "model", "system")
_OLD_AFTER_END: Final = (EOS, TURN_END, TURN_START, _OLD_TURN_START, _OLD_TURN_END)
_OLD_WS: Final = 16  # whitespace looked through after <end_of_turn> before it counts as text
# The most text held back without tools: Gemma 3's end marker, a blank run and the next turn's opener.
HOLD_BACK: Final = len(_OLD_TURN_END) + _OLD_WS + len(_OLD_TURN_START) + 1
# Reserved vocabulary entries a broken generation collapses into (ollama #17459, opencompass #1429): a run of two or
# more is dropped; one alone is text (an answer may name it).
_RESERVED = re.compile(r"<(?:pad|unused\d{1,5})>")
_RESERVED_PREFIX = re.compile(r"<(?:p(?:ad?)?|u(?:n(?:u(?:s(?:e(?:d\d{0,5})?)?)?)?)?)?\Z")
# Thinking written as tags at the very start of output instead of the thought channel (servers that rewrite
# the channel into <think>, models imitating other families): opener -> closer.
THOUGHT_TAGS: Final = {"<think>": "</think>", "<thought>": "</thought>"}
# What settles a bare "thought" header at the start as a thought (the channel opener lost): its closer, a call;
# and what settles it as text: the end of the turn or the hand-over before any of those.
_THOUGHT_CONFIRM: Final = frozenset({CHANNEL_END, TOOL_CALL_START, CHANNEL_START})
_THOUGHT_DENY: Final = frozenset({*END_OF_OUTPUT, TOOL_RESPONSE_START})
# A channel name ("thought", "thought " in SillyTavern #5506); channels whose body is the visible answer
# (harmony's and LTX2's "final"): every other name is thinking.
CHANNEL_NAME = re.compile(r"[A-Za-z_]{1,24}[ \t\r]*\Z")
ANSWER_CHANNELS: Final = frozenset({"final"})


def skip(buf: str, i: int, chars: str, most: int) -> int:
    """Where the run of ``chars`` from ``buf[i]`` ends, or -1 if it is longer than ``most``."""
    n = len(buf)
    j = i
    while j < n and buf[j] in chars:
        j += 1
        if j - i > most:
            return -1
    return j


def reserved_run(buf: str, lt: int, final: bool, *, in_run: bool, shown: bool) -> int | None:
    """Where a reserved token at ``buf[lt]`` that belongs to a run of them ends (0: it is text; None: wait).

    A generation that collapsed writes ``<unused49>`` or ``<pad>`` over and over until the token limit; no
    answer is made of them, and shown or kept in history they bury what came before. One alone is text.
    """
    m = _RESERVED.match(buf, lt)
    if m is None:
        return None if not final and _RESERVED_PREFIX.match(buf, lt) else 0
    if in_run:
        return m.end()
    if shown:
        return 0  # a code block shows them
    k = skip(buf, m.end(), _WS, _OLD_WS)
    if k == len(buf):
        return 0 if final else None
    if k > 0 and _RESERVED.match(buf, k):
        return m.end()
    return None if k > 0 and not final and _RESERVED_PREFIX.match(buf, k) else 0


def legacy_end(buf: str, lt: int, final: bool, *, in_code: bool, line_start: bool, answered: bool) -> int | None:
    """What Gemma 2/3's marker at ``buf[lt]`` is: -1 the end of the output, 0 text, else where to go on after
    it (the model's own turn header, dropped); None: the next chunk decides.

    ``<end_of_turn>`` ends it where only the end of the output, ``<eos>`` or a next turn follows (ChatterUI #128:
    ``<end_of_turn><eos>`` after every message); ``<start_of_turn>user`` (or ``model``/``system``) on a line of
    its own starts a turn the model made up, as ``<|turn>`` does, except ``<start_of_turn>model`` before any of
    the answer: the model repeating its own header. Inside a Markdown code block, mid-line or followed by more
    of the answer, they are text: answers show Gemma 3's format.
    """
    n = len(buf)
    rest = buf[lt : lt + len(_OLD_TURN_START)]
    if (
        not final
        and len(rest) < len(_OLD_TURN_START)
        and any(m.startswith(rest) for m in (_OLD_TURN_END, _OLD_TURN_START))
    ):
        return None
    if in_code:
        return 0
    if rest.startswith(_OLD_TURN_END):
        k = skip(buf, lt + len(_OLD_TURN_END), _WS, _OLD_WS)
        if k < 0:
            return 0  # a long blank run: text follows, if anything
        if k == n:
            return -1 if final else None
        after = buf[k : k + len(_OLD_TURN_START)]
        if after.startswith(_OLD_AFTER_END):
            return -1
        if not final and len(after) < len(_OLD_TURN_START) and any(m.startswith(after) for m in _OLD_AFTER_END):
            return None
        return 0
    if rest == _OLD_TURN_START and line_start:
        k = lt + len(_OLD_TURN_START)
        tail = buf[k : k + 8]
        for role in _OLD_ROLES:
            if tail.startswith(role):
                m = skip(buf, k + len(role), " \t\r", 4)
                if m < 0 or (m < n and buf[m] != "\n"):
                    return 0
                if m == n and not final:
                    return None
                if role == "model" and not answered:
                    return min(m + 1, n)
                return -1
            if not final and role.startswith(tail):
                return None
    return 0


def settle_thought(buf: str, i: int, final: bool) -> tuple[bool | None, int]:
    """Whether the first deciding control token from ``i`` on makes a bare header a thought (None: none
    yet), and where to search on from when more text comes."""
    n = len(buf)
    while (lt := buf.find("<", i)) >= 0:
        tok = token_at(buf, lt, CONTROL_TOKENS)
        if tok in _THOUGHT_CONFIRM:
            return True, lt
        if tok in _THOUGHT_DENY:
            return False, lt
        if tok is None and not final and n - lt < LONGEST_TOKEN and buf[lt:] in TOKEN_PREFIXES:
            return None, lt  # perhaps a token: the next chunk decides
        i = lt + (len(tok) if tok else 1)
    return (False if final else None), n
