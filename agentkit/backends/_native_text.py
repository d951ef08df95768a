"""Native Gemma 4 text rebuilt from what a chat API streams: one writer for every engine that parses for us.

Engines with a chat API (Ollama's ``/api/chat``, vLLM's ``/v1/chat/completions``) run the model's Gemma 4 parser
themselves and stream its pieces: thinking, visible content, tool calls, a finish reason. The control tokens are
gone by then. The agent loop parses one format whatever the engine, so :class:`NativeTextWriter` writes the
pieces back the way the model wrote them: thinking in a ``<|channel>thought`` block, calls with
:func:`~agentkit.gemma4.values.format_tool_call`, then the hand-over to the runtime (``<|tool_response>``) or the
end of the turn (``<turn|>``), and names that stop marker.

Calls arrive either whole (Ollama: a name and an argument object per call) and are written at once, or as
fragments of a name and of JSON argument text per call index (OpenAI-style streaming) and are written when the
answer finishes, once their arguments are complete. A call the format cannot carry (a bad name, arguments that
are not a JSON object) is written as the server gave it, never dropped or invented: the loop's parser then
reports it to the model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentkit.gemma4.tokens import (
    CHANNEL_END,
    CHANNEL_START,
    TOOL_CALL_END,
    TOOL_CALL_START,
    TOOL_RESPONSE_START,
    TURN_END,
)
from agentkit.gemma4.values import format_tool_call, format_value

__all__ = ["NativeTextWriter"]


@dataclass(slots=True)
class _Fragments:
    name: str = ""
    arguments: str = ""


class NativeTextWriter:
    """Writes one answer's streamed pieces as native Gemma 4 text; each method returns the text to emit now."""

    __slots__ = ("_calls", "_in_thought", "_pending")

    def __init__(self) -> None:
        self._in_thought = False
        self._calls = 0
        self._pending: dict[int, _Fragments] = {}

    @property
    def calls(self) -> int:
        """How many tool calls the answer has (written or still being received)."""
        return self._calls + len(self._pending)

    def thinking(self, text: str) -> str:
        if not text:
            return ""
        if self._in_thought:
            return text
        self._in_thought = True
        return f"{CHANNEL_START}thought\n{text}"

    def content(self, text: str) -> str:
        return self._close_thought() + text if text else ""

    def tool_call(self, name: str, arguments: Mapping[str, Any] | str | None) -> str:
        """A whole call; ``arguments`` an object, or its JSON text."""
        self._calls += 1
        return self._close_thought() + _call_text(name, arguments)

    def tool_call_delta(self, index: int | None, name: str = "", arguments: str = "") -> str:
        """A fragment of call ``index`` (None: a call of its own): the next piece of its name and JSON arguments."""
        pending = self._pending.setdefault(len(self._pending) if index is None else index, _Fragments())
        pending.name += name
        pending.arguments += arguments
        return self._close_thought()

    def finish(self, *, out_of_tokens: bool) -> tuple[str, str | None]:
        """The closing text and the stop marker; ``out_of_tokens`` when the token budget ended the answer.

        A budget that ran out has no stop marker (the Backend contract's ``None``), even after a call: the
        runtime must not answer a call the model may not have finished.
        """
        out = [self._close_thought()]
        out.extend(self._flush())
        if out_of_tokens:
            return "".join(out), None
        marker = TOOL_RESPONSE_START if self._calls else TURN_END
        out.append(marker)
        return "".join(out), marker

    def _flush(self) -> list[str]:
        pending, self._pending = self._pending, {}
        self._calls += len(pending)
        return [_call_text(pending[i].name, pending[i].arguments) for i in sorted(pending)]

    def _close_thought(self) -> str:
        if not self._in_thought:
            return ""
        self._in_thought = False
        return CHANNEL_END


def _call_text(name: str, arguments: Mapping[str, Any] | str | None) -> str:
    parsed: Any = arguments or {}
    if isinstance(parsed, str):
        try:
            parsed = json.loads(parsed) if parsed.strip() else {}
        except ValueError:
            parsed = None
    if isinstance(parsed, Mapping):
        try:
            return format_tool_call(name, parsed)
        except ValueError:  # a name the format cannot carry
            return f"{TOOL_CALL_START}call:{name}{format_value(dict(parsed))}{TOOL_CALL_END}"
    return f"{TOOL_CALL_START}call:{name}{arguments}{TOOL_CALL_END}"
