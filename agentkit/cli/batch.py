"""``agentkit batch``: many tasks from a file, locally or across a Ray cluster (``--ray``), resumable.

What a task is, the results file and the executors live in :mod:`agentkit.batch`; this module turns the command
line into a recipe for each task's agent and prints the outcome. The recipe is the one place the CLI builds an
agent for a batch: it is pickled to Ray workers and builds its backend, tools and MCP servers once per process.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkit.batch import (
    BatchSummary,
    BatchTask,
    LocalExecutor,
    ResultWriter,
    check_resume,
    failed_ids,
    read_done,
    read_tasks,
    run_batch,
)
from agentkit.errors import UserError

from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, agent_factory, resolve_backend_url, terminal_safe
from .config import Settings
from .schema import load_output_type

if TYPE_CHECKING:
    from agentkit import Agent
    from agentkit.assemble import AgentFactory
    from agentkit.batch import Executor

__all__ = [
    "BatchSummary",
    "BatchTask",
    "ResultWriter",
    "batch_command",
    "check_resume",
    "failed_ids",
    "read_done",
    "read_tasks",
    "run_batch",
]


@dataclasses.dataclass
class AgentRecipe:
    """How to build one task's agent from the command line's settings, in whichever process runs the task.

    Pickled as these fields only: the backend, tools and MCP servers are built on first use in each process
    (the driver for local batches, every Ray worker with ``--ray``) and shared by the tasks that run there.
    """

    settings: Settings  # with the backend URL already resolved, so workers never guess one
    approve: bool  # --yes: side effects are denied unless given, nobody is there to answer a question
    sessions_dir: Path | None  # --save-sessions (on Ray the driver writes them there, as they come back)
    output_type: Any = None
    _parts: tuple[AgentFactory, Any] | None = dataclasses.field(default=None, repr=False)

    def _build(self) -> tuple[AgentFactory, Any]:
        if self._parts is None:
            store = None
            if self.sessions_dir is not None:
                from agentkit import SessionStore

                store = SessionStore(self.sessions_dir)
            # One backend and one set of MCP servers, shared by every task's agent in this process; the tools
            # are built first, so a sandbox without bwrap fails before a backend is opened.
            self._parts = (agent_factory(self.settings), store)
        return self._parts

    def __call__(self) -> Agent:
        from agentkit import allow_all

        factory, store = self._build()
        approval = allow_all if self.approve else None
        return factory.agent(approval=approval, store=store, output_type=self.output_type)

    async def aclose(self) -> None:
        if self._parts is not None:
            factory, _ = self._parts
            self._parts = None
            await factory.aclose()

    def __getstate__(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "_parts"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _parts=None)


def _executor(args: argparse.Namespace) -> Executor:
    if args.ray is None:
        if args.ray_workers is not None:
            raise UserError("--ray-workers applies to --ray batches; add --ray [ADDRESS]")
        return LocalExecutor()
    from agentkit.batch import RayExecutor

    executor = RayExecutor(args.ray or None, workers=args.ray_workers, max_attempts=args.max_attempts)
    print(f"agentkit: running the tasks on {executor.describe()}", file=sys.stderr)
    return executor


def batch_command(args: argparse.Namespace, settings: Settings) -> int:
    input_path, output_path = Path(args.input), Path(args.output)
    if input_path.resolve() == output_path.resolve():
        raise UserError("the output file must differ from the task file")
    if args.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    if args.timeout <= 0:
        raise UserError("--timeout must be positive")
    if args.max_attempts < 1:
        raise UserError("--max-attempts must be at least 1")
    if args.progress_every <= 0:
        raise UserError("--progress-every must be a positive number of seconds")
    executor = _executor(args)
    output_type = load_output_type(args.schema) if getattr(args, "schema", None) else None
    tasks = read_tasks(input_path)
    check_resume(tasks, read_done(output_path), output_path)  # refused now, before a model is loaded
    sessions_dir = None
    if args.save_sessions:
        from agentkit import SessionStore

        sessions_dir = SessionStore().root
    # Resolved here, once: a worker on another node must not guess a backend, nor read a relative path from
    # wherever its process happens to run.
    workspace = settings.workspace.resolve() if settings.workspace is not None else None
    settings = dataclasses.replace(settings, backend_url=resolve_backend_url(settings), workspace=workspace)
    recipe = AgentRecipe(settings, approve=args.yes, sessions_dir=sessions_dir, output_type=output_type)

    async def main() -> BatchSummary:
        try:
            return await run_batch(
                tasks,
                output_path,
                recipe,
                concurrency=args.concurrency,
                timeout_s=args.timeout,
                retry_failed=args.retry_failed,
                executor=executor,
                events=sys.stdout if args.json else None,
                progress_interval_s=args.progress_every,
            )
        finally:
            await recipe.aclose()

    try:
        summary = asyncio.run(main())
    except KeyboardInterrupt:
        print(
            f"\nagentkit: interrupted; finished results are in {output_path}. Run the same command to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    retried = f", {summary.retried} restarted after a worker died" if summary.retried else ""
    print(
        f"{summary.ok} ok, {summary.failed} failed, {summary.skipped} skipped (already in {output_path}){retried}",
        file=sys.stderr,
    )
    # The exit status is about the results file, not only this run: a rerun that skipped failed tasks has not
    # made them succeed, and a script checking $? must not think the batch is done.
    remaining = failed_ids(tasks, output_path)
    if remaining:
        shown = terminal_safe(", ".join(remaining[:5]) + (" ..." if len(remaining) > 5 else ""))
        print(
            f"{len(remaining)} task(s) failed in {output_path} ({shown}); "
            "rerun the same command with --retry-failed to try them again",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK
