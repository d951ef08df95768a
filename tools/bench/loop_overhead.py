"""Framework overhead per agent step: agentkit vs smolagents vs pydantic-ai, measured side by side.

Every framework gets the same scripted conversation: 50 messages of earlier history, 20 tools declared, and a
request that takes two model steps (one tool call, then the answer). Each uses its own test model that answers
instantly (agentkit's ScriptedBackend with the output in one chunk, smolagents' Model subclass, pydantic-ai's
FunctionModel) and the tool does nothing, so the wall time is the framework's own: rendering, parsing, argument
validation, dispatch, bookkeeping. Printed: ms per step (median of many runs) and the ratios.

With the OpenTelemetry SDK installed, one more row traces every run (agentkit.tracing) into an in-memory
exporter: the cost of tracing when it is on. Off, the loop does one ``None`` check per run.

Second figure: four tools that each sleep 1 s, called in one step — wall time should be about 1 s.

Run: ``pip install -e '.[bench]' && python tools/bench/loop_overhead.py``
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

N_TOOLS = 20
HISTORY_TURNS = 25  # 25 user + 25 assistant messages = 50 messages
REPEATS = 200

TOOL_SOURCE = '''
def tool_{i}(city: str, days: int = 1) -> str:
    """Look up fact number {i} about a city.

    Args:
        city: The city to look up.
        days: How many days ahead.
    """
    return "fact {i} about " + city
'''


def make_functions() -> list[Callable[..., str]]:
    # Written to a real module: smolagents reads each tool's source with inspect.getsource.
    import importlib.util
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "bench_tools.py"
    path.write_text("".join(TOOL_SOURCE.format(i=i) for i in range(N_TOOLS)))
    spec = importlib.util.spec_from_file_location("bench_tools", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [getattr(module, f"tool_{i}") for i in range(N_TOOLS)]


def timed(run_once: Callable[[], None], repeats: int = REPEATS) -> float:
    for _ in range(10):  # warm-up
        run_once()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_once()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


# -- agentkit -----------------------------------------------------------------------------------------


def bench_agentkit(funcs: list[Callable[..., str]], continuing: bool = False, tracer_provider: Any = None) -> float:
    """``continuing``: the conversation goes on (history grows) instead of being reset to 50 messages.

    ``tracer_provider``: trace every run (agentkit.tracing) into it.
    """
    from agentkit import Agent, tool
    from agentkit.testing import ScriptedBackend

    tools = [tool(f) for f in funcs]
    call = '<|tool_call>call:tool_7{city:<|"|>Paris<|"|>,days:2}<tool_call|><|tool_response>'
    backend = ScriptedBackend(chunk_size=1 << 20)
    agent = Agent(backend, tools=tools, tracer_provider=tracer_provider)
    for i in range(HISTORY_TURNS):
        backend.add(f"Answer number {i} with some words in it.<turn|>")
        agent.run(f"Question number {i}?")
    history = list(agent.messages)

    def once() -> None:
        if not continuing:
            agent.session.messages = list(history)  # a fresh list: the agent renders the 50 messages again
        backend.add(call, "Paris has fact 7.<turn|>")
        result = agent.run("What is fact 7 about Paris?")
        assert result.steps == 2 and result.tool_calls[0].error is None, result

    return timed(once) / 2


# -- smolagents ----------------------------------------------------------------------------------------


def bench_smolagents(funcs: list[Callable[..., str]]) -> float:
    from smolagents import ToolCallingAgent
    from smolagents import tool as smol_tool
    from smolagents.models import ChatMessage, ChatMessageToolCall, ChatMessageToolCallFunction, MessageRole, Model
    from smolagents.monitoring import LogLevel

    class ScriptedModel(Model):  # smolagents' own Model interface, answering instantly
        def __init__(self) -> None:
            super().__init__(model_id="scripted")
            self.script: list[tuple[str, dict[str, Any]]] = []

        def generate(self, messages: Any, stop_sequences: Any = None, **kwargs: Any) -> ChatMessage:
            name, args = self.script.pop(0)
            fn = ChatMessageToolCallFunction(name=name, arguments=args)
            return ChatMessage(
                role=MessageRole.ASSISTANT,
                content="",
                tool_calls=[ChatMessageToolCall(function=fn, id=f"c{len(self.script)}", type="function")],
            )

    model = ScriptedModel()
    agent = ToolCallingAgent(tools=[smol_tool(f) for f in funcs], model=model, verbosity_level=LogLevel.OFF)
    for i in range(HISTORY_TURNS):
        model.script.append(("final_answer", {"answer": f"Answer number {i} with some words in it."}))
        agent.run(f"Question number {i}?", reset=(i == 0))
    base = len(agent.memory.steps)

    def once() -> None:
        del agent.memory.steps[base:]
        model.script.extend([("tool_7", {"city": "Paris", "days": 2}), ("final_answer", {"answer": "fact 7"})])
        out = agent.run("What is fact 7 about Paris?", reset=False)
        assert out == "fact 7", out

    return timed(once) / 2


# -- pydantic-ai ---------------------------------------------------------------------------------------


def bench_pydantic_ai(funcs: list[Callable[..., str]]) -> float:
    from pydantic_ai import Agent as PAgent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    def model_fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        if any(isinstance(p, ToolReturnPart) for p in getattr(last, "parts", [])):
            return ModelResponse(parts=[TextPart("Paris has fact 7.")])
        prompt = str(last.parts[-1].content)  # type: ignore[union-attr]
        if prompt.startswith("Question"):
            return ModelResponse(parts=[TextPart(f"Answer to {prompt}")])
        return ModelResponse(parts=[ToolCallPart("tool_7", {"city": "Paris", "days": 2})])

    agent = PAgent(FunctionModel(model_fn), tools=funcs)
    history: list[ModelMessage] = []
    for i in range(HISTORY_TURNS):
        history = agent.run_sync(f"Question number {i}?", message_history=history).all_messages()

    def once() -> None:
        out = agent.run_sync("What is fact 7 about Paris?", message_history=history)
        assert out.output == "Paris has fact 7.", out.output

    return timed(once) / 2


# -- parallel tools -------------------------------------------------------------------------------------


def bench_parallel_sleepers() -> float:
    from agentkit import Agent, tool
    from agentkit.testing import ScriptedBackend

    def make(i: int) -> Any:
        def sleeper() -> str:
            time.sleep(1.0)
            return "slept"

        sleeper.__name__ = f"sleep_{i}"
        sleeper.__doc__ = "Sleep one second."
        return tool(sleeper)

    tools = [make(i) for i in range(4)]
    calls = "".join(f"<|tool_call>call:sleep_{i}{{}}<tool_call|>" for i in range(4)) + "<|tool_response>"
    agent = Agent(ScriptedBackend([calls, "All slept.<turn|>"], chunk_size=1 << 20), tools=tools)
    t0 = time.perf_counter()
    result = agent.run("sleep four times")
    wall = time.perf_counter() - t0
    assert len(result.tool_calls) == 4 and all(c.ok for c in result.tool_calls)
    return wall


def traced_provider() -> Any:
    """An OpenTelemetry SDK provider exporting to memory (cleared as it goes), or None without the SDK."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        print("tracing row skipped: pip install -e '.[otel]'")
        return None

    class Discarding(InMemorySpanExporter):
        def export(self, spans: Any) -> Any:
            result = super().export(spans)
            self.clear()
            return result

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Discarding()))
    return provider


