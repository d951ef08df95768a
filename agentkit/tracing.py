"""OpenTelemetry traces of agent runs, named by the GenAI semantic conventions; off unless configured.

``Agent(..., tracer_provider=provider)`` traces that agent; :func:`instrument` traces every agent (with the
global provider when none is given). A run becomes::

    invoke_agent agentkit                 gen_ai.operation.name=invoke_agent, usage, finish reasons
    └── step N                            one generation and the tools it asked for
        ├── chat MODEL                    gen_ai.operation.name=chat: tokens, time to first chunk, finish reason
        └── execute_tool NAME             gen_ai.tool.name / gen_ai.tool.call.id, argument and result sizes, error

Spans are built from the run's own events (:mod:`agentkit.events`), so the loop carries no tracing code: a
traced run is the same event stream passed through :meth:`Tracer.trace_run`. Spans are parented
explicitly rather than through the current context, because the loop is an async generator whose context
does not survive across ``yield``s (a context token attached in one step cannot be detached in another),
and tool calls run in their own tasks. Times come from the events: a model request ends at its step's first
tool call (or the step's end), and is given its attributes when the step reports its usage.

When tracing is off the agent does one ``None`` check per run; the ``opentelemetry`` packages are imported
only when a tracer is configured (``pip install -e '.[otel]'`` in the agentkit checkout). Tool arguments and
results can hold secrets, so only their sizes are recorded unless ``record_content=True`` (the conventions mark those
attributes opt-in for the same reason).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentkit.errors import UserError
from agentkit.events import (
    AgentEvent,
    Notice,
    RunFinished,
    StepFinished,
    TextDelta,
    ThinkingDelta,
    ToolCallFinished,
    ToolCallStarted,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

    from agentkit.agent import Agent

__all__ = ["Tracer", "default_tracer", "instrument", "uninstrument"]

# Attribute names from the GenAI semantic conventions (development status; written out so that the
# incubating semconv package is not a dependency).
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_TOP_K = "gen_ai.request.top_k"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_DESCRIPTION = "gen_ai.tool.description"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
ERROR_TYPE = "error.type"

# How a run's stop_reason reads as a finish reason (the conventions use the engines' words where they exist).
_FINISH = {"completed": "stop", "max_tokens": "length"}

_default: Tracer | None = None


def instrument(tracer_provider: TracerProvider | None = None, *, record_content: bool = False) -> Tracer:
    """Trace every agent's runs (those without their own ``tracer_provider``) from now on.

    Without a provider, OpenTelemetry's global one is used (set with ``trace.set_tracer_provider``).
    """
    global _default
    _default = Tracer(tracer_provider, record_content=record_content)
    return _default


def uninstrument() -> None:
    """Stop tracing agents that :func:`instrument` traced."""
    global _default
    _default = None


def default_tracer() -> Tracer | None:
    """The tracer :func:`instrument` set, if any."""
    return _default


class Tracer:
    """Turns a run's events into spans on an OpenTelemetry tracer provider."""

    def __init__(self, tracer_provider: TracerProvider | None = None, *, record_content: bool = False) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:
            raise UserError("tracing needs OpenTelemetry: pip install -e '.[otel]' in the agentkit checkout") from exc
        from agentkit import __version__

        if tracer_provider is not None and not callable(getattr(tracer_provider, "get_tracer", None)):
            raise UserError(
                f"tracer_provider= takes an OpenTelemetry TracerProvider, got {type(tracer_provider).__name__}"
            )
        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer("agentkit", __version__)
        self.record_content = record_content

    async def trace_run(self, agent: Agent, events: AsyncGenerator[AgentEvent, None]) -> AsyncIterator[AgentEvent]:
        """``events`` unchanged, with the spans of the run they describe recorded on the side."""
        run = _RunTrace(self, agent)
        async with contextlib.aclosing(events):
            try:
                async for event in events:
                    run.observe(event)
                    yield event
            except BaseException as exc:
                run.fail(exc)
                raise
            finally:
                run.close()


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    try:
        return len(json.dumps(value, default=str, ensure_ascii=False).encode())
    except (TypeError, ValueError):
        return len(str(value).encode())


