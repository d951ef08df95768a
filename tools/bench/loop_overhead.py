"""Framework overhead per agent step: agentkit vs smolagents vs pydantic-ai, measured side by side.

What is compared. Every framework gets the same scripted work: 50 messages of earlier history (25 questions
and 25 plain answers), 20 tools declared, and a request that takes two model steps: one call to one tool, then
the answer. Each uses its own test model that answers at once (agentkit's ScriptedBackend with the raw output
in one chunk, which agentkit then has to parse; smolagents' ``Model`` subclass and pydantic-ai's
``FunctionModel`` hand over ready-made tool-call objects, so the peers skip the parsing agentkit does), and
the tool does nothing, so what is timed is the framework's own work: rendering the history, parsing,
argument validation, dispatch, bookkeeping.

Fairness, contender by contender:

- agentkit, restored: before each request the same 50 messages are put back as a new conversation tuple
  (``agent.session.conversation = tuple(list(history))``, untimed). agentkit's prompt cache is keyed by the
  tuple's identity, so every request renders all 50 messages and the 20 declarations again, as the peers do.
  Its tools are ``thread=False`` (they return at once and never block, so they run on the event loop, as
  smolagents runs a lone call inline); the default (a worker thread per sync call) is its own row.
- agentkit, continuing: the conversation goes on, the usual case. Untimed before each request: the first 46
  messages are restored and the same request is made once, so the timed request continues a 50-message
  conversation whose rendering is cached (only the turn before it and its own are rendered, as in any
  conversation that goes on), and the figure does not drift with a conversation that grows over the run.
- smolagents ``ToolCallingAgent`` (logging off, no planning): the 25 earlier runs stay in its memory, and the
  steps a timed request added are deleted before the next (untimed). It writes its memory into messages on
  every step, as agentkit renders. Its answer is a call to its
  ``final_answer`` tool (that is how a ToolCallingAgent answers), so it runs two tools where agentkit runs one.
- pydantic-ai: ``run_sync`` with ``message_history`` (the same 50 message objects each time), instrumentation
  off. Driving it with ``await agent.run`` on a loop kept for the whole run, or with async tools, measured no
  cheaper here, so it runs the way its docs show.

How it is measured, for a shared, noisy machine: the frameworks take turns round by round (``--rounds``, 30; the
order rotates each round), each doing ``--per-round`` (10) timed requests per turn, after 2 untimed ones so that
each is timed with its code in the caches, as in a loop that runs step after step (without them the first requests
after another framework's turn run cold, which costs the shortest requests, agentkit's, the largest share). Short
turns, so a change of load hits every framework alike. Each request is timed in CPU time of the process
(``time.process_time``: every thread, so a tool's worker thread counts; time the machine gave to other processes
does not) and in wall time. The set-up of all frameworks is frozen out of the garbage collector's way
(``gc.freeze``) before the rounds, so no framework's requests pay for scanning another's heap. Printed: the CPU
ratio of each round (its medians); per contender the median over all requests, CPU and wall, per step (a request
is two steps); the median of the per-round ratios with quartiles and min-max (baseline rows compare with the same
agentkit row, the peers with agentkit restored). CPU time is the figure to quote: the wall figures of the longer
requests (the peers') also count time the machine gave to other processes and, for pydantic-ai, the wait for its
tool thread.

``--baseline DIR`` also measures the agentkit found in DIR (another checkout, e.g. ``git archive main``), in a
worker process in the same rounds, for before/after figures.

With the OpenTelemetry SDK installed, one more row traces every run (agentkit.tracing) into an in-memory
exporter: the cost of tracing when it is on. Off, the loop does one ``None`` check per run.

Second figure: four tools that each sleep 1 s, called in one step: wall time should be about 1 s.

Run: ``pip install -e '.[bench]' && python tools/bench/loop_overhead.py [--rounds 60] [--baseline DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

N_TOOLS = 20
HISTORY_TURNS = 25  # 25 user + 25 assistant messages = 50 messages
ROUNDS = 30
PER_ROUND = 10  # timed requests per framework per round: short turns, so a change of load hits all alike
TURN_WARM_UP = 2  # untimed requests that start each turn: every framework is timed with its code in the caches
WARM_UP = 10
STEPS = 2  # model steps per request: a tool call, then the answer

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


@dataclass
class Bench:
    """One contender: ``prepare`` (untimed) puts the history back, ``request`` (timed) runs the two steps."""

    request: Callable[[], None]
    prepare: Callable[[], None] | None = None
    remote: str | None = None  # measured by the --baseline worker under this name instead


def sample(bench: Bench, n: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of ``n`` requests, after ``TURN_WARM_UP`` untimed ones."""
    out = []
    wall, cpu, request, prepare = time.perf_counter, time.process_time, bench.request, bench.prepare
    for _ in range(TURN_WARM_UP):
        if prepare is not None:
            prepare()
        request()
    for _ in range(n):
        if prepare is not None:
            prepare()
        w0, c0 = wall(), cpu()
        request()
        c1, w1 = cpu(), wall()
        out.append((w1 - w0, c1 - c0))
    return out


