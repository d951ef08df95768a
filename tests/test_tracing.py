"""Tracing: runs recorded as OpenTelemetry spans (SDK in-memory exporter) with the GenAI convention names."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from agentkit import Agent, tool
from agentkit.errors import BackendError, OutputValidationError, UserError
from agentkit.events import TextDelta
from agentkit.gemma4 import format_tool_call
from agentkit.testing import ScriptedBackend
from agentkit.tracing import instrument, uninstrument

CALL = format_tool_call("get_weather", {"city": "Paris"}) + "<|tool_response>"


@tool
def get_weather(city: str) -> str:
    """Get the weather.

    Args:
        city: The city.
    """
    return f"18 degrees in {city}"


@tool
def explode(x: int) -> str:
    """Always fails."""
    raise RuntimeError("boom")


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    yield InMemorySpanExporter()
    uninstrument()


def provider_for(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


def test_a_tool_round_is_run_step_chat_and_tool_spans(exporter: InMemorySpanExporter) -> None:
    backend = ScriptedBackend([CALL, "It is 18 degrees.<turn|>"])
    agent = Agent(backend, tools=[get_weather], tracer_provider=provider_for(exporter))
    result = agent.run("Weather in Paris?")
    spans = exporter.get_finished_spans()
    names = sorted(s.name for s in spans)
    assert names == sorted(
        [
            "invoke_agent agentkit",
            "step 1",
            "step 2",
            "chat scripted-gemma4",
            "chat scripted-gemma4",
            "execute_tool get_weather",
        ]
    )
    run = by_name(spans)["invoke_agent agentkit"]
    assert run.parent is None and run.kind is SpanKind.INTERNAL
    assert run.attributes is not None
    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["gen_ai.provider.name"] == "scripted"
    assert run.attributes["gen_ai.request.model"] == "scripted-gemma4"
    assert run.attributes["gen_ai.conversation.id"] == result.session_id
    assert run.attributes["gen_ai.usage.output_tokens"] == result.usage.completion_tokens > 0
    assert run.attributes["gen_ai.response.finish_reasons"] == ("stop",)

    steps = {s.attributes["agentkit.step"]: s for s in spans if s.name.startswith("step")}  # type: ignore[index]
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in steps.values())
    chats = sorted((s for s in spans if s.name.startswith("chat")), key=lambda s: s.start_time or 0)
    assert [c.parent.span_id for c in chats if c.parent] == [steps[1].context.span_id, steps[2].context.span_id]
    first, second = chats
    assert first.kind is SpanKind.CLIENT
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["gen_ai.operation.name"] == "chat"
    assert first.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert second.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert first.attributes["gen_ai.usage.input_tokens"] > 0
    assert first.attributes["gen_ai.request.temperature"] == 1.0
    assert "gen_ai.response.time_to_first_chunk" in first.attributes

    tool_span = by_name(spans)["execute_tool get_weather"]
    assert tool_span.parent is not None and tool_span.parent.span_id == steps[1].context.span_id
    assert tool_span.attributes is not None
    assert tool_span.attributes["gen_ai.tool.name"] == "get_weather"
    assert tool_span.attributes["gen_ai.tool.call.id"] == result.tool_calls[0].call_id
    assert tool_span.attributes["gen_ai.tool.description"] == "Get the weather."
    assert tool_span.attributes["agentkit.tool.arguments_size"] == len('{"city": "Paris"}')
    assert tool_span.attributes["agentkit.tool.result_size"] == len("18 degrees in Paris")
    assert "gen_ai.tool.call.arguments" not in tool_span.attributes  # content is opt-in
    # Times nest: the model request ends before its tool runs, both inside the step, all inside the run.
    assert first.end_time is not None and tool_span.start_time is not None
    assert first.end_time <= tool_span.start_time
    assert run.start_time <= steps[1].start_time <= steps[1].end_time <= steps[2].start_time <= run.end_time  # type: ignore[operator]


def test_failed_tool_call_is_an_error_span(exporter: InMemorySpanExporter) -> None:
    backend = ScriptedBackend([format_tool_call("explode", {"x": 1}) + "<|tool_response>", "Sorry.<turn|>"])
    Agent(backend, tools=[explode], tracer_provider=provider_for(exporter)).run("go")
    span = by_name(exporter.get_finished_spans())["execute_tool explode"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "explode raised RuntimeError: boom"
    assert span.attributes is not None and span.attributes["error.type"] == "ToolError"


def test_content_is_recorded_only_when_asked(exporter: InMemorySpanExporter) -> None:
    instrument(provider_for(exporter), record_content=True)
    Agent(ScriptedBackend([CALL, "ok<turn|>"]), tools=[get_weather]).run("go")
    span = by_name(exporter.get_finished_spans())["execute_tool get_weather"]
    assert span.attributes is not None
    assert span.attributes["gen_ai.tool.call.arguments"] == '{"city": "Paris"}'
    assert span.attributes["gen_ai.tool.call.result"] == "18 degrees in Paris"


def test_backend_failure_ends_every_span_with_an_error(exporter: InMemorySpanExporter) -> None:
    backend = ScriptedBackend([CALL])  # nothing left for the second step
    agent = Agent(backend, tools=[get_weather], tracer_provider=provider_for(exporter))
    with pytest.raises(BackendError):
        agent.run("go")
    spans = by_name(exporter.get_finished_spans())
    run = spans["invoke_agent agentkit"]
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes is not None and run.attributes["error.type"] == "BackendError"
    assert any(e.name == "exception" for e in run.events)
    assert spans["step 1"].status.status_code is StatusCode.UNSET  # the first step went fine


def test_structured_output_retries_show_as_final_result_tool_spans(exporter: InMemorySpanExporter) -> None:
    class Answer(BaseModel):
        n: int

    bad = format_tool_call("final_result", {"n": "many"}) + "<|tool_response>"
    agent = Agent(ScriptedBackend([bad, bad]), output_type=Answer, output_retries=1)
    agent._tracer = None
    instrument(provider_for(exporter))
    with pytest.raises(OutputValidationError):
        agent.run("count")
    spans = exporter.get_finished_spans()
    tools = [s for s in spans if s.name == "execute_tool final_result"]
    assert len(tools) == 2 and all(s.status.status_code is StatusCode.ERROR for s in tools)
    assert by_name(spans)["invoke_agent agentkit"].attributes["error.type"] == "OutputValidationError"  # type: ignore[index]


def test_stopping_the_stream_early_ends_the_spans(exporter: InMemorySpanExporter) -> None:
    backend = ScriptedBackend(["a long answer " * 20 + "<turn|>"], chunk_size=2)
    agent = Agent(backend, tracer_provider=provider_for(exporter))

    async def first_delta() -> None:
        stream = agent.run_stream("go")
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        await stream.aclose()  # type: ignore[attr-defined]

    asyncio.run(first_delta())
    spans = by_name(exporter.get_finished_spans())
    assert spans["invoke_agent agentkit"].attributes["error.type"] == "cancelled"  # type: ignore[index]
    assert {"step 1", "chat scripted-gemma4"} <= set(spans)


def test_off_by_default_and_a_bad_provider_is_refused(exporter: InMemorySpanExporter) -> None:
    agent = Agent(ScriptedBackend(["hi<turn|>"]))
    assert agent._tracer is None
    agent.run("go")
    assert exporter.get_finished_spans() == ()
    with pytest.raises(UserError, match="takes an OpenTelemetry TracerProvider"):
        Agent(ScriptedBackend([]), tracer_provider="jaeger")
