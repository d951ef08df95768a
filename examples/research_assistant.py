"""Research assistant: search the web, read the pages, answer with numbered citations.

    AGENTKIT_BACKEND=ollama://localhost:11434/gemma4:e4b python examples/research_assistant.py "What is Gemma 4?"

The answer streams to stdout; searches and page fetches show on stderr. After the answer, the script
prints the pages the agent actually read, numbered, and warns about any [n] citation that points at no
page it read — the model's citations are checked against what really happened, not taken on trust.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Sequence

from agentkit import Agent, Backend, RunResult, Tool, backend_from_url
from agentkit.errors import AgentkitError
from agentkit.events import RunFinished, TextDelta, ToolCallFinished, ToolCallStarted
from agentkit.tools import fetch_url, web_search

SYSTEM = """You are a careful research assistant.
For every question: search the web, then fetch the two or three most relevant pages and read them.
Answer only from what those pages say. After each claim, cite its page as [n], numbering pages in the
order you fetched them (the first page you fetched is [1]). End with a line "Sources:" followed by one
"[n] URL" line per page you cited. If the pages do not answer the question, say so plainly."""

DEFAULT_QUESTION = "What sizes does Google's Gemma 4 come in, and which one fits a laptop?"


def build_agent(backend: Backend, *, search: Tool = web_search, fetch: Tool = fetch_url) -> Agent:
    """The agent; ``search`` and ``fetch`` can be swapped (other limits, or test doubles)."""
    return Agent(backend, tools=[search, fetch], system=SYSTEM, thinking=True, max_steps=12)


def fetched_sources(result: RunResult) -> list[str]:
    """The URLs the agent fetched successfully, in order: the only things its [n] may point at."""
    urls: list[str] = []
    for record in result.tool_calls:
        if record.name == "fetch_url" and record.ok:
            url = str(record.arguments.get("url", ""))
            if url and url not in urls:
                urls.append(url)
    return urls


def dangling_citations(answer: str, sources: Sequence[str]) -> list[int]:
    """Citation numbers in the answer with no fetched page behind them."""
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer)}
    return sorted(n for n in cited if not 1 <= n <= len(sources))


async def research(question: str, backend: Backend, *, agent: Agent | None = None) -> tuple[RunResult, list[str]]:
    """Run the question, streaming the answer to stdout and tool activity to stderr."""
    agent = agent or build_agent(backend)
    result: RunResult | None = None
    async for event in agent.run_stream(question):
        if isinstance(event, TextDelta):
            print(event.text, end="", flush=True)
        elif isinstance(event, ToolCallStarted):
            print(f"\n→ {event.name} {event.arguments}", file=sys.stderr)
        elif isinstance(event, ToolCallFinished) and not event.ok:
            print(f"  ✗ {event.error}", file=sys.stderr)
        elif isinstance(event, RunFinished):
            result = event.result
    print()
    assert result is not None
    return result, fetched_sources(result)


def backend_from_env() -> Backend:
    url = os.environ.get("AGENTKIT_BACKEND")
    if not url:
        sys.exit("set AGENTKIT_BACKEND, e.g. AGENTKIT_BACKEND=ollama://localhost:11434/gemma4:e4b")
    return backend_from_url(url)


def main(argv: Sequence[str] | None = None, backend: Backend | None = None, agent: Agent | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    question = " ".join(args) or DEFAULT_QUESTION
    backend = backend or (agent.backend if agent else backend_from_env())
    result, sources = asyncio.run(research(question, backend, agent=agent))
    print("\nPages read:")
    for n, url in enumerate(sources, start=1):
        print(f"  [{n}] {url}")
    if not sources:
        print("  (none: the answer is not backed by any page)")
    missing = dangling_citations(result.output, sources)
    if missing:
        print(f"warning: citation(s) {missing} point at no page the agent read", file=sys.stderr)
    return 0 if result.ok and sources and not missing else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AgentkitError as exc:  # server not running, model not pulled, bad URL: the message says what to do
        sys.exit(f"error: {exc}")
