"""The batch driver: which tasks still need running, one writer for their results, progress; executors run them.

An executor takes the tasks to run and yields their result records as they finish; it first checks that tasks
can run at all (:func:`~agentkit.batch.task.preflight`), so a missing ``bwrap`` or an unreachable backend fails
the batch once, before any task, instead of failing every task. Everything else — resume, ``retry_failed``,
writing each id exactly once, progress — happens here, in one place, whatever the executor. So does writing
the sessions Ray workers send back (``--save-sessions``): each just before its result line, and only for a
result that is written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from rich.console import Console

from agentkit.errors import UserError

from .files import BatchSummary, BatchTask, ResultWriter, drop_records, read_done
from .progress import BatchProgress
from .task import SESSION_KEY, AgentFactory, preflight, run_task, save_returned_session

__all__ = ["Executor", "LocalExecutor", "run_batch"]


class Executor(Protocol):
    """Runs batch tasks somewhere and yields their result records (dicts with ``id`` and ``ok``) as they end.

    ``run`` raises before yielding anything when tasks cannot run (the preflight). A record may carry
    ``attempts`` (> 1) when the task was started again after the worker running it died.
    """

    def run(
        self, tasks: Sequence[BatchTask], make_agent: AgentFactory, *, concurrency: int, timeout_s: float
    ) -> AsyncIterator[dict[str, Any]]: ...


class LocalExecutor:
    """Runs tasks in this process's event loop, ``concurrency`` at a time."""

    async def run(
        self, tasks: Sequence[BatchTask], make_agent: AgentFactory, *, concurrency: int, timeout_s: float
    ) -> AsyncIterator[dict[str, Any]]:
        await preflight(make_agent)
        queue = deque(tasks)
        results: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()

        async def worker() -> None:
            try:
                while queue:
                    results.put_nowait(await run_task(make_agent, queue.popleft(), timeout_s))
            except Exception as exc:  # run_task records a task's own errors; this is a bug: stop the batch
                results.put_nowait(exc)

        workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(tasks))))]
        try:
            for _ in range(len(tasks)):
                item = await results.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)


def _executor(executor: Literal["local", "ray"] | Executor) -> Executor:
    if executor == "local":
        return LocalExecutor()
    if executor == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor()
    if isinstance(executor, str):
        raise UserError(f"unknown batch executor {executor!r}: use 'local', 'ray' or an executor object")
    return executor


async def run_batch(
    tasks: Sequence[BatchTask],
    output: Path,
    make_agent: AgentFactory,
    *,
    concurrency: int = 4,
    timeout_s: float = 600.0,
    retry_failed: bool = False,
    executor: Literal["local", "ray"] | Executor = "local",
    console: Console | None = None,
    events: TextIO | None = None,
    progress_interval_s: float = 5.0,
) -> BatchSummary:
    """Run the tasks not yet in ``output`` and append each result as it ends; the summary says what happened.

    ``make_agent`` builds the agent for one task. With ``executor="ray"`` (or a ``RayExecutor``) it is pickled
    and sent to every worker, so it must not hold a live backend: build that with
    :class:`~agentkit.batch.once_per_worker`. ``events`` gets periodic JSON progress events.
    """
    output = Path(output)
    done = read_done(output)
    todo = [t for t in tasks if t.id not in done or (retry_failed and not done[t.id].get("ok"))]
    summary = BatchSummary(total=len(tasks), skipped=len(tasks) - len(todo))
    if not todo:
        if events is not None:  # a program reading the events learns the batch is complete, as after a run
            BatchProgress.nothing_to_do(summary, events)
        return summary
    runner = _executor(executor)
    replaced = {t.id for t in todo if t.id in done}
    writer: ResultWriter | None = None  # opened with the first result: a failed preflight leaves no trace
    try:
        with BatchProgress(summary, len(todo), console=console, events=events, interval_s=progress_interval_s) as bar:
            records = runner.run(todo, make_agent, concurrency=concurrency, timeout_s=timeout_s)
            async with contextlib.aclosing(records):  # type: ignore[type-var]
                async for record in records:
                    if writer is None:
                        if replaced:  # retried tasks' old records go now, so each id stays once in the file
                            drop_records(output, replaced)
                        writer = ResultWriter(output)
                    returned = record.pop(SESSION_KEY, None)
                    if str(record["id"]) in writer.written:
                        continue  # the same id again (a retry raced its original): written once already
                    if returned is not None:  # before the result line: a result never names a missing session
                        save_returned_session(record, returned)
                    writer.write(record)
                    summary.retried += max(0, int(record.get("attempts", 1)) - 1)
                    bar.finished(bool(record["ok"]))
    finally:
        if writer is not None:
            writer.close()
    return summary
