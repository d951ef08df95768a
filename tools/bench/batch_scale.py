"""Batch scale-out: the local executor vs Ray, per-task overhead; then a worker node killed under 10,000 tasks.

Every task is a scripted agent run of two model steps (a tool call, then the answer) with an instant model
(ScriptedBackend) and a tool that counts words: no model time at all, so what is measured is agentkit's own cost
per task — building the agent, rendering, parsing, running the tool, the result record, the results file — plus,
for Ray, starting the worker actors (once per batch) and shipping each task to a worker and its record back.

Part 1 (side by side, in one run): ``--tasks`` tasks (default 1,000) with the local executor, then on a local Ray
cluster started here (``ray.init``, this machine's CPUs). Printed: wall time, tasks/s, wall ms per task (all in),
wall ms per task once running (after the first tenth of the results: worker start-up left out), the driver's CPU
ms per task, and the Ray/local ratios. The cluster's start-up is printed apart: it is paid once per
batch, not per task.

Part 2: ``--kill-tasks`` tasks (default 10,000) on a simulated multi-node cluster (``ray.cluster_utils.Cluster``:
a head node without CPUs and ``--nodes`` worker nodes, each its own raylet and workers) with one worker node
killed (no grace) after ``--kill-at`` of the results are in. The same tasks run with the local executor as the
reference. Checked and printed: tasks lost (0), ids written twice (0), results differing from the local ones (0,
comparing every field but the timing), and how many tasks started again on another node.

Run: ``pip install -e '.[ray]' && python tools/bench/batch_scale.py`` (``--tasks 200 --kill-tasks 1000`` to
iterate quickly).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console

from agentkit import Agent, tool
from agentkit.backends.base import GenerationRequest
from agentkit.batch import BatchSummary, BatchTask, RayExecutor, run_batch
from agentkit.testing import ScriptedBackend

Q = '<|"|>'


@tool(thread=False)
def word_count(text: str) -> int:
    """Count the words of a text.

    Args:
        text: the text.
    """
    return len(text.split())


def model(request: GenerationRequest) -> str:
    """Step 1 calls the tool on the task; step 2 answers with its result (order-independent, deterministic)."""
    tool_results = [m for m in request.messages if m.get("role") == "tool"]
    if not tool_results:
        task = str(request.messages[-1]["content"])
        return f"<|tool_call>call:word_count{{text:{Q}{task}{Q}}}<tool_call|><|tool_response>"
    return f"The task has {tool_results[-1]['content']} words.<turn|>"


def make_agent() -> Agent:
    return Agent(ScriptedBackend([model, model], chunk_size=64), tools=[word_count], max_steps=4)


def tasks_of(n: int) -> list[BatchTask]:
    return [BatchTask(f"t{i:05d}", f"task {i}: " + "word " * (i % 7)) for i in range(n)]


def quiet() -> Console:
    return Console(quiet=True)


async def timed(
    tasks: list[BatchTask], out: Path, executor: Any, concurrency: int
) -> tuple[float, float, BatchSummary, float]:
    """Wall and driver CPU seconds, the summary, and the steady wall per task (after the first tenth is in)."""
    events = io.StringIO()
    wall, cpu = time.perf_counter(), time.process_time()
    summary = await run_batch(
        tasks,
        out,
        make_agent,
        concurrency=concurrency,
        executor=executor,
        console=quiet(),
        events=events,
        progress_interval_s=1e-9,  # an event per result: when each came in
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    progress = [json.loads(line) for line in events.getvalue().splitlines()]
    tenth = next(e for e in progress if e["done"] >= len(tasks) // 10)
    steady = (progress[-1]["elapsed_s"] - tenth["elapsed_s"]) / max(1, len(tasks) - tenth["done"])
    return wall, cpu, summary, steady


def comparable(path: Path) -> dict[str, dict[str, Any]]:
    """Records by id, without their timing (the one field that differs between two runs of the same task)."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {r["id"]: {k: v for k, v in r.items() if k not in ("duration_s", "attempts")} for r in records}


def row(name: str, n: int, wall: float, cpu: float, steady: float) -> str:
    return (
        f"  {name:<24} {wall:6.2f} s {n / wall:7.0f} tasks/s | per task: {1000 * wall / n:6.2f} ms wall, "
        f"{1000 * steady:6.2f} ms once started, {1000 * cpu / n:5.2f} ms driver CPU"
    )


