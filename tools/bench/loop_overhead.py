"""Framework overhead per agent step: agentkit vs smolagents vs pydantic-ai, measured side by side.

Every framework gets the same scripted conversation: 50 messages of earlier history, 20 tools declared, and a
request that takes two model steps (one tool call, then the answer). Each uses its own test model that answers
instantly (agentkit's ScriptedBackend with the output in one chunk, smolagents' Model subclass, pydantic-ai's
FunctionModel) and the tool does nothing, so the wall time is the framework's own: rendering, parsing, argument
validation, dispatch, bookkeeping. Printed: ms per step (median of many runs) and the ratios.

The frameworks take turns, round by round (a few runs each), so a machine that gets busier or quieter mid-run
moves every figure alike. agentkit is measured twice: with the 50 messages restored before each request (the
fair comparison: every peer renders its history again) and with the conversation going on (the cached
rendering of earlier turns is reused, as in real use). Its tools are declared ``thread=False`` (they return at
once, as the peers' tools do: smolagents calls them inline); the default threaded figure is printed too.
``--baseline DIR`` also measures the agentkit found in DIR (a checkout), in a worker process in the same
rounds, for before/after figures.

With the OpenTelemetry SDK installed, one more row traces every run (agentkit.tracing) into an in-memory
exporter: the cost of tracing when it is on. Off, the loop does one ``None`` check per run.

Second figure: four tools that each sleep 1 s, called in one step — wall time should be about 1 s.

Run: ``pip install -e '.[bench]' && python tools/bench/loop_overhead.py [--baseline /path/to/old/checkout]``
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

N_TOOLS = 20
HISTORY_TURNS = 25  # 25 user + 25 assistant messages = 50 messages
ROUNDS = 10
PER_ROUND = 30  # runs per framework per round: ROUNDS * PER_ROUND samples each

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


Once = Callable[[], None]


def sample(run_once: Once, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        run_once()
        samples.append(time.perf_counter() - t0)
    return samples


def warm(run_once: Once) -> Once:
    for _ in range(10):
        run_once()
    return run_once


# -- agentkit -----------------------------------------------------------------------------------------


def bench_agentkit(
    funcs: list[Callable[..., str]], continuing: bool = False, thread: bool = False, tracer_provider: Any = None
) -> Once:
    """``continuing``: the conversation goes on (history grows) instead of being reset to 50 messages.

    ``tracer_provider``: trace every run (agentkit.tracing) into it.
    """
    from agentkit import Agent, tool
    from agentkit.testing import ScriptedBackend

    # An older agentkit (--baseline) may not know thread=: its tools then run as they always did.
    threadable = "thread" in inspect.signature(tool).parameters
    tools = [tool(f, thread=thread) if threadable else tool(f) for f in funcs]
    call = '<|tool_call>call:tool_7{city:<|"|>Paris<|"|>,days:2}<tool_call|><|tool_response>'
    backend = ScriptedBackend(chunk_size=1 << 20)
    # (an older agentkit, for --baseline, may not know tracer_provider=)
    agent = Agent(backend, tools=tools, **({"tracer_provider": tracer_provider} if tracer_provider else {}))
    for i in range(HISTORY_TURNS):
        backend.add(f"Answer number {i} with some words in it.<turn|>")
        agent.run(f"Question number {i}?")
    typed = hasattr(agent, "conversation")  # a typed conversation (an older agentkit, for --baseline, has dicts)
    history: Any = agent.conversation if typed else list(agent.messages)

    def once() -> None:
        if not continuing:
            # A new conversation (the same 50 messages in a new tuple, or a new list): the agent renders them again.
            if typed:
                agent.session.conversation = tuple(list(history))
            else:
                agent.session.messages = list(history)
        # The test backend records every request (with a copy of the conversation): not the framework's cost,
        # and in a long continuing run the records alone made the garbage collector's passes ever longer.
        backend.requests.clear()
        backend.add(call, "Paris has fact 7.<turn|>")
        result = agent.run("What is fact 7 about Paris?")
        assert result.steps == 2 and result.tool_calls[0].error is None, result

    return once


# -- smolagents ----------------------------------------------------------------------------------------


def bench_smolagents(funcs: list[Callable[..., str]]) -> Once:
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

    return once


# -- pydantic-ai ---------------------------------------------------------------------------------------


def bench_pydantic_ai(funcs: list[Callable[..., str]]) -> Once:
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

    return once


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


class BaselineWorker:
    """The agentkit of another checkout, measured in a process of its own that answers one round at a time."""

    def __init__(self, checkout: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.path.abspath(checkout)}
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = json.loads(self.proc.stdout.readline())
        self.origin = ready["agentkit"]

    def round(self, which: str, n: int) -> list[float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{which} {n}\n")
        self.proc.stdin.flush()
        samples: list[float] = json.loads(self.proc.stdout.readline())
        return samples

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def worker() -> None:
    import agentkit

    funcs = make_functions()
    benches = {"reset": warm(bench_agentkit(funcs)), "continuing": warm(bench_agentkit(funcs, continuing=True))}
    print(json.dumps({"agentkit": os.path.dirname(agentkit.__file__)}), flush=True)
    for line in sys.stdin:
        which, n = line.split()
        print(json.dumps(sample(benches[which], int(n))), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", metavar="DIR", help="also measure the agentkit in this checkout (before/after)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    funcs = make_functions()
    # (label, run once) in the order they take turns within a round
    contenders: list[tuple[str, Once]] = [
        ("agentkit, 50 messages restored each run", warm(bench_agentkit(funcs))),
        ("agentkit, conversation going on", warm(bench_agentkit(funcs, continuing=True))),
        ("agentkit, restored, tools in threads (default)", warm(bench_agentkit(funcs, thread=True))),
    ]
    traced = traced_provider()
    if traced is not None:
        contenders.append(
            (
                "agentkit, traced (OpenTelemetry SDK, in-memory export)",
                warm(bench_agentkit(funcs, tracer_provider=traced)),
            )
        )
    for name, make in (("smolagents", bench_smolagents), ("pydantic-ai", bench_pydantic_ai)):
        try:
            contenders.append((name, warm(make(funcs))))
        except ImportError as exc:
            print(f"{name}: not installed ({exc}); pip install -e '.[bench]'")
    baseline = BaselineWorker(args.baseline) if args.baseline else None
    samples: dict[str, list[float]] = {name: [] for name, _ in contenders}
    if baseline is not None:
        samples["baseline agentkit, restored"] = []
        samples["baseline agentkit, going on"] = []
    for _ in range(args.rounds):
        for name, once in contenders:
            samples[name] += sample(once, PER_ROUND)
        if baseline is not None:
            samples["baseline agentkit, restored"] += baseline.round("reset", PER_ROUND)
            samples["baseline agentkit, going on"] += baseline.round("continuing", PER_ROUND)
    if baseline is not None:
        baseline.close()
    per_step = {name: statistics.median(s) / 2 for name, s in samples.items()}
    ours = per_step[contenders[0][0]]
    print(
        f"framework time per agent step ({HISTORY_TURNS * 2} messages of history, {N_TOOLS} tools; median of "
        f"{args.rounds} x {PER_ROUND} runs of 2 steps, frameworks taking turns each round)"
    )
    if baseline is not None:
        print(f"  (baseline: the agentkit in {baseline.origin})")
    for name, value in per_step.items():
        ratio = "" if name.startswith("agentkit") else f"   {value / ours:6.1f}x agentkit"
        if "traced" in name:
            ratio = f"   {value / ours:6.2f}x untraced"
        print(f"  {name:56s} {value * 1000:8.3f} ms/step{ratio}")
    wall = asyncio.run(asyncio.to_thread(bench_parallel_sleepers))
    print(f"4 tools sleeping 1 s each, called in one step: wall {wall:.3f} s")


if __name__ == "__main__":
    main()
