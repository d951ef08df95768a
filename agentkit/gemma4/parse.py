"""Parse Gemma 4 output — thinking, visible text and tool calls — whole or as it streams.

There is one parser: :class:`StreamParser`, a state machine that looks at each character once.
:func:`parse_response` feeds it the whole text, so the streamed and the whole-text results cannot differ.

States and what moves between them (``<…>`` are control tokens)::

    text ──<|channel>──▶ header ──"\\n"──▶ thought ──<channel|>──▶ text
    text ──<|tool_call>──▶ call ──<tool_call|> / <|tool_call> / <|tool_response> / <turn|> / <eos> / <channel|>──▶ text
    text ──<|tool_response> (hand-over) / <turn|> / <eos> / <|turn>──▶ done (the rest is ignored)
    text ──<end_of_turn> at the end / <start_of_turn>ROLE on its own line (Gemma 2/3's markers)──▶ done

A call's text is buffered until one of its terminators and then read once by :mod:`agentkit.gemma4.calls`
(the result and event types are :mod:`agentkit.gemma4.results`, re-exported here). A
terminator ends a call even inside a string: the model emits these as single tokens, and a string never
legitimately holds one (:func:`~agentkit.gemma4.values.format_tool_call` neutralizes them). So a call
with an unterminated string or unbalanced braces cannot swallow the rest of the output: it becomes one
error, and no call is invented from it.

Tolerated without an error, as Ollama and vLLM do: JSON double-quoted strings, a missing ``<tool_call|>``
when the braces are balanced, stray ``<tool_call|>`` / ``<channel|>`` tags, and ``<|tool_response>``,
``<turn|>`` or ``<eos>`` at the end.

Recovery (only with ``tools=``, see :mod:`agentkit.gemma4.repair`): a call the strict reader rejects gets a
second, name-aware read (a block holding several calls is split and each read; a name/arguments envelope is
unwrapped), strings the schema types as numbers, booleans, objects or lists are read as such, and at a call
boundary (start of output, after the thought channel, after a call) text that starts like a call to a declared
tool (``call:name{``, ``<|tool_call|>``, ``<tool_call:Name{``, ``<call>name{``, a ```` ```tool_code ```` block,
``[TOOL_REQUEST]{``, ``[TOOL_CALLS]name[ARGS]{``, ``call:name:`` and ``BEGIN_ARG`` blocks, a bare ``name{``) is
held back and read as one (its end is found by :mod:`agentkit.gemma4.loose`)::

    text (at a boundary) ──call head──▶ loose ──balanced close──▶ after (prose on the line? then text) ──▶ text

A loose call that does not read as a call is given back as text (with an error when the output ended inside a
call to a declared tool); one followed by prose on its line was prose.

After prose the bar is higher: a line that starts with ``call:NAME{`` or a ```` ```tool_code ```` block, a
``call:`` glued to the end of a sentence (``….call:NAME{``, where a server stripped a token), or a tag opener
(``<start_function_call>`` with FunctionGemma's ``<escape>`` strings, ``<tool_call>``, ``<tool>`` …) later on a
line, is a call only when nothing but the hand-over (``<|tool_response>``, FunctionGemma's
``<start_function_response>``, ``<eos>`` which E2B/E4B write instead, another ``<|tool_call>``) or the end of the
output follows it, and never inside a Markdown code block or a ``>`` quote. Followed by prose or ``<turn|>`` it was
an example, and no later line of that output is read as a call. ``response:NAME{…}`` and ``declaration:NAME{…}``
(Gemma's own result and declaration heads, echoed or made up by the model) are never calls. A bare
``thought\n<channel|>`` at the start (the channel opener left out) is dropped like an empty thought.

At the very start of output, with or without tools, a thought that lost its ``<|channel>`` opener is still a
thought: ``<think>…</think>`` / ``<thought>…</thought>`` (servers that rewrite the channel, models imitating
other families), and a bare ``thought`` header line once ``<channel|>`` (or a call) follows it; when the turn
ends first, the header line and its text stay visible text, read as any text is.

A ``<|tool_call>`` inside an unclosed thought channel ends the thought and starts a real call (vLLM's parser
does the same; the template never puts a call there, so the model has left out ``<channel|>``). Only the model
can write that token: untrusted text is neutralized before it reaches a prompt. Text after such a call is
visible content, and a later ``<channel|>`` is dropped. Without the token, a call-shaped line inside a thought
stays thinking, with or without tools: thoughts plan and discuss calls.
Without ``tools`` the machine is exactly the strict one the conformance vectors pin down.

Around the calls (none of this needs tools): a channel's name decides where its text goes, ``final`` (harmony's
answer channel, LTX2's primed one) to the answer and any other name (``thought``, ``analysis``, ``commentary``) to
thinking; a ``thought`` header line the model repeats first in its thought, or writes first after a thought that was
closed from outside (a thinking budget), is dropped. Gemma 2/3's ``<end_of_turn>`` ends the output where only the
end, ``<eos>`` or a next turn follows it, and ``<start_of_turn>user`` (or ``model``/``system``) on a line of its own
starts a made-up turn, as ``<|turn>`` does; in a code block, mid-line or followed by more answer they are text. A
run of two or more reserved tokens (``<unusedN>``, ``<pad>``: a collapsed generation) is dropped; one alone is text.
What each of these markers is, given the text around it, is decided in :mod:`agentkit.gemma4.markers`.

Streaming: text that might be the start of a control token (``<tur``) is held back until the next chunk
decides, so a delta never carries half a token (and ``<end_of_turn>`` or a reserved token until what follows it does:
at most ``markers.HOLD_BACK`` characters). Visible text and thinking are trimmed at both ends, as
the reference template does, so leading whitespace is dropped and trailing whitespace is held until more
text follows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from .blocks import CLOSING_TAGS
from .calls import join_repair, read_block, read_call, read_loose
from .coerce import coerce_arguments
from .loose import FENCE, LooseCall
from .markers import (
    ANSWER_CHANNELS,
    CHANNEL_NAME,
    MAX_HEADER_PAD,
    THOUGHT_TAGS,
    THOUGHT_WORD,
    legacy_end,
    reserved_run,
    settle_thought,
    skip,
)
from .repair import (
    CONTINUE_FENCE,
    FUNCTION_GEMMA_HAND_OVER,
    TAG_OPENERS,
    TOOL_CODE_FENCE,
    DeclaredTools,
    LooseHead,
    loose_call_name,
    match_loose_head,
)
from .results import (
    ContentDelta,
    ParsedResponse,
    ParseErrorEvent,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
)
from .tokens import (
    CALL_TERMINATORS,
    CHANNEL_END,
    CHANNEL_START,
    CONTROL_TOKENS,
    END_OF_OUTPUT,
    EOS,
    LONGEST_TOKEN,
    TOKEN_PREFIXES,
    TOOL_CALL_END,
    TOOL_CALL_START,
    TOOL_RESPONSE_START,
    token_at,
)

__all__ = [
    "ContentDelta",
    "ParseErrorEvent",
    "ParsedResponse",
    "StreamEvent",
    "StreamParser",
    "TextDelta",
    "ThinkingDelta",
    "ToolCall",
    "ToolCallEvent",
    "parse_response",
]


_TEXT, _HEADER, _THOUGHT, _CALL, _DONE, _LOOSE, _AFTER_LOOSE = range(7)
_MAX_HEADER = 32
_WS: Final = " \t\r\n"
_HEAD_WINDOW: Final = 200  # a loose call head (opener, "call:", a namespaced name) is shorter than this
# What may end a call that began a line after prose (else it was an example): the hand-over, a call token.
_LINE_CALL_ENDS: Final = (TOOL_RESPONSE_START, TOOL_CALL_START, TOOL_CALL_END, EOS)
_LONGEST_TAG: Final = max(map(len, TAG_OPENERS))
_CALL_WORD: Final = "call:"
_SENTENCE_END: Final = frozenset(".!?)")  # what a call glued to the text before it may follow (see _glued_call)

#: Declared tools as :class:`StreamParser` takes them: names, OpenAI tool dicts, or a ``DeclaredTools``.
Tools = Iterable[str | Mapping[str, Any]] | DeclaredTools


class _Trimmed:
    """Streams text with leading whitespace dropped and trailing whitespace held (an online ``strip``)."""

    __slots__ = ("_pending", "_started", "parts")

    def __init__(self) -> None:
        self._started = False
        # Whitespace held, in pieces: a string grown by += is copied whole each time, and an output of a million
        # blank lines streamed one at a time took seconds.
        self._pending: list[str] = []
        self.parts: list[str] = []

    def push(self, text: str) -> str:
        if not self._started:
            text = text.lstrip()
            if not text:
                return ""
            self._started = True
        body = text.rstrip()
        if not body:
            self._pending.append(text)
            return ""
        out = "".join(self._pending) + body
        self._pending = [text[len(body) :]]
        self.parts.append(out)
        return out

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def started(self) -> bool:
        return self._started


class StreamParser:
    """Incremental parser: ``feed`` chunks as they arrive, then ``finish`` for the whole result.

    Work is linear in the output: each chunk is scanned once, only a possible token prefix (at most 15
    characters; an old end marker or reserved token and what settles it, at most ``HOLD_BACK``) is carried over,
    and a call's text is read once when it ends. With ``tools`` (names or
    OpenAI tool dicts) drifted calls are recovered; then a possible call head at a call boundary (at most
    ``_HEAD_WINDOW`` characters) may be carried over too.
    """

    def __init__(self, tools: Tools | None = None) -> None:
        # With declared tools, drifted calls are recovered (see agentkit.gemma4.repair); without, none are.
        self._tools = DeclaredTools.of(tools) if tools is not None else None
        self._boundary = True  # a loose call may start here: start of output, after a thought or a call
        self._loose: LooseCall | None = None  # the call without <|tool_call> being read
        self._after_call = False  # nothing but whitespace since the last call: a stray closer is dropped
        self._fence_open = False  # inside a ```tool_code block after one of its calls
        # A call that begins a line after prose (see _scan_line_start): on until one such line turned out to be prose.
        self._line_calls = tools is not None
        self._line_start = False  # visible text just ended with a newline
        self._loose_line = False  # the loose call being read began a line after prose
        self._fences = 0  # Markdown fences (```) in the visible text so far: odd means inside a code block
        self._fence_tail = ""  # the last two characters of visible text, for a fence split between pieces
        self._tag_checked = False  # the "<" at the scan position was already looked at as a call opener
        self._quoted_line = False  # the visible line being read is a Markdown quote ("> …"): nothing in it is a call
        self._line_start_pending = False  # the line's first character is still to be seen
        self._prev_char = "\n"  # the last character of visible text
        self._buf = ""
        self._state = _TEXT
        self._header = ""
        self._call: list[str] = []
        self._content = _Trimmed()
        self._thinking = _Trimmed()
        self._calls: list[ToolCall] = []
        self._errors: list[str] = []
        self._handed_over = False
        self._closed = False
        self._result: ParsedResponse | None = None
        self._delta: list[str] = []  # text pieces of the delta being collected
        self._delta_is_thought = False
        self._start = True  # nothing but whitespace so far: a thought without its channel opener may begin
        self._closer: str | None = None  # the tag ending a thought that began as <think>/<thought>
        self._look = 0  # how far a bare "thought" header's text was searched for what settles it
        # While such a header waits, chunks that settle nothing are kept aside and joined once: adding each to the
        # held text copied all of it per chunk (4 MB without a control token took seconds, quadratic).
        self._held: list[str] = []
        self._window = ""  # the held text from self._look on (a control token's start, at most)
        self._fresh_thought = False  # a thought just opened, nothing in it yet: a repeated header line is dropped
        self._after_thought = False  # a thought just closed, nothing after it yet: an orphan header line is dropped
        self._junk = False  # inside a run of reserved tokens (only whitespace since the last): the next one goes too

    # -- public ---------------------------------------------------------------------------------------

    def feed(self, chunk: str) -> list[StreamEvent]:
        """Parse the next piece of output; returns what became certain (deltas merged per kind)."""
        if self._closed:
            raise RuntimeError("StreamParser.feed() after close()/finish(); use a new parser per generation")
        if not chunk:
            return []
        if self._start and self._look:  # a bare "thought" header is held until a control token settles it
            window = (self._window if self._held else self._buf[self._look :]) + chunk
            settled, looked = settle_thought(window, 0, False)
            if settled is None:
                self._held.append(chunk)
                self._look += looked
                self._window = window[looked:]
                return []
        events: list[StreamEvent] = []
        self._buf += self._unheld() + chunk
        self._run(events, final=False)
        return events

    def _unheld(self) -> str:
        """The chunks kept aside while a bare header waited, joined (and no longer kept)."""
        held, self._held, self._window = "".join(self._held), [], ""
        return held

    def close(self) -> list[StreamEvent]:
        """End of output: release held-back text and any call cut off at the end. Idempotent."""
        if self._closed:
            return []
        self._closed = True
        events: list[StreamEvent] = []
        self._buf += self._unheld()
        self._run(events, final=True)
        if self._state == _HEADER:
            self._header_to_thought(events)
        if self._state == _CALL:
            self._end_call(events, None)
        elif self._state == _LOOSE:
            self._end_loose(events, None)
        elif self._state == _AFTER_LOOSE:
            self._end_loose(events, None, closed=True)
        self._flush(events)
        return events

    def finish(self) -> ParsedResponse:
        """The whole result (closes the parser if needed; the events of that close are only in the result)."""
        self.close()
        if self._result is None:
            self._result = ParsedResponse(
                thinking=self._thinking.text,
                content=self._content.text,
                tool_calls=list(self._calls),
                errors=list(self._errors),
                handed_over=self._handed_over,
            )
        return self._result

    # -- the machine ----------------------------------------------------------------------------------

    def _emit_text(self, events: list[StreamEvent], text: str) -> None:
        """Route text to thinking or content; pieces are joined into one delta per run (see _flush)."""
        if not text:
            return
        thought = self._state == _THOUGHT
        if text.strip(_WS):
            self._after_call = self._junk = False
            if thought:
                self._fresh_thought = False
            else:
                self._after_thought = False
                if self._boundary:
                    self._boundary = False
        if not thought:  # where a line starts and whether it is in a code block (_scan_line_start, legacy_end)
            self._prev_char = text[-1]
            if "`" in text:
                joined = self._fence_tail + text
                self._fences += joined.count("```") - self._fence_tail.count("```")
                self._fence_tail = joined[-2:]
            else:
                self._fence_tail = ""
        out = (self._thinking if thought else self._content).push(text)
        if not out:
            return
        if self._delta and self._delta_is_thought != thought:
            self._flush(events)
        self._delta_is_thought = thought
        self._delta.append(out)

    def _flush(self, events: list[StreamEvent]) -> None:
        """Turn the collected pieces into one delta event (joining once keeps a big chunk linear)."""
        if self._delta:
            text = "".join(self._delta)
            self._delta = []
            events.append(ThinkingDelta(text) if self._delta_is_thought else TextDelta(text))

    def _run(self, events: list[StreamEvent], final: bool) -> None:
        buf = self._buf
        i = 0
        n = len(buf)
        while i < n:
            state = self._state
            if state == _DONE:
                i = n
                break
            if state == _CALL:
                i, waiting = self._scan_call(events, buf, i, final)
                if waiting:
                    break  # the call goes on in the next chunk
                continue
            if state == _HEADER:
                i = self._scan_header(events, buf, i)
                if self._state == _HEADER:
                    break
                continue
            if state == _LOOSE:
                assert self._loose is not None
                i, ended = self._loose.scan(buf, i, final)
                if ended is None:
                    break  # the call goes on in the next chunk
                if ended and self._loose_line and ended not in _LINE_CALL_ENDS:
                    self._end_loose(events, None, closed=True, prose=True)  # "<turn|>" in an example: text
                    if ended != CHANNEL_END:
                        self._on_token(events, ended)
                elif ended:
                    self._end_loose(events, ended)
                    if ended != CHANNEL_END:  # the token leads where it leads in text; <channel|> is spent
                        self._on_token(events, ended)
                else:
                    self._state = _AFTER_LOOSE  # a call only if no prose follows on its line
                continue
            if state == _AFTER_LOOSE:
                assert self._loose is not None
                after = self._loose.after_line if self._loose_line else self._loose.after
                i, verdict = after(buf, i, final)
                if verdict is None:
                    break
                if verdict == "more":  # the next call of the same ```tool_code block
                    self._state = _LOOSE
                    continue
                self._end_loose(events, None, closed=True, prose=verdict == "prose", fence_closed=verdict == "fence")
                continue
            if state == _TEXT and self._start:
                i, waiting = self._scan_start(events, buf, i, final)
                if waiting:
                    break
                if self._state != _TEXT:
                    continue
            if (state == _THOUGHT and self._fresh_thought) or (state == _TEXT and self._after_thought):
                i, waiting = self._scan_header_line(events, buf, i, final)
                if waiting:
                    break
                continue  # a dropped header may be followed by another; else the flags are off now
            if state == _TEXT and self._boundary and self._tools is not None:
                i, waiting = self._scan_boundary(events, buf, i, final)
                if waiting:
                    break
                if self._state != _TEXT or self._boundary:
                    continue
            if state == _TEXT and self._line_start and self._line_calls:
                i, waiting = self._scan_line_start(events, buf, i, final)
                if waiting:
                    break
                if self._state != _TEXT:
                    continue
            # text or thought: plain text up to the next "<" (or the next line, where a call may begin)
            lt = buf.find("<", i)
            if state == _TEXT and self._line_calls:
                nl = buf.find("\n", i, lt if lt >= 0 else n)
                stop = nl if nl >= 0 else lt if lt >= 0 else n
                maybe = buf.find(_CALL_WORD, i, stop) >= 0 or (stop == n > i and buf[n - 1] in "cal" and not final)
                g = self._glued_call(buf, i, stop, final) if maybe else -1
                if g >= 0:  # "…file.call:write_file{": a stripped token between a sentence and a call
                    self._emit_text(events, buf[i:g])
                    self._line_start = self._tag_checked = True
                    i = g
                    continue
                if g < -1:  # "….ca" at the end of the chunk: perhaps "call:", the next chunk decides
                    self._emit_text(events, buf[i : -g - 2])
                    i = -g - 2
                    break
                if nl >= 0:
                    self._emit_text(events, buf[i : nl + 1])
                    self._line_start = self._line_start_pending = not self._boundary
                    self._quoted_line = False
                    i = nl + 1
                    continue
            if lt < 0:
                self._emit_text(events, buf[i:])
                i = n
                break
            if lt > i:
                self._emit_text(events, buf[i:lt])
            if self._closer is not None and state == _THOUGHT and buf.startswith("</", lt):
                if buf.startswith(self._closer, lt):  # "</think>": the thought ends as a <channel|> would end it
                    i = lt + len(self._closer)
                    self._on_token(events, CHANNEL_END)
                    continue
                if not final and self._closer.startswith(buf[lt:]):
                    i = lt  # hold back: the next chunk decides
                    break
            tok = token_at(buf, lt, CONTROL_TOKENS)
            if tok is None and buf[lt + 1 : lt + 2] in ("", "p", "u"):
                end = reserved_run(
                    buf, lt, final, in_run=self._junk, shown=self._state != _THOUGHT and self._fences % 2 == 1
                )
                if end:
                    self._junk = True
                if end is None:
                    i = lt  # hold back: the next chunk decides
                    break
                if end:
                    i = end
                    continue
            if tok is None and state == _TEXT and buf[lt + 1 : lt + 2] in ("", "e", "s"):
                old_end = legacy_end(
                    buf,
                    lt,
                    final,
                    in_code=self._fences % 2 == 1,
                    line_start=self._prev_char == "\n",
                    answered=self._content.started,
                )
                if old_end is None:
                    i = lt  # hold back: the next chunk decides
                    break
                if old_end < 0:
                    self._state = _DONE
                    i = n
                    break
                if old_end:
                    i = old_end
                    continue
            if tok is None:
                if (
                    state == _TEXT
                    and self._line_calls
                    and not (self._tag_checked or self._quoted_line)
                    and _may_open_tag(buf, lt, final)
                ):
                    self._line_start = self._tag_checked = True  # "… <start_function_call>call:f{…}": look once
                    i = lt
                    continue
                self._tag_checked = False
                if not final and n - lt < LONGEST_TOKEN and buf[lt:] in TOKEN_PREFIXES:
                    i = lt  # hold back: the next chunk decides
                    break
                self._emit_text(events, "<")
                i = lt + 1
                continue
            i = lt + len(tok)
            self._on_token(events, tok)
        self._buf = buf[i:]
        self._flush(events)

    def _on_token(self, events: list[StreamEvent], tok: str) -> None:
        self._start = False
        in_thought = self._state == _THOUGHT
        self._fresh_thought = False
        self._after_thought = tok == CHANNEL_END and in_thought
        if tok == TOOL_CALL_START:
            self._state = _CALL
            self._call = []
            self._closer = None
        elif tok == TOOL_RESPONSE_START:
            self._handed_over = True
            self._state = _DONE
        elif tok in END_OF_OUTPUT:
            self._state = _DONE
        elif tok == CHANNEL_START and (not in_thought or self._tools is not None):
            # A doubled <|channel> inside a thought repeats its header ("thought\n"): swallow that too.
            self._state = _HEADER
            self._header = ""
        elif tok == CHANNEL_END:
            self._state = _TEXT  # closes a thought; a stray one in text is dropped
            self._boundary = True
            self._closer = None
        elif tok in (TOOL_CALL_END, CHANNEL_START):
            pass  # stray close tag after a call, or a nested channel opener: not text
        else:
            self._emit_text(events, tok)  # other tokens are literal text here

    def _skip_blank(self, events: list[StreamEvent], buf: str, i: int) -> int:
        """Where the whitespace from ``buf[i]`` ends; it is passed on as text, which the trimmer holds (so a
        boundary or the start of output stays where it was)."""
        j = i
        while j < len(buf) and buf[j] in _WS:
            j += 1
        if j > i:
            self._emit_text(events, buf[i:j])
        return j

    def _scan_header_line(self, events: list[StreamEvent], buf: str, i: int, final: bool) -> tuple[int, bool]:
        """Drop a ``thought`` header line where the model repeats it: first in a thought, or first after one.

        Models repeat the header as the first line of the channel (vmlx-swift #6, a prompt-prefilled channel; a
        server that turns the opener into ``<think>`` and keeps the header), and write it after a channel that a
        thinking budget closed from outside (ollama #17626), where it would be the answer's first line. Only the
        word alone on its line counts ("thought experiments…" is text). Returns where to go on and whether to wait.
        """
        n = len(buf)
        j = self._skip_blank(events, buf, i)
        if j == n:
            return n, not final
        if buf.startswith(THOUGHT_WORD, j):
            k = skip(buf, j + len(THOUGHT_WORD), " \t\r", MAX_HEADER_PAD)
            if 0 <= k < n and buf[k] == "\n":
                self._after_thought = False  # one header after a thought; inside one, each repeat goes
                return k + 1, False
            if k == n:
                if not final:
                    return j, True
                self._after_thought = False
                return n, False  # the header was the last thing written
        elif not final and THOUGHT_WORD.startswith(buf[j:]):
            return j, True
        self._fresh_thought = self._after_thought = False
        return j, False

    def _scan_start(self, events: list[StreamEvent], buf: str, i: int, final: bool) -> tuple[int, bool]:
        """At the very start of output: a thought that lost its ``<|channel>`` opener, or ordinary text.

        ``<think>``/``<thought>`` (a server's or another family's spelling) open a thought at once, closed by
        their own closing tag or ``<channel|>``. A bare ``thought`` header line (the opener token dropped, the
        header kept) is held back, unread, until a control token settles it: ``<channel|>`` (or a call, or a
        late ``<|channel>``) makes it a thought; the end of the turn, the hand-over or the end of output make
        it ordinary text, read as any text is (a lone header is no proof: a server that strips the opener
        strips the closer too, and a call glued to the thinking must still be found). Returns where to go on
        and whether to wait for more.
        """
        n = len(buf)
        j = self._skip_blank(events, buf, i)
        if j == n and not final:
            return n, True
        rest = buf[j : j + 16]
        for opener, closer in THOUGHT_TAGS.items():
            if rest.startswith(opener):
                self._start = False
                self._closer = closer
                self._enter_thought()
                return j + len(opener), False
        if rest.startswith(THOUGHT_WORD):
            k = j + len(THOUGHT_WORD)
            while k < n and buf[k] in " \t\r":
                k += 1
            if k < n and buf[k] == "\n":
                settled, looked = settle_thought(buf, max(k + 1, j + self._look), final)
                if settled is None:
                    self._look = looked - j
                    return j, True
                self._start = False
                if settled:
                    self._enter_thought()
                    return k + 1, False
                return j, False
            if k == n and not final and k - j < 16:
                return j, True
        elif not final and any(w.startswith(rest) for w in (THOUGHT_WORD, *THOUGHT_TAGS)):
            return j, True
        self._start = False
        return j, False

    def _scan_header(self, events: list[StreamEvent], buf: str, i: int) -> int:
        """``<|channel>NAME\\n``: swallow the channel name; text that is no name is thinking."""
        n = len(buf)
        j = i
        while j < n:
            ch = buf[j]
            if ch == "\n":
                self._header += buf[i:j]
                if CHANNEL_NAME.match(self._header):
                    self._open_channel(self._header)
                    return j + 1
                self._header += "\n"
                self._header_to_thought(events)
                return j + 1
            if ch == "<" or len(self._header) + (j - i) >= _MAX_HEADER:
                self._header += buf[i:j]
                self._header_to_thought(events)
                return j
            j += 1
        self._header += buf[i:j]
        return j

    def _header_to_thought(self, events: list[StreamEvent]) -> None:
        header = self._header
        if CHANNEL_NAME.match(header):
            self._open_channel(header)
            return
        self._header = ""
        self._enter_thought()
        self._emit_text(events, header)

    def _open_channel(self, name: str) -> None:
        """A channel whose name was read: an answer channel (``final``) is visible text, any other one thinking.

        Models imitating harmony write ``analysis`` / ``commentary`` / ``final`` channels, and LTX2 primes
        ``<|channel>final`` (ComfyUI #15682): routing every name to thinking hid the answer. An unknown name stays
        thinking, so no channel the model meant as private reaches the answer.
        """
        self._header = ""
        if name.strip().lower() in ANSWER_CHANNELS:
            self._state = _TEXT
            self._boundary = True  # as after a closed thought: a call may start here
        else:
            self._enter_thought()

    def _enter_thought(self) -> None:
        self._state = _THOUGHT
        self._fresh_thought = True

    def _scan_call(self, events: list[StreamEvent], buf: str, i: int, final: bool) -> tuple[int, bool]:
        """Collect call text up to a terminator; returns where scanning stopped and whether it waits for more."""
        n = len(buf)
        start = i
        while True:
            lt = buf.find("<", i)
            if lt < 0:
                self._call.append(buf[start:])
                return n, True
            tok = token_at(buf, lt, CALL_TERMINATORS)
            if tok is not None:
                self._call.append(buf[start:lt])
                self._end_call(events, tok)
                if tok != CHANNEL_END:  # the token leads where it leads in text; <channel|> is spent
                    self._on_token(events, tok)
                return lt + len(tok), False
            if not final and n - lt < LONGEST_TOKEN and buf[lt:] in TOKEN_PREFIXES:
                self._call.append(buf[start:lt])
                return lt, True
            i = lt + 1

    def _add_call(self, events: list[StreamEvent], call: ToolCall) -> None:
        if self._tools is not None and call.name in self._tools.schemas:
            arguments, changed = coerce_arguments(call.arguments, self._tools.schemas[call.name])
            if changed:
                call = ToolCall(call.name, arguments, join_repair(call.repair, "value typed by the schema"))
        self._calls.append(call)
        self._flush(events)
        events.append(ToolCallEvent(call))
        self._boundary = True
        self._after_call = True

    def _add_error(self, events: list[StreamEvent], message: str) -> None:
        self._errors.append(message)
        self._flush(events)
        events.append(ParseErrorEvent(message))

    def _scan_boundary(self, events: list[StreamEvent], buf: str, i: int, final: bool) -> tuple[int, bool]:
        """At a call boundary: a loose call (no <|tool_call>), a bare ``thought`` header, or ordinary text.

        Text that might still become a call head is held back (at most ``_HEAD_WINDOW`` characters), so a
        recovered call never shows as text first. Returns where to go on and whether to wait for more.
        """
        assert self._tools is not None
        n = len(buf)
        j = self._skip_blank(events, buf, i)
        if j == n:
            return n, False
        rest = buf[j : j + _HEAD_WINDOW]
        # "thought\n<channel|>": the model wrote its empty thought channel without the <|channel> token.
        if rest.startswith(THOUGHT_WORD):
            after = rest[len(THOUGHT_WORD) :].lstrip(_WS)
            if after.startswith(CHANNEL_END):
                return j + rest.index(CHANNEL_END) + len(CHANNEL_END), False
            if not final and CHANNEL_END.startswith(after) and len(rest) < _HEAD_WINDOW:
                return j, True
        elif not final and THOUGHT_WORD.startswith(rest):
            return j, True
        if self._after_call and rest[:1] in ("<", "["):  # "</tool_call>" after a call: another format's closer
            closer = next((tag for tag in CLOSING_TAGS if rest.startswith(tag)), None)
            if closer is not None:
                return j + len(closer), False
            if rest.startswith(FUNCTION_GEMMA_HAND_OVER):  # FunctionGemma's hand-over: as <|tool_response>
                self._handed_over, self._state = True, _DONE
                return n, False
            if not final and any(tag.startswith(rest) for tag in (*CLOSING_TAGS, FUNCTION_GEMMA_HAND_OVER)):
                return j, True
        skip = True
        if self._fence_open:  # the next line of a ```tool_code block: another call, or its closing fence
            if rest.startswith(FENCE):
                self._fence_open = False
                return j + len(FENCE), False
            if not final and FENCE.startswith(rest):
                return j, True
            head = match_loose_head(TOOL_CODE_FENCE + rest, self._tools)
            skip = False  # the fence is not in this text
            if not isinstance(head, LooseHead) and head is not True:
                self._fence_open = False
                head = match_loose_head(rest, self._tools)
                skip = True
        else:
            head = match_loose_head(rest, self._tools)
        if head is True:
            if not final and len(rest) < _HEAD_WINDOW and n - j < _HEAD_WINDOW:
                return j, True
            head = None
        if isinstance(head, LooseHead):
            self._state = _LOOSE
            self._loose = LooseCall(head.opener, blocks=head.blocks)
            return j + (len(head.opener) if skip else 0), False
        self._fence_open = False
        self._boundary = False
        self._quoted_line = rest.startswith(">")
        return j, False

    def _glued_call(self, buf: str, i: int, stop: int, final: bool) -> int:
        """Where ``call:`` sits glued to the end of a sentence in ``buf[i:stop]`` (``….call:``): a stripped token.

        Servers that strip special tokens leave ``<channel|>``'s or ``<|tool_call>``'s place empty, so the call follows
        the last sentence with no space; in prose a call is written after a space. Returns the index, ``-1`` if
        none, or ``-2 - k`` when the text from ``k`` on may still become one (the end of an unfinished chunk).
        """
        pos = i
        if self._tag_checked and buf.startswith(_CALL_WORD, i):
            self._tag_checked = False
            pos = i + 1  # looked at already: it was no call
        while (g := buf.find(_CALL_WORD, pos, stop)) >= 0:
            if (buf[g - 1] if g > i else self._prev_char) in _SENTENCE_END:
                return g
            pos = g + 1
        if not final and stop == len(buf) and stop > i and buf[stop - 1] in "cal":  # a proper prefix of "call:"
            for k in range(max(pos, stop - len(_CALL_WORD) + 1), stop):
                if _CALL_WORD.startswith(buf[k:stop]) and (buf[k - 1] if k > i else self._prev_char) in _SENTENCE_END:
                    return -2 - k
        return -1

    def _scan_line_start(self, events: list[StreamEvent], buf: str, i: int, final: bool) -> tuple[int, bool]:
        """At the start of a line after prose (or at a tag opener after text): a call with an explicit marker, or text.

        Models drop the token and write ``call:name{…}`` (or a ```` ```tool_code ```` block) on a line of its own
        after a sentence, or a tag opener (``<start_function_call>``, ``<tool_call>``, …) right after one. Only an
        explicit marker counts here (a bare ``name{`` does not), not inside a Markdown code block, and
        :meth:`LooseCall.after_line` then requires the hand-over (or the end of the output) to follow: an example
        shown to the reader goes on with prose or ends the turn. Returns where to go on and whether to wait.
        """
        assert self._tools is not None
        n = len(buf)
        j = i
        while j < n and buf[j] in " \t":
            j += 1
        self._emit_text(events, buf[i:j])  # indentation: whitespace, held by the trimmer
        if j == n:
            return j, not final
        if self._line_start_pending:
            self._line_start_pending = False
            self._quoted_line = buf[j] == ">"
        if buf[j] not in "c<`[" or self._fences % 2:  # "call:", a tag opener, a fence: the only markers here
            self._line_start = False
            return j, False
        rest = buf[j : j + _HEAD_WINDOW]
        head = match_loose_head(rest, self._tools)
        if head is True and not final and len(rest) < _HEAD_WINDOW:
            return j, True
        self._line_start = False
        if isinstance(head, LooseHead) and (head.opener or rest.startswith("call")):
            self._state = _LOOSE
            self._loose = LooseCall(head.opener, self._tools, blocks=head.blocks)
            self._loose_line = True
            self._tag_checked = False
            return j + len(head.opener), False
        return j, False

    def _end_loose(
        self,
        events: list[StreamEvent],
        terminator: str | None,
        *,
        closed: bool = False,
        prose: bool = False,
        fence_closed: bool = False,
    ) -> None:
        """A loose call becomes a ToolCall if it reads as one; otherwise it was text all along."""
        assert self._tools is not None and self._loose is not None
        text, opener, trail = self._loose.text, self._loose.opener, "".join(self._loose.trail)
        line, self._loose_line = self._loose_line, False
        self._loose = None
        self._state = _TEXT
        body = "call:" + text if opener == "<tool_call:" else text
        try:
            if prose:
                raise ValueError("prose follows")
            calls = read_loose(opener, text, self._tools, complete=closed or terminator is not None)
        except ValueError:
            self._boundary = self._fence_open = False
            self._line_calls = self._line_calls and not line  # an example line: no later line is a call either
            self._emit_text(events, opener + text + trail)
            cut = loose_call_name(body, self._tools) if terminator is None and not closed else None
            if cut is not None:  # a call to a declared tool cut off by the end of the output: say so, never run it
                self._add_error(
                    events, f"the tool call {cut!r} was cut off before its arguments ended; the output ended first"
                )
            return
        for call in calls:
            self._add_call(events, call)
        self._fence_open = opener in (TOOL_CODE_FENCE, CONTINUE_FENCE) and not fence_closed

    def _end_call(self, events: list[StreamEvent], terminator: str | None) -> None:
        """Read the buffered call text once; one ToolCall (or several in one block), or one specific error."""
        text = "".join(self._call)
        self._call = []
        self._state = _TEXT
        self._boundary = True
        outcome = read_call(text, terminator, self._tools)
        if isinstance(outcome, ToolCall):
            self._add_call(events, outcome)
            return
        block = read_block(text, terminator, self._tools) if self._tools is not None else None
        if block is None:
            self._add_error(events, outcome)
            return
        for read in block[0]:
            if isinstance(read, ToolCall):
                self._add_call(events, read)
            else:
                self._add_error(events, read)
        self._emit_text(events, block[1])


def _may_open_tag(buf: str, i: int, final: bool) -> bool:
    """Whether the ``<`` at ``buf[i]`` starts (or, more text to come, may start) a drifted call tag opener."""
    if buf.startswith(TAG_OPENERS, i):
        return True
    rest = buf[i : i + _LONGEST_TAG]
    return not final and len(rest) < _LONGEST_TAG and any(tag.startswith(rest) for tag in TAG_OPENERS)


def parse_response(text: str, tools: Tools | None = None) -> ParsedResponse:
    """Parse one complete generation (the same machine as streaming, fed in one piece).

    ``tools`` (names or OpenAI tool dicts) turns on name-aware recovery of drifted calls (see StreamParser).
    """
    parser = StreamParser(tools)
    parser.feed(text)
    return parser.finish()
