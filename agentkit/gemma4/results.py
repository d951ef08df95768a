"""What a parse of Gemma 4 output yields: the whole result, and the events a stream of it gives.

Kept apart from the machine that makes them (:mod:`agentkit.gemma4.parse`) because the rest of agentkit — the loop,
the backends, the CLI's event names — speaks in these types and never needs the machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ContentDelta",
    "ParseErrorEvent",
    "ParsedResponse",
    "StreamEvent",
    "TextDelta",
    "ThinkingDelta",
    "ToolCall",
    "ToolCallEvent",
]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the model wrote; ``repair`` says how it was recovered (``None``: written in format)."""

    name: str
    arguments: dict[str, Any]
    repair: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    """Everything one generation said; ``errors`` describe broken calls so the loop can tell the model."""

    thinking: str
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    handed_over: bool = False  # ended with <|tool_response>: the model waits for results


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    """More of the model's thinking (never half a control token).

    The one thinking-delta class of agentkit: the agent loop re-emits it with ``step``, the number of the
    generation call within a run that wrote it; the parser sees a single generation and leaves it 0.
    """

    text: str
    step: int = 0


@dataclass(frozen=True, slots=True)
class TextDelta:
    """More of the visible answer (never half a control token); ``step`` as in :class:`ThinkingDelta`."""

    text: str
    step: int = 0


ContentDelta = TextDelta  # the parser's first name for it, kept so existing imports go on working


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """A call is complete and parsed."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class ParseErrorEvent:
    """A call was malformed; the message says what was wrong."""

    message: str


StreamEvent = ThinkingDelta | TextDelta | ToolCallEvent | ParseErrorEvent