def warm(bench: Bench) -> Bench:
    sample(bench, WARM_UP - TURN_WARM_UP)
    return bench


# -- agentkit -----------------------------------------------------------------------------------------


def bench_agentkit(
    funcs: list[Callable[..., str]], continuing: bool = False, thread: bool = False, tracer_provider: Any = None
) -> Bench:
    """``continuing``: the request continues a 50-message conversation whose rendering is cached (see the
    module docstring); else the 50 messages are restored as a new conversation before each request.

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
    assert len(history) == 2 * HISTORY_TURNS

    def restore(messages: Any) -> None:
        # A new conversation (the same messages in a new tuple, or a new list): the agent renders it again.
        if typed:
            agent.session.conversation = tuple(list(messages))
        else:
            agent.session.messages = list(messages)

    def prepare() -> None:
        # The test backend records every request (with a copy of the conversation): not the framework's cost.
        backend.requests.clear()
        if not continuing:
            restore(history)
            return
        # 46 messages and the same request as the timed one (4 messages): the timed request continues a
        # 50-message conversation, and pays what a request pays in a conversation that goes on (the finished
        # turn before it is rendered when it starts).
        restore(history[:-4])
        request()
        backend.requests.clear()

    def request() -> None:
        backend.add(call, "Paris has fact 7.<turn|>")
        result = agent.run("What is fact 7 about Paris?")
        assert result.steps == STEPS and result.tool_calls[0].error is None, result

    return Bench(request, prepare)


# -- smolagents ----------------------------------------------------------------------------------------


def bench_smolagents(funcs: list[Callable[..., str]]) -> Bench:
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

    def prepare() -> None:
        del agent.memory.steps[base:]  # back to the 25 earlier runs

    def request() -> None:
        model.script.extend([("tool_7", {"city": "Paris", "days": 2}), ("final_answer", {"answer": "fact 7"})])
        out = agent.run("What is fact 7 about Paris?", reset=False)
        assert out == "fact 7", out

    return Bench(request, prepare)


# -- pydantic-ai ---------------------------------------------------------------------------------------


def bench_pydantic_ai(funcs: list[Callable[..., str]]) -> Bench:
    from pydantic_ai import Agent as PAgent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    def model_fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        if any(isinstance(p, ToolReturnPart) for p in getattr(last, "parts", [])):
            return ModelResponse(parts=[TextPart("Paris has fact 7.")])
        prompt = str(last.parts[-1].content)  # type: ignore[union-attr]
        if prompt.startswith("Question"):
            return ModelResponse(parts=[TextPart(f"Answer number {prompt.split()[2][:-1]} with some words in it.")])
        return ModelResponse(parts=[ToolCallPart("tool_7", {"city": "Paris", "days": 2})])

    agent = PAgent(FunctionModel(model_fn), tools=funcs)
    history: list[ModelMessage] = []
    for i in range(HISTORY_TURNS):
        history = agent.run_sync(f"Question number {i}?", message_history=history).all_messages()
    assert len(history) == 2 * HISTORY_TURNS

    def request() -> None:
        out = agent.run_sync("What is fact 7 about Paris?", message_history=history)
        assert out.output == "Paris has fact 7.", out.output

    return Bench(request)


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
    """The agentkit of another checkout, measured in a process of its own that answers one turn at a time."""

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

    def bench(self, which: str) -> Bench:
        """A contender whose turns the worker runs (its ``request`` is never called here)."""

        def request() -> None:
            raise AssertionError("measured in the worker")

        return Bench(request, remote=which)

    def sample(self, which: str, n: int) -> list[tuple[float, float]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{which} {n}\n")
        self.proc.stdin.flush()
        return [(w, c) for w, c in json.loads(self.proc.stdout.readline())]

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


def per_step_ms(samples: list[tuple[float, float]], which: int) -> float:
    """Median of one column (0 wall, 1 CPU), per step, in ms."""
    return statistics.median(s[which] for s in samples) / STEPS * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", metavar="DIR", help="also measure the agentkit in this checkout (before/after)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--per-round", type=int, default=PER_ROUND, help="requests per framework per round")
    parser.add_argument("--no-peers", action="store_true", help="agentkit rows only (quick before/after checks)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    funcs = make_functions()
    # (short name, what it is) of each row; the short names label the per-round ratios.
    labels = {
        "restored": "agentkit, 50 messages restored each request",
        "continuing": "agentkit, continuing a 50-message conversation",
        "threads": "agentkit, restored, tools in threads (default)",
        "traced": "agentkit, restored, traced (OTel SDK, in-memory)",
        "baseline restored": "baseline agentkit, restored",
        "baseline continuing": "baseline agentkit, continuing",
        "smolagents": "smolagents ToolCallingAgent",
        "pydantic-ai": "pydantic-ai Agent",
    }
    contenders: dict[str, Bench] = {
        "restored": warm(bench_agentkit(funcs)),
        "continuing": warm(bench_agentkit(funcs, continuing=True)),
        "threads": warm(bench_agentkit(funcs, thread=True)),
    }
    traced = traced_provider()
    if traced is not None:
        contenders["traced"] = warm(bench_agentkit(funcs, tracer_provider=traced))
    baseline = BaselineWorker(args.baseline) if args.baseline else None
    if baseline is not None:
        contenders["baseline restored"] = baseline.bench("reset")
        contenders["baseline continuing"] = baseline.bench("continuing")
    peers = [] if args.no_peers else [("smolagents", bench_smolagents), ("pydantic-ai", bench_pydantic_ai)]
    for name, make in peers:
        try:
            contenders[name] = warm(make(funcs))
        except ImportError as exc:
            print(f"{name}: not installed ({exc}); pip install -e '.[bench]'")

    names = list(contenders)
    # Each row's ratio is to the agentkit row it compares with: the peers to agentkit restored (the fair one).
    reference = {name: "restored" for name in names}
    reference["baseline continuing"] = "continuing"
    # The set-up of every framework (all their objects) out of the collector's way: a full collection during a
    # request then scans what requests make, not the heaps of the frameworks that ran before it.
    gc.collect()
    gc.freeze()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    rounds: list[dict[str, tuple[float, float]]] = []  # per round: each contender's median (CPU, wall) ms/step
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate: no contender always goes first
        this: dict[str, tuple[float, float]] = {}
        for name in order:
            bench = contenders[name]
            if bench.remote is not None and baseline is not None:
                got = baseline.sample(bench.remote, args.per_round)
            else:
                got = sample(bench, args.per_round)
            samples[name] += got
            this[name] = (per_step_ms(got, 1), per_step_ms(got, 0))
        rounds.append(this)
    if baseline is not None:
        baseline.close()

    def ratios(name: str, column: int) -> list[float]:
        return [rnd[name][column] / rnd[reference[name]][column] for rnd in rounds]

    print(f"CPU time ratio of each round (its medians), {args.rounds} rounds in order:")
    for name in names:
        if name != reference[name]:
            print(f"  {name + ' / ' + reference[name]:34s} " + " ".join(f"{x:.1f}" for x in ratios(name, 0)))
    print(
        f"\nframework time per agent step ({HISTORY_TURNS * 2} messages of history, {N_TOOLS} tools, {STEPS} steps "
        f"per request; medians of {args.rounds} rounds x {args.per_round} requests, frameworks taking turns)"
    )
    if baseline is not None:
        print(f"  (baseline: the agentkit in {baseline.origin})")
    print(f"  {'':48s} {'CPU ms':>7s} {'wall ms':>7s}   ratio: CPU median of rounds [quartiles] (min-max), wall median")
    for name in names:
        cpu, wall = per_step_ms(samples[name], 1), per_step_ms(samples[name], 0)
        note = ""
        if name != reference[name]:
            by_cpu = ratios(name, 0)
            q1, _, q3 = statistics.quantiles(by_cpu, n=4) if len(by_cpu) > 1 else (by_cpu[0],) * 3
            note = (
                f"   {statistics.median(by_cpu):5.2f}x [{q1:.2f}-{q3:.2f}] ({min(by_cpu):.2f}-{max(by_cpu):.2f}), "
                f"wall {statistics.median(ratios(name, 1)):.2f}x  (/ {reference[name]})"
            )
        print(f"  {labels[name]:48s} {cpu:7.3f} {wall:7.3f}{note}")
    wall = asyncio.run(asyncio.to_thread(bench_parallel_sleepers))
    print(f"4 tools sleeping 1 s each, called in one step: wall {wall:.3f} s")


if __name__ == "__main__":
    main()
