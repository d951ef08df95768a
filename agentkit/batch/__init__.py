"""Batches: many tasks from a file, results appended one line per task, resumable, locally or on Ray.

One code path for what a task is (:mod:`.files` parses task and results files, :mod:`.task` runs one task to its
record) and two executors that run tasks: :class:`LocalExecutor` in this process's event loop and
:class:`RayExecutor` across a Ray cluster (``pip install -e '.[ray]'`` in the agentkit checkout).
:func:`run_batch` drives either::

    from agentkit import Agent
    from agentkit.backends import backend_from_url
    from agentkit.batch import once_per_worker, read_tasks, run_batch

    backend = once_per_worker(lambda: backend_from_url("vllm://gpu-box:8000/google/gemma-4-31B-it"))
    asyncio.run(run_batch(read_tasks(Path("tasks.jsonl")), Path("results.jsonl"), lambda: Agent(backend()),
                          executor="ray", concurrency=256))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .files import BatchSummary, BatchTask, ResultWriter, check_resume, failed_ids, read_done, read_tasks
from .progress import BatchProgress, ProgressSnapshot
from .runner import Executor, LocalExecutor, run_batch
from .task import AgentFactory, once_per_worker, preflight, run_task

if TYPE_CHECKING:
    from .ray_executor import RayExecutor

__all__ = [
    "AgentFactory",
    "BatchProgress",
    "BatchSummary",
    "BatchTask",
    "Executor",
    "LocalExecutor",
    "ProgressSnapshot",
    "RayExecutor",
    "ResultWriter",
    "check_resume",
    "failed_ids",
    "once_per_worker",
    "preflight",
    "read_done",
    "read_tasks",
    "run_batch",
    "run_task",
]


def __getattr__(name: str) -> Any:
    if name == "RayExecutor":  # imported on use: Ray itself is imported only when a batch runs on it
        from .ray_executor import RayExecutor

        return RayExecutor
    raise AttributeError(f"module 'agentkit.batch' has no attribute {name!r}")
