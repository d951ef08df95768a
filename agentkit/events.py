"""What an agent run reports while it happens: one closed union of frozen event dataclasses.

The loop never prints. The CLI, the TUI, logs and tests all consume these events from ``Agent.run_stream``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentkit.backends.base import Timings, Usage

if TYPE_CHECKING:
    from agentkit.agent import RunResult

__all__ = [
    "AgentEvent",
    "Notice",
    "PartialOutput",
    "RunFinished",
    "StepFinished",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallFinished",
    "ToolCallStarted",
]


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    """A piece of the model's thinking (shown dimmed; never sent back in later turns)."""

    text: str
    step: int


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the visible answer."""

    text: str
    step: int


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """A tool call passed validation and approval and is about to run."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    step: int


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A tool call ended; ``error`` is set (and ``result`` is None) when it failed, was denied or timed out."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    result: Any
    error: str | None
    duration_s: float
    step: int

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user should know that is not model text: a parse error fed back, a guard hit, a denial."""

    message: str
    level: str = "warning"  # "info" | "warning" | "error"
    step: int = 0


@dataclass(frozen=True, slots=True)
class StepFinished:
    """One generation call (and the tools it asked for) is done."""

    step: int
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    tool_calls: int = 0


@dataclass(frozen=True, slots=True)
class PartialOutput:
    """The structured answer so far (``output_type``), while the model writes it: parsed, not yet validated.

    ``value`` holds the fields written so far (the last string may still grow); the validated answer is
    ``RunFinished.result.output``.
    """

    value: Any
    step: int


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The last event of a run."""

    result: RunResult


AgentEvent = (
    ThinkingDelta | TextDelta | ToolCallStarted | ToolCallFinished | Notice | StepFinished | PartialOutput | RunFinished
)