def main() -> None:
    funcs = make_functions()
    ours = bench_agentkit(funcs)
    rows = [("agentkit", ours)]
    for name, fn in (("smolagents", bench_smolagents), ("pydantic-ai", bench_pydantic_ai)):
        try:
            rows.append((name, fn(funcs)))
        except ImportError as exc:
            print(f"{name}: not installed ({exc}); pip install -e '.[bench]'")
    print(
        f"framework time per agent step ({HISTORY_TURNS * 2} messages of history, {N_TOOLS} tools, median of "
        f"{REPEATS} runs of 2 steps)"
    )
    rows.append(("agentkit, conversation going on (history cached)", bench_agentkit(funcs, continuing=True)))
    traced = traced_provider()
    if traced is not None:
        rows.append(
            ("agentkit, traced (OpenTelemetry SDK, in-memory export)", bench_agentkit(funcs, tracer_provider=traced))
        )
    for name, per_step in rows:
        ratio = "" if name.startswith("agentkit") else f"   {per_step / ours:6.1f}x agentkit"
        if "traced" in name:
            ratio = f"   {per_step / ours:6.2f}x untraced"
        print(f"  {name:56s} {per_step * 1000:8.3f} ms/step{ratio}")
    wall = asyncio.run(asyncio.to_thread(bench_parallel_sleepers))
    print(f"4 tools sleeping 1 s each, called in one step: wall {wall:.3f} s")


if __name__ == "__main__":
    main()