def _content(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


@dataclass
class _StepTrace:
    span: Span
    chat: Span | None
    generation_end_ns: int | None = None
    tools: dict[str, Span] = field(default_factory=dict)


class _RunTrace:
    """The spans of one run while it happens."""

    def __init__(self, tracer: Tracer, agent: Agent) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = tracer._tracer
        self._record = tracer.record_content
        self._agent = agent
        backend = agent.backend
        self._common = {PROVIDER: backend.name, REQUEST_MODEL: backend.model}
        attributes = {
            OPERATION: "invoke_agent",
            AGENT_NAME: "agentkit",
            CONVERSATION_ID: agent.session_id,
            **self._common,
        }
        self._run = self._tracer.start_span(
            "invoke_agent agentkit", kind=trace.SpanKind.INTERNAL, attributes=attributes
        )
        self._step_start_ns = time.time_ns()
        self._steps: dict[int, _StepTrace] = {}
        self._last_chat: tuple[Span, int] | None = None  # a final answer's chat span waits for the run's finish reason

    def _step(self, number: int) -> _StepTrace:
        step = self._steps.get(number)
        if step is None:
            self._end_pending_chat("stop")  # the previous answer was not final (rejected, malformed call)
            trace = self._trace
            parent = trace.set_span_in_context(self._run)
            span = self._tracer.start_span(
                f"step {number}", context=parent, start_time=self._step_start_ns, attributes={"agentkit.step": number}
            )
            sampling = self._agent.sampling
            chat = self._tracer.start_span(
                f"chat {self._agent.backend.model}",
                context=trace.set_span_in_context(span),
                kind=trace.SpanKind.CLIENT,
                start_time=self._step_start_ns,
                attributes={
                    OPERATION: "chat",
                    **self._common,
                    REQUEST_TEMPERATURE: sampling.temperature,
                    REQUEST_TOP_P: sampling.top_p,
                    REQUEST_TOP_K: sampling.top_k,
                    REQUEST_MAX_TOKENS: sampling.max_tokens,
                },
            )
            step = self._steps[number] = _StepTrace(span, chat)
        return step

    def observe(self, event: AgentEvent) -> None:
        if isinstance(event, ThinkingDelta | TextDelta):
            self._step(event.step)
        elif isinstance(event, ToolCallStarted):
            step = self._step(event.step)
            if step.generation_end_ns is None:
                step.generation_end_ns = time.time_ns()
            attributes: dict[str, Any] = {
                OPERATION: "execute_tool",
                TOOL_NAME: event.name,
                TOOL_CALL_ID: event.call_id,
                TOOL_TYPE: "function",
                "agentkit.tool.arguments_size": _size(event.arguments),
            }
            tool = self._agent.tools.get(event.name)
            if tool is not None and tool.description:
                attributes[TOOL_DESCRIPTION] = tool.description
            if self._record:
                attributes[TOOL_ARGUMENTS] = _content(event.arguments)
            step.tools[event.call_id] = self._tracer.start_span(
                f"execute_tool {event.name}",
                context=self._trace.set_span_in_context(step.span),
                kind=self._trace.SpanKind.INTERNAL,
                attributes=attributes,
            )
        elif isinstance(event, ToolCallFinished):
            span = self._step(event.step).tools.pop(event.call_id, None)
            if span is None:
                return
            if event.error is not None:
                span.set_attribute(ERROR_TYPE, "ToolError")
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, event.error))
            else:
                span.set_attribute("agentkit.tool.result_size", _size(event.result))
                if self._record:
                    span.set_attribute(TOOL_RESULT, _content(event.result))
            span.end()
        elif isinstance(event, StepFinished):
            self._finish_step(event)
        elif isinstance(event, Notice):
            if event.step in self._steps:
                self._steps[event.step].span.add_event("notice", {"message": event.message, "level": event.level})
        elif isinstance(event, RunFinished):
            result = event.result
            self._end_pending_chat(_FINISH.get(result.stop_reason, result.stop_reason))
            self._run.set_attributes(
                {
                    INPUT_TOKENS: result.usage.prompt_tokens,
                    OUTPUT_TOKENS: result.usage.completion_tokens,
                    FINISH_REASONS: [_FINISH.get(result.stop_reason, result.stop_reason)],
                    CONVERSATION_ID: result.session_id or self._agent.session_id,
                    "agentkit.steps": result.steps,
                    "agentkit.stop_reason": result.stop_reason,
                }
            )
            if not result.ok:
                self._run.set_attribute(ERROR_TYPE, result.stop_reason)

    def _finish_step(self, event: StepFinished) -> None:
        step = self._step(event.step)
        now = time.time_ns()
        chat = step.chat
        if chat is not None:
            usage, timings = event.usage, event.timings
            chat.set_attributes(
                {
                    RESPONSE_MODEL: self._agent.backend.model,
                    INPUT_TOKENS: usage.prompt_tokens,
                    OUTPUT_TOKENS: usage.completion_tokens,
                    TIME_TO_FIRST_CHUNK: timings.ttft_s,
                    "agentkit.tokens_per_s": timings.tokens_per_s,
                }
            )
            if usage.cached_tokens:
                chat.set_attribute(CACHE_READ_TOKENS, usage.cached_tokens)
            end = step.generation_end_ns or now
            if event.tool_calls:
                chat.set_attribute(FINISH_REASONS, ["tool_calls"])
                chat.end(end_time=end)
            else:
                self._last_chat = (chat, end)
            step.chat = None
        for span in step.tools.values():  # not reached normally: every started call reports its end
            span.end(end_time=now)
        step.tools.clear()
        step.span.set_attribute("agentkit.tool_calls", event.tool_calls)
        step.span.end(end_time=now)
        self._step_start_ns = now

    def _end_pending_chat(self, reason: str) -> None:
        if self._last_chat is not None:
            chat, end = self._last_chat
            chat.set_attribute(FINISH_REASONS, [reason])
            chat.end(end_time=end)
            self._last_chat = None

    def fail(self, exc: BaseException) -> None:
        """The run ended in an exception (backend down, output invalid) or was cancelled."""
        trace = self._trace
        kind = "cancelled" if not isinstance(exc, Exception) else type(exc).__name__
        self._end_pending_chat(kind)
        for step in self._steps.values():
            for span in [step.chat, *step.tools.values(), step.span]:
                if span is not None and span.is_recording():
                    span.set_attribute(ERROR_TYPE, kind)
                    span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc) or kind))
        self._run.set_attribute(ERROR_TYPE, kind)
        self._run.set_status(trace.Status(trace.StatusCode.ERROR, str(exc) or kind))
        if isinstance(exc, Exception):
            self._run.record_exception(exc)

    def close(self) -> None:
        now = time.time_ns()
        self._end_pending_chat("stop")
        for step in self._steps.values():
            for span in [step.chat, *step.tools.values(), step.span]:
                if span is not None and span.is_recording():
                    span.end(end_time=now)
        self._run.end(end_time=now)
