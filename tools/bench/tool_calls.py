"""What one tool call costs the agent, and what declaring a tool costs, without a model in the way.

Per call: the agent's own path for one call the model made (check the arguments, ask the approval policy, run
the tool with its timeout) on a tool that returns at once, so the time is agentkit's: a sync tool run on the
event loop (``thread=False``), a sync tool in a worker thread (the default) and an async tool, each with a few
typed arguments. Per declaration: ``tool(fn)`` on a function of five documented, typed parameters (signature,
hints and docstring read, declaration and validator built).

Times are the CPU time of the process (all its threads), the best of a few batches: on a machine shared with
other work, wall time moved these figures by 2x from run to run, CPU time by a few percent.

``--baseline DIR`` measures the agentkit found in DIR too (a checkout, e.g. ``git archive REV agentkit | tar
-x -C DIR``), in worker processes that take turns with the current tree round by round, so a machine that
gets busier mid-run moves both figures alike; the ratio is printed.

Run: ``python tools/bench/tool_calls.py [--baseline DIR]`` (about 20 s; twice that with a baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 7
CALLS = 1000
DECLARATIONS = 100
REPEATS = 5


def _declared() -> Any:
    def search_code(
        pattern: str,
        path: str = ".",
        limit: int = 20,
        mode: Literal["regex", "literal"] = "regex",
        globs: list[str] | None = None,
    ) -> str:
        """Search the code for a pattern.

        Args:
            pattern: What to look for.
            path: Where to look.
            limit: How many lines at most.
            mode: How to read the pattern.
            globs: Only files whose names match these.
        """
        return pattern

    return search_code


def measure() -> dict[str, float]:
    """One round in this process: µs per call (per path) and per declaration."""
    from agentkit import Agent, allow_all, tool
    from agentkit.backends.scripted import ScriptedBackend
    from agentkit.tools.runtime import CallContext

    def add(a: int, b: int, label: str = "sum") -> str:
        return f"{label}={a + b}"

    async def add_async(a: int, b: int, label: str = "sum") -> str:
        return f"{label}={a + b}"

    tools = [tool(add, name="inline", thread=False), tool(add, name="threaded"), tool(add_async, name="coro")]

    agent = Agent(ScriptedBackend([]), tools=tools, approval=allow_all)  # never asked to generate
    args = {"a": 2, "b": 3, "label": "total"}
    context = CallContext()
    out: dict[str, float] = {}

    async def calls(name: str, n: int) -> float:
        start = time.process_time()
        for i in range(n):
            await agent._approved_call(f"c{i}", name, args, context)
        return (time.process_time() - start) / n * 1e6

    async def all_paths() -> None:
        for name in ("inline", "threaded", "coro"):
            await calls(name, 50)  # warm up (threads started, caches filled)
            n = CALLS if name != "threaded" else CALLS // 4
            # The best of a few batches: on a shared machine, other processes only ever add time.
            out[f"call {name}"] = min([await calls(name, n) for _ in range(REPEATS)])

    asyncio.run(all_paths())
    fn = _declared()
    batches = []
    for _ in range(REPEATS):
        start = time.process_time()
        for _ in range(DECLARATIONS):
            tool(fn)
        batches.append((time.process_time() - start) / DECLARATIONS * 1e6)
    out["declare tool(fn)"] = min(batches)
    return out


def _worker(tree: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": tree}
    proc = subprocess.run(
        [sys.executable, __file__, "--worker"], env=env, capture_output=True, text=True, check=True, cwd=tree
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--baseline", help="a checkout of agentkit to measure side by side")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker:
        print(json.dumps(measure()))
        return
    trees = {"current": str(ROOT)} | ({"baseline": opts.baseline} if opts.baseline else {})
    rounds: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    for _ in range(ROUNDS):
        for label, tree in trees.items():
            rounds[label].append(_worker(tree))
    medians = {
        label: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for label, results in rounds.items()
    }
    print(f"== µs per tool call / declaration: best of {REPEATS} batches per round, median of {ROUNDS} rounds ==")
    for key in medians["current"]:
        row = f"  {key:<20} current {medians['current'][key]:8.1f} µs"
        if "baseline" in medians:
            base = medians["baseline"][key]
            row += f"   baseline {base:8.1f} µs   baseline/current {base / medians['current'][key]:.2f}x"
        print(row)


if __name__ == "__main__":
    main()
