"""Find where a call written without ``<|tool_call>`` ends, as it streams: its balanced close, then one look on.

At a call boundary, with tools declared, :class:`~agentkit.gemma4.StreamParser` may see a call head the model wrote
without the token (``call:name{``, ``<tool_call>``, a ```` ```tool_code ```` block, …; see
:func:`~agentkit.gemma4.repair.match_loose_head`). A :class:`LooseCall` then collects its text across chunks,
tracking only nesting, strings in ``<|"|>`` or ``"…"`` and control tokens, each character once (a call of
``BEGIN_ARG``/``END_ARG`` blocks has no braces: it closes after an ``END_ARG`` line no ``BEGIN_ARG`` follows). What
the text says is :func:`~agentkit.gemma4.calls.read_loose`'s business.

After the balanced close one more look decides: prose on the same line means the "call" was a sentence about one
(``call:f{x} is how you ask``); a newline, a control token or another call means it was a call.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from .argblocks import BEGIN_ARG, END_ARG
from .blocks import CLOSING_TAGS, LM_STUDIO_CLOSER
from .repair import (
    FUNCTION_GEMMA_ESCAPE,
    FUNCTION_GEMMA_HAND_OVER,
    FUNCTION_GEMMA_OPENER,
    MISTRAL_ARGS,
    MISTRAL_OPENER,
    TOOL_CODE_FENCE,
    DeclaredTools,
    LooseHead,
    match_loose_head,
)
from .tokens import (
    CALL_TERMINATORS,
    EOS,
    LONGEST_TOKEN,
    STRING_DELIM,
    TOKEN_PREFIXES,
    TOOL_CALL_END,
    TOOL_CALL_START,
    TOOL_RESPONSE_START,
    token_at,
)

__all__ = ["FENCE", "LooseCall"]

#: A Markdown code fence: a ```` ```tool_code ```` block of calls ends at the next one.
FENCE: Final = "```"
_WS: Final = " \t\r\n"
# What may follow a call that began a line after prose, for it to be a call: the hand-over, another call, or <eos>
# (Google's own tool manager notes that Gemma 4 E2B/E4B write <eos> where <|tool_response> belongs; the end of an
# answer is <turn|>).
_HAND_OVER: Final = (TOOL_RESPONSE_START, TOOL_CALL_START, FUNCTION_GEMMA_HAND_OVER, EOS, TOOL_CALL_END)
# (<tool_call|> too: the model's own closer token, which no quoted text can hold, says the line was a call.)
_LONGEST_MARK: Final = max(len(mark) for mark in (*_HAND_OVER, *CLOSING_TAGS, FENCE))
# What matters while a loose call is open: nesting, strings, and "<" (control tokens end a call).
_STOPS = re.compile(r'[<{}()\[\]"\\]')
_NEXT_HEAD: Final = 200  # how far a call head on the next line of a ```tool_code block is looked for
# What matters in a call of BEGIN_ARG/END_ARG blocks: an END_ARG line (perhaps the last) and "<" (control tokens).
_BLOCK_STOPS = re.compile(rf"<|{END_ARG}")
_BLOCK_GAP: Final = 64  # blank space after an END_ARG looked through for the next BEGIN_ARG


class LooseCall:
    """The text of one loose call so far, and where its scan stands (depth, string, escape)."""

    __slots__ = (
        "_blocks",
        "_delim",
        "_depth",
        "_escaped",
        "_fence_seen",
        "_gt_ok",
        "_quote",
        "_tag_seen",
        "opener",
        "parts",
        "tools",
        "trail",
    )

    def __init__(self, opener: str, tools: DeclaredTools | None = None, *, blocks: bool = False) -> None:
        self.opener = opener  # the drifted opener ("" when the call starts with "call:" or the bare name)
        self.tools = tools  # what a further call of a ```tool_code block may name
        self._blocks = blocks  # arguments in BEGIN_ARG/END_ARG blocks: no braces to balance
        self._delim = FUNCTION_GEMMA_ESCAPE if opener == FUNCTION_GEMMA_OPENER else STRING_DELIM  # quotes a string
        self.parts: list[str] = []
        self.trail: list[str] = []  # what after_line() read past the close: not the call's, text if it was prose
        self._fence_seen = self._tag_seen = False
        self._depth = 0
        self._quote = ""  # the string the call is inside: "", '"' or the delimiter
        self._escaped = False
        self._gt_ok = False  # a ">" may still follow the closing brace of a "<tool_call:" call

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def scan(self, buf: str, i: int, final: bool) -> tuple[int, str | None]:
        """Collect up to the balanced close or a control token: where to go on, and what ended the call.

        ``None``: nothing yet, wait for the next chunk; ``""``: the braces balanced (then :meth:`after`); else the
        control token that ended the call (the position is past it).
        """
        if self._blocks:
            return self._scan_blocks(buf, i, final)
        n = len(buf)
        start = i
        while True:
            m = _STOPS.search(buf, i)
            if m is None:
                self.parts.append(buf[start:])
                return n, None
            k = m.start()
            ch = buf[k]
            if ch == "<":
                tok = token_at(buf, k, CALL_TERMINATORS)
                if tok is not None:
                    self.parts.append(buf[start:k])
                    return k + len(tok), tok
                delim = self._delim
                if buf.startswith(delim, k):
                    if self._quote in ("", delim):
                        self._quote = "" if self._quote else delim
                    i = k + len(delim)
                    continue
                if not final and n - k < len(delim) and delim.startswith(buf[k:]):
                    self.parts.append(buf[start:k])
                    return k, None  # perhaps a delimiter split across chunks
                if not final and n - k < LONGEST_TOKEN and buf[k:] in TOKEN_PREFIXES:
                    self.parts.append(buf[start:k])
                    return k, None
            elif self._quote == '"':
                if ch == "\\":
                    self._escaped = not self._escaped
                elif ch == '"' and not self._escaped:
                    self._quote = ""
                if ch != "\\":
                    self._escaped = False
            elif self._quote:
                pass  # inside <|"|>…<|"|>: only the delimiter and control tokens matter
            elif ch == '"':
                self._quote, self._escaped = '"', False
            elif ch == "[" and self._depth == 0 and self.opener == MISTRAL_OPENER:
                if buf.startswith(MISTRAL_ARGS, k):  # "NAME[ARGS]{": the separator, not a list
                    i = k + len(MISTRAL_ARGS)
                    continue
                if not final and MISTRAL_ARGS.startswith(buf[k:]):
                    self.parts.append(buf[start:k])
                    return k, None
                self._depth += 1
            elif ch in "{([":
                self._depth += 1
            elif ch in "})]" and self._depth > 0:
                self._depth -= 1
                if self._depth == 0:
                    self.parts.append(buf[start : k + 1])
                    self._gt_ok = True
                    return k + 1, ""
            i = k + 1

    def _scan_blocks(self, buf: str, i: int, final: bool) -> tuple[int, str | None]:
        """:meth:`scan` for BEGIN_ARG/END_ARG blocks: the call closes after an ``END_ARG`` line that no
        ``BEGIN_ARG`` follows; values are text (braces and quotes in them mean nothing), control tokens still end it.
        """
        n = len(buf)
        start = i
        while True:
            m = _BLOCK_STOPS.search(buf, i)
            k = m.start() if m is not None else n
            if m is None or buf[k] == "<":
                if m is not None:
                    tok = token_at(buf, k, CALL_TERMINATORS)
                    if tok is not None:
                        self.parts.append(buf[start:k])
                        return k + len(tok), tok
                    if final or n - k >= LONGEST_TOKEN or buf[k:] not in TOKEN_PREFIXES:
                        i = k + 1
                        continue
                elif final:
                    self.parts.append(buf[start:])
                    return n, None
                else:  # perhaps "END_ARG" split across chunks: keep its start for the next one
                    k = next((c for c in range(max(i, n - len(END_ARG) + 1), n) if END_ARG.startswith(buf[c:])), n)
                self.parts.append(buf[start:k])
                return k, None
            end = k + len(END_ARG)
            j = end
            while j < n and buf[j] in " \t":
                j += 1
            if j < n and buf[j] not in "\r\n<":
                i = end  # "END_ARG" inside a value's line: text
                continue
            g = j
            while g < n and buf[g] in _WS and g - end < _BLOCK_GAP:
                g += 1
            ahead = buf[g : g + len(BEGIN_ARG)]
            if ahead == BEGIN_ARG:  # the next argument block
                i = g + len(BEGIN_ARG)
                continue
            if not final and g == n - len(ahead) and BEGIN_ARG.startswith(ahead) and g - end < _BLOCK_GAP:
                self.parts.append(buf[start:k])
                return k, None  # the next chunk says whether another block follows
            self.parts.append(buf[start:end])
            self._gt_ok = False
            return end, ""

    def after(self, buf: str, i: int, final: bool) -> tuple[int, Literal["call", "prose", "fence"] | None]:
        """After the balanced close: a ``call``, ``prose`` (it was text), a call whose ``fence`` closed, or wait."""
        n = len(buf)
        if self.opener.startswith(FENCE):  # "…)```" closes the block too; after a newline the boundary does
            j = i
            while j < n and buf[j] in " \t":
                j += 1
            if buf.startswith(FENCE, j):  # the block's closing fence belongs to the call
                return j + len(FENCE), "fence"
            if not final and FENCE.startswith(buf[j:]):
                self.parts.append(buf[i:j])
                return j, None
        if self._gt_ok and i < n:
            self._gt_ok = False
            if self.opener.startswith("<") and buf[i] == ">":
                i += 1  # "}>" right after a call opened by the collapsed "<tool_call:"
        j = i
        while j < n and buf[j] in " \t":
            j += 1
        if j == n and not final:
            self.parts.append(buf[i:j])
            self._gt_ok = self._gt_ok and j == i
            return j, None
        if not final and n - j < 5 and "call:".startswith(buf[j:]):
            self.parts.append(buf[i:j])
            return j, None
        if j == n or buf[j] in "\r\n<" or buf.startswith("call:", j):
            return j, "call"
        if self.opener[:1] == "[" and buf[j] == "[":  # "[TOOL_REQUEST]{…}[END_TOOL_REQUEST]": the wrapper's closer
            if buf.startswith(LM_STUDIO_CLOSER, j):
                return j, "call"
            if not final and LM_STUDIO_CLOSER.startswith(buf[j:]):
                self.parts.append(buf[i:j])
                return j, None
        return i, "prose"

    def after_line(self, buf: str, i: int, final: bool) -> tuple[int, Literal["call", "prose", "fence", "more"] | None]:
        """After the close of a call that began a line after prose: stricter than :meth:`after`.

        Such a line is a call only if nothing but whitespace (its block's closing fence, its closing tag) comes
        before the hand-over (``<|tool_response>``, ``<eos>``, FunctionGemma's), another ``<|tool_call>`` or the
        end of the output: a call followed by more prose or ``<turn|>`` was an example shown to the reader.
        Everything read past the close goes to ``trail``. In a ```` ```tool_code ```` block, a call to a declared tool
        on the next line (``more``) goes on the same block: the verdict waits for the block's end.
        """
        n = len(buf)
        j = i
        if self._gt_ok and j < n:
            self._gt_ok = False
            if self.opener.startswith("<") and buf[j] == ">":
                j += 1  # "}>" right after a call opened by the collapsed "<tool_call:"
        while True:
            while j < n and buf[j] in _WS:
                j += 1
            if self.opener.startswith(FENCE) and not self._fence_seen and buf.startswith(FENCE, j):
                self._fence_seen, j = True, j + len(FENCE)
                continue
            tagged = self.opener[:1] in ("<", "[")
            tag = next((t for t in CLOSING_TAGS if buf.startswith(t, j)), None) if tagged else None
            if tag is not None and not self._tag_seen:
                self._tag_seen, j = True, j + len(tag)
                continue
            break
        self.trail.append(buf[i:j])
        if self.opener == TOOL_CODE_FENCE and not self._fence_seen and self.tools is not None and j < n:
            ahead = buf[j : j + _NEXT_HEAD]
            head = match_loose_head(TOOL_CODE_FENCE + ahead, self.tools) if "\n" in "".join(self.trail) else None
            if head is True and not final and len(ahead) < _NEXT_HEAD:
                return j, None
            if isinstance(head, LooseHead):  # the block's next call: collect it too
                self.parts.extend(self.trail)
                self.trail = []
                self._gt_ok = False
                return j, "more"
        rest = buf[j : j + _LONGEST_MARK]
        if j == n or rest.startswith(_HAND_OVER):
            if j == n and not final:
                return j, None
            return j, "fence" if self._fence_seen else "call"
        if not final:
            waits = [*_HAND_OVER]
            if self.opener.startswith(FENCE) and not self._fence_seen:
                waits.append(FENCE)
            if self.opener[:1] in ("<", "[") and not self._tag_seen:
                waits.extend(CLOSING_TAGS)
            if any(mark.startswith(rest) for mark in waits):
                return j, None
        return j, "prose"
