"""``agentkit batch``: many tasks against one backend, resumable, never losing finished work.

The output file is the only state. Each result is written as one complete line with a single ``write``
and flushed as soon as its task ends, so an interrupted batch leaves every finished task on disk; a
rerun reads the file, drops a half-written last line if a crash left one, and skips the ids it finds.
A failing task becomes an ``"ok": false`` record instead of stopping the others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from agentkit.errors import AgentkitError, UserError

from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    agent_factory,
    describe_stop,
    terminal_safe,
    to_jsonable,
)
from .config import Settings
from .schema import load_output_type

if TYPE_CHECKING:
    from agentkit import Agent

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


@dataclass(frozen=True, slots=True)
class BatchTask:
    id: str
    task: str


@dataclass(slots=True)
class BatchSummary:
    total: int = 0
    skipped: int = 0
    ok: int = 0
    failed: int = 0


def _parse_line(raw: str, path: Path, number: int) -> tuple[str | None, str]:
    """``(explicit id or None, task)`` of one line: a JSON object, a JSON string, or the plain text itself.

    A line that starts with ``{`` is meant as JSON, so a broken one is an error rather than a task made of JSON
    text; any other line that is not exactly one JSON string is the task as written (plain-text question lists
    work as they are).
    """
    text = raw.strip()
    if text.startswith("{"):
        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(
                f'{path}:{number}: starts like JSON but is not valid JSON ({exc.msg}); write {{"task": "..."}}, '
                "or the task as plain text"
            ) from exc
        if not (isinstance(item, dict) and isinstance(item.get("task"), str)):
            raise UserError(f'{path}:{number}: a JSON line needs a "task" string: {{"id": "q1", "task": "..."}}')
        return (None if item.get("id") is None else str(item["id"])), item["task"]
    if text.startswith('"'):
        try:
            item = json.loads(text)
        except json.JSONDecodeError:
            item = None
        if isinstance(item, str):
            return None, item
    return None, text


def read_tasks(path: Path) -> list[BatchTask]:
    """Parse the task file, one task per line: ``{"id": ..., "task": ...}``, a JSON string, or plain text.

    Lines without an explicit id take their line number as id.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read tasks from {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8") from exc
    tasks: list[BatchTask] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        given_id, text = _parse_line(raw, path, number)
        task_id = given_id if given_id is not None else str(number)
        if not text.strip():
            raise UserError(f"{path}:{number}: the task is empty")
        if task_id in seen:
            raise UserError(f"{path}:{number}: duplicate id {task_id!r}; ids must be unique so resuming can skip them")
        seen.add(task_id)
        tasks.append(BatchTask(task_id, text))
    if not tasks:
        raise UserError(f'{path} has no tasks: write one task per line, as plain text or {{"id": "q1", "task": "..."}}')
    return tasks


def _is_result(record: Any) -> bool:
    return isinstance(record, dict) and "id" in record and "ok" in record


def read_done(path: Path) -> dict[str, dict[str, Any]]:
    """Results already in the output, by id (the last record of an id wins).

    A last line without its newline was cut off by a crash mid-write; it is removed from the file here
    so appending continues on a clean line boundary. A file that holds anything else (notes, a task file
    given as ``-o`` by mistake) is refused before a byte of it changes: appending to it, or taking its
    lines for finished tasks, would damage it or silently skip work.
    """
    if not path.exists():
        return {}
    if not path.is_file():
        raise UserError(f"--output {path} is not a file; give a results file such as results.jsonl")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read the results file {path}: {exc}") from exc
    cut = len(data)
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        if not data[cut:].startswith(b'{"id": '):
            raise UserError(
                f"{path} is not an agentkit batch results file (its last line is not a result); it was left "
                "untouched. Give --output a new file or one written by agentkit batch"
            )
    done: dict[str, dict[str, Any]] = {}
    for number, raw in enumerate(data[:cut].decode("utf-8", "replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            record = None
        if not _is_result(record):
            raise UserError(
                f"{path}:{number} is not an agentkit batch result; the file was left untouched. "
                "Give --output a new file or one written by agentkit batch"
            )
        done[str(record["id"])] = record
    if cut < len(data):
        with path.open("r+b") as fh:
            fh.truncate(cut)
    return done


def check_resume(tasks: Sequence[BatchTask], done: dict[str, dict[str, Any]], output: Path) -> None:
    """Refuse to resume when an id in the output belongs to another task: skipping it would lose that task.

    Bare-string lines take their line number as id, so inserting a line above them renumbers the rest.
    """
    moved = [t.id for t in tasks if t.id in done and done[t.id].get("task", t.task) != t.task]
    if moved:
        shown = ", ".join(repr(i) for i in moved[:5]) + (" ..." if len(moved) > 5 else "")
        raise UserError(
            f"{output} has results for id(s) {shown} but for other task text, so resuming would skip tasks that "
            'never ran. Give each task an explicit "id" (bare lines are numbered by position), or use a new --output'
        )


class ResultWriter:
    """Appends one JSON line per result: one ``write`` call, flushed at once, fsynced on close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: TextIO = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write results to {path}: {exc}") from exc

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


async def _run_one(make_agent: Callable[[], Agent], task: BatchTask, timeout_s: float) -> dict[str, Any]:
    start = time.perf_counter()
    record: dict[str, Any] = {"id": task.id, "task": task.task}
    try:
        agent = make_agent()
        result = await asyncio.wait_for(agent.arun(task.task), timeout_s)
    except TimeoutError:
        record.update(ok=False, error=f"timed out after {timeout_s:g}s", error_type="Timeout")
    except AgentkitError as exc:
        record.update(ok=False, error=str(exc), error_type=type(exc).__name__)
    except Exception as exc:  # one broken task must not stop the batch; the record says what happened
        record.update(ok=False, error=f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__)
    else:
        record.update(
            ok=result.ok,
            output=to_jsonable(result.output),  # a str, or the --schema answer as a JSON value
            stop_reason=result.stop_reason,
            # Only a saved session (--save-sessions) has an id worth recording: `agentkit sessions show ID`.
            session_id=result.session_id if agent.store is not None else None,
            usage=to_jsonable(result.usage),
            tool_calls=len(result.tool_calls),
            call_counts=to_jsonable(result.call_counts),
        )
        if not result.ok:
            record["error"] = f"the run did not finish: {describe_stop(result.stop_reason)}"
    record["duration_s"] = round(time.perf_counter() - start, 3)
    return record


def _drop_records(path: Path, ids: set[str]) -> None:
    """Rewrite the results file (atomically) without the records of ``ids``, which are about to run again.

    Retried tasks then appear once in the output, with their new result. An interruption before a retried task
    finishes leaves it absent, so the next run picks it up; its old failure is never shown as its result twice.
    """
    from agentkit.sessions import atomic_write_text

    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not (_is_result(record) and str(record["id"]) in ids):
            kept.append(line)
    atomic_write_text(path, "".join(kept), private=False)  # the results file keeps its mode


def failed_ids(tasks: Sequence[BatchTask], output: Path) -> list[str]:
    """The tasks whose recorded result in ``output`` is a failure (what ``--retry-failed`` would run again)."""
    done = read_done(output)
    return [t.id for t in tasks if t.id in done and not done[t.id].get("ok")]


async def run_batch(
    tasks: Sequence[BatchTask],
    output: Path,
    make_agent: Callable[[], Agent],
    *,
    concurrency: int = 4,
    timeout_s: float = 600.0,
    retry_failed: bool = False,
    console: Console | None = None,
) -> BatchSummary:
    """Run the tasks not yet in ``output``, ``concurrency`` at a time, appending each result as it ends."""
    done = read_done(output)
    todo = [t for t in tasks if t.id not in done or (retry_failed and not done[t.id].get("ok"))]
    summary = BatchSummary(total=len(tasks), skipped=len(tasks) - len(todo))
    replaced = {t.id for t in todo if t.id in done}
    if replaced:
        _drop_records(output, replaced)
    writer = ResultWriter(output)
    queue: asyncio.Queue[BatchTask] = asyncio.Queue()
    for t in todo:
        queue.put_nowait(t)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"),
        TimeElapsedColumn(),
        console=console or Console(file=sys.stderr),
        transient=False,
    )
    bar = progress.add_task("batch", total=len(todo), ok=0, failed=0)

    async def worker() -> None:
        while True:
            try:
                task = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            record = await _run_one(make_agent, task, timeout_s)
            writer.write(record)
            if record["ok"]:
                summary.ok += 1
            else:
                summary.failed += 1
            progress.update(bar, advance=1, ok=summary.ok, failed=summary.failed)

    try:
        with progress:
            await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(todo) or 1)))))
    finally:
        writer.close()
    return summary


def batch_command(args: argparse.Namespace, settings: Settings) -> int:
    from agentkit import allow_all

    input_path, output_path = Path(args.input), Path(args.output)
    if input_path.resolve() == output_path.resolve():
        raise UserError("the output file must differ from the task file")
    if args.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    if args.timeout <= 0:
        raise UserError("--timeout must be positive")
    output_type = load_output_type(args.schema) if getattr(args, "schema", None) else None
    tasks = read_tasks(input_path)
    check_resume(tasks, read_done(output_path), output_path)  # refused now, before a model is loaded
    factory = agent_factory(settings)  # one backend and one set of MCP servers, shared by every task's agent
    backend = factory.backend
    store = None
    if args.save_sessions:
        from agentkit import SessionStore

        store = SessionStore()

    def make_agent() -> Agent:
        # Side effects are denied unless --yes: nobody is there to answer a question.
        return factory.agent(approval=allow_all if args.yes else None, store=store, output_type=output_type)

    async def main() -> BatchSummary:
        try:
            await backend.check()  # an unreachable backend would fail every task; say so once instead
            return await run_batch(
                tasks,
                output_path,
                make_agent,
                concurrency=args.concurrency,
                timeout_s=args.timeout,
                retry_failed=args.retry_failed,
            )
        finally:
            await factory.aclose()

    try:
        summary = asyncio.run(main())
    except KeyboardInterrupt:
        print(
            f"\nagentkit: interrupted; finished results are in {output_path}. Run the same command to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(
        f"{summary.ok} ok, {summary.failed} failed, {summary.skipped} skipped (already in {output_path})",
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