async def part1(n: int, concurrency: int, work: Path) -> None:
    import ray

    tasks = tasks_of(n)
    print(f"Part 1: {n} scripted tasks (2 model steps + 1 tool call each), concurrency {concurrency}")
    await timed(tasks_of(50), work / "warm.jsonl", "local", concurrency)  # imports and first-call costs
    local_wall, local_cpu, local, local_steady = await timed(tasks, work / "local.jsonl", "local", concurrency)
    assert (local.ok, local.failed) == (n, 0), local
    start = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    started = time.perf_counter() - start
    cpus = int(ray.cluster_resources().get("CPU", 0))
    try:
        await timed(tasks_of(50), work / "ray-warm.jsonl", RayExecutor(), concurrency)  # workers' imports
        ray_wall, ray_cpu, on_ray, ray_steady = await timed(tasks, work / "ray.jsonl", RayExecutor(), concurrency)
    finally:
        ray.shutdown()
    assert (on_ray.ok, on_ray.failed) == (n, 0), on_ray
    same = comparable(work / "local.jsonl") == comparable(work / "ray.jsonl")
    print(row("local executor", n, local_wall, local_cpu, local_steady))
    print(row(f"Ray ({cpus} CPUs, 1 node)", n, ray_wall, ray_cpu, ray_steady))
    print(
        f"  Ray/local per task: {ray_wall / local_wall:.2f}x wall, {ray_steady / local_steady:.2f}x once workers run; "
        f"Ray cluster start {started:.1f} s (once per session, not per batch)"
    )
    print(f"  results identical: {same}")


async def part2(n: int, nodes: int, kill_at: float, concurrency: int, work: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    tasks = tasks_of(n)
    print(f"\nPart 2: {n} tasks on a simulated {nodes + 1}-node cluster, one worker node killed mid-run")
    reference = work / "reference.jsonl"
    wall, _, local, _ = await timed(tasks, reference, "local", concurrency)
    print(f"  local reference: {local.ok} ok in {wall:.1f} s")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(nodes)]
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        out = work / "killed.jsonl"
        start = time.perf_counter()
        batch = asyncio.create_task(
            run_batch(tasks, out, make_agent, concurrency=concurrency, executor=RayExecutor(), console=quiet())
        )
        while not out.exists() or len(out.read_text(encoding="utf-8").splitlines()) < kill_at * n:
            if batch.done():
                break
            await asyncio.sleep(0.05)
        killed_at = len(out.read_text(encoding="utf-8").splitlines()) if out.exists() else 0
        await asyncio.to_thread(cluster.remove_node, workers[0], False)
        summary = await batch
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
        cluster.shutdown()
    ids = [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()]
    twice = sum(c - 1 for c in Counter(ids).values() if c > 1)
    lost = len({t.id for t in tasks} - set(ids))
    ours, theirs = comparable(out), comparable(reference)
    differing = sum(ours.get(i) != theirs[i] for i in theirs)
    print(f"  node killed after {killed_at} results; batch finished in {wall:.1f} s ({n / wall:.0f} tasks/s)")
    print(f"  lost {lost}, written twice {twice}, differing from local {differing}, started again {summary.retried}")
    print(f"  ok {summary.ok}, failed {summary.failed}")
    if lost or twice or differing or summary.failed:
        sys.exit("FAILED: the killed-node run lost, doubled or changed results")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--kill-tasks", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=2, help="worker nodes in part 2 (one is killed)")
    parser.add_argument("--kill-at", type=float, default=0.3, help="fraction of results in when the node dies")
    parser.add_argument("--concurrency", "-c", type=int, default=16)
    parser.add_argument("--skip", choices=["1", "2"], help="skip a part")
    args = parser.parse_args()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    with tempfile.TemporaryDirectory(prefix="agentkit-batch-bench-") as tmp:
        if args.skip != "1":
            asyncio.run(part1(args.tasks, args.concurrency, Path(tmp)))
        if args.skip != "2":
            asyncio.run(part2(args.kill_tasks, args.nodes, args.kill_at, args.concurrency, Path(tmp)))


if __name__ == "__main__":
    main()
