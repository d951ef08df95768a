"""What an agent run reports while it happens: one closed union of frozen event dataclasses.

The loop never prints. The CLI, the TUI, logs and tests all consume these events from ``Agent.run_stream``
and tell them apart by type (``match event: case TextDelta(): ...``), never by class name. ``TextDelta`` and
``ThinkingDelta`` are the protocol parser's own classes (:mod:`agentkit.gemma4`), re-emitted with the step
number, so agentkit has one class for each. :class:`RunResult` lives here, next to the event that carries it,
so this module needs nothing from the loop.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from agentkit.backends.base import Timings, Usage
from agentkit.gemma4.parse import TextDelta, ThinkingDelta
from agentkit.messages import AudioPart, Conversation, ImagePart, VideoPart, from_dicts, to_dicts

__all__ = [
    "EVENT_NAMES",
    "STOP_REASONS",
    "AgentEvent",
    "Notice",
    "NoticeLevel",
    "PartialOutput",
    "RunFinished",
    "RunResult",
    "RunTimings",
    "StepFinished",
    "StopReason",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallCounts",
    "ToolCallFinished",
    "ToolCallStarted",
    "describe_stop",
    "to_jsonable",
]


NoticeLevel = Literal["info", "warning", "error"]
# Why a run ended: an answer; a guard (steps, a repeated call, the output budget); the token budget of a
# generation call; or the user.
StopReason = Literal["completed", "max_steps", "repeated_call", "max_tokens", "max_output", "cancelled"]


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """A tool call passed validation and approval and is about to run."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    step: int
    repair: str | None = None  # how the call was recovered when the model wrote it out of format


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
    repair: str | None = None  # how the call was recovered when the model wrote it out of format
    approval_wait_s: float = 0.0  # time spent waiting for a person's decision; not part of duration_s

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user should know that is not model text: a parse error fed back, a guard hit, a denial."""

    message: str
    level: NoticeLevel = "warning"
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
class RunTimings:
    total_s: float = 0.0
    generation_s: float = 0.0
    tools_s: float = 0.0  # running tools, approval waits excluded
    ttft_s: float = 0.0  # first token of the first step
    approval_s: float = 0.0  # wall time while at least one call waited for a person's decision

    @property
    def framework_s(self) -> float:
        """Time not spent generating, running tools or waiting for a person: the loop's own overhead."""
        return max(0.0, self.total_s - self.generation_s - self.tools_s - self.approval_s)


@dataclass(frozen=True, slots=True)
class ToolCallCounts:
    """How the model's tool calls in one run parsed: as written, recovered from a drifted form, or lost.

    ``repaired`` calls were written out of format (plain quotes, ``call:name(…)``, no ``<|tool_call>`` …) and
    recovered by :class:`agentkit.gemma4.StreamParser`; ``malformed`` ones could not be read and went back to
    the model as an error. A high ``repaired`` or ``malformed`` count says the model or the server drifts.
    """

    clean: int = 0
    repaired: int = 0
    malformed: int = 0

    def __add__(self, other: ToolCallCounts) -> ToolCallCounts:
        return ToolCallCounts(
            self.clean + other.clean, self.repaired + other.repaired, self.malformed + other.malformed
        )


@dataclass(frozen=True, repr=False, init=False)
class RunResult:
    """The outcome of one user request.

    ``conversation`` is the whole conversation after the run, typed (:mod:`agentkit.messages`), without
    thinking; ``messages`` is the same as OpenAI-style dicts, made on first read (a run that nobody asks for
    them does not pay for converting a long history).
    """

    output: Any  # the final visible answer (str), or the validated output_type instance (None if the run failed)
    conversation: Conversation
    thinking: str  # this turn's thinking, for display and logs only
    usage: Usage
    timings: RunTimings
    steps: int
    stop_reason: StopReason
    tool_calls: list[ToolCallFinished]
    session_id: str | None
    call_counts: ToolCallCounts

    def __init__(
        self,
        output: Any,
        messages: Iterable[Any] | None = None,
        thinking: str = "",
        usage: Usage | None = None,
        timings: RunTimings | None = None,
        steps: int = 0,
        stop_reason: StopReason = "completed",
        tool_calls: list[ToolCallFinished] | None = None,
        session_id: str | None = None,
        call_counts: ToolCallCounts | None = None,
        *,
        conversation: Conversation | None = None,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "output", output)
        setattr_(self, "conversation", conversation if conversation is not None else from_dicts(messages or ()))
        setattr_(self, "thinking", thinking)
        setattr_(self, "usage", usage if usage is not None else Usage())
        setattr_(self, "timings", timings if timings is not None else RunTimings())
        setattr_(self, "steps", steps)
        setattr_(self, "stop_reason", stop_reason)
        setattr_(self, "tool_calls", tool_calls if tool_calls is not None else [])
        setattr_(self, "session_id", session_id)
        setattr_(self, "call_counts", call_counts if call_counts is not None else ToolCallCounts())

    @functools.cached_property
    def messages(self) -> list[dict[str, Any]]:
        """The whole conversation, OpenAI-style, without thinking."""
        return to_dicts(self.conversation)

    @property
    def ok(self) -> bool:
        return self.stop_reason == "completed"

    def __repr__(self) -> str:
        # A summary, not the whole conversation: asyncio formats finished tasks' results with repr() on every
        # sync run(), and a repr that grew with the history made each run O(conversation).
        output = repr(self.output)
        output = output if len(output) <= 62 else output[:59] + "..."
        return (
            f"RunResult(output={output}, stop_reason={self.stop_reason!r}, steps={self.steps}, "
            f"tool_calls={len(self.tool_calls)}, messages={len(self.conversation)}, session_id={self.session_id!r})"
        )


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The last event of a run."""

    result: RunResult


AgentEvent = (
    ThinkingDelta | TextDelta | ToolCallStarted | ToolCallFinished | Notice | StepFinished | PartialOutput | RunFinished
)

# The name of each event outside Python: the "type" field of ``agentkit run --json`` lines. Written out, not
# derived from class names, so renaming or moving a class can never change what scripts read.
EVENT_NAMES: Mapping[type, str] = MappingProxyType(
    {
        ThinkingDelta: "thinking_delta",
        TextDelta: "text_delta",
        ToolCallStarted: "tool_call_started",
        ToolCallFinished: "tool_call_finished",
        Notice: "notice",
        StepFinished: "step_finished",
        PartialOutput: "partial_output",
        RunFinished: "run_finished",
    }
)


# What `--json` output and batch result records are made of: the CLI and the batch runner share these words.
STOP_REASONS: Mapping[str, str] = {
    "completed": "finished",
    "max_steps": "stopped at the step limit before a final answer (raise it with --max-steps)",
    "repeated_call": "stopped because the model kept repeating the same tool call",
    "max_tokens": "the answer was cut off at the token limit of one reply (raise it with --max-tokens)",
    "max_output": "stopped because the run used up its output token budget",
    "cancelled": "cancelled before it finished",
}


def describe_stop(stop_reason: str) -> str:
    """Why a run ended, in words (``RunResult.stop_reason`` is a code for programs)."""
    return STOP_REASONS.get(stop_reason, f"stopped ({stop_reason})")


def to_jsonable(value: Any) -> Any:
    """Events and results as plain JSON values (dataclasses, pydantic models, enums, paths, dates)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, ImagePart | AudioPart | VideoPart):  # a tool's picture: its size, not its bytes
        size = {"bytes": len(value.data)} if value.data is not None else {}
        return {"type": value.type, **size, **{k: v for k in ("url", "path") if (v := getattr(value, k))}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump: Callable[..., Any] | None = getattr(value, "model_dump", None)
    if callable(dump):
        return to_jsonable(dump(mode="json"))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)
