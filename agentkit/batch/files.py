"""The batch files: the task file (what to run) and the results file (what ran), the only state a batch has.

Each result is written as one complete line with a single ``write`` on a file opened for appending, and handed
to the operating system as soon as its task ends, so a batch killed at any moment leaves every finished task on
disk; a rerun reads the file, drops a half-written last line if a crash left one, and skips the ids it finds.
The same files serve every executor: the local one and Ray's write through the one :class:`ResultWriter` on
the driver.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from agentkit.errors import UserError
from agentkit.sessions import json_text

__all__ = [
    "BatchSummary",
    "BatchTask",
    "ResultWriter",
    "check_resume",
    "drop_records",
    "failed_ids",
    "read_done",
    "read_tasks",
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
    retried: int = 0  # task attempts run again because the worker running them died


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
        except RecursionError:  # json's decoder recurses once per nesting level
            raise UserError(f'{path}:{number}: nested too deeply to be a task; write {{"task": "..."}}') from None
        if not (isinstance(item, dict) and isinstance(item.get("task"), str)):
            raise UserError(f'{path}:{number}: a JSON line needs a "task" string: {{"id": "q1", "task": "..."}}')
        return (None if item.get("id") is None else str(item["id"])), item["task"]
    if text.startswith('"'):
        try:
            item = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
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
        except (json.JSONDecodeError, RecursionError):  # a line nested too deeply is no result either
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
    """Appends one JSON line per result: one ``write`` call, flushed at once, fsynced on close.

    The one writer of a batch lives on the driver, whatever runs the tasks; it refuses a second record for an id
    it already wrote (a result that arrives twice, from a retry racing its original, is dropped, not doubled).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A new results file is the owner's only, as a saved session is: it holds every task and answer,
            # and whatever the tools read (a .env, a private repository). One that exists keeps its mode.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fh: TextIO = os.fdopen(fd, "a", encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write results to {path}: {exc}") from exc
        self.written: set[str] = set()

    def write(self, record: dict[str, Any]) -> bool:
        """Append ``record``; False (and nothing written) when its id was already written by this writer."""
        task_id = str(record["id"])
        if task_id in self.written:
            return False
        self._fh.write(json_text(record) + "\n")  # a lone surrogate in a record is escaped, not an error
        self._fh.flush()
        self.written.add(task_id)
        return True

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


def drop_records(path: Path, ids: set[str]) -> None:
    """Rewrite the results file (atomically) without the records of ``ids``, which are about to run again.

    Retried tasks then appear once in the output, with their new result. An interruption before a retried task
    finishes leaves it absent, so the next run picks it up; its old failure is never shown as its result twice.
    """
    from agentkit.sessions import atomic_write_text

    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            record = None
        if not (_is_result(record) and str(record["id"]) in ids):
            kept.append(line)
    atomic_write_text(path, "".join(kept), private=False)  # the results file keeps its mode


def failed_ids(tasks: Sequence[BatchTask], output: Path) -> list[str]:
    """The tasks whose recorded result in ``output`` is a failure (what ``--retry-failed`` would run again)."""
    done = read_done(output)
    return [t.id for t in tasks if t.id in done and not done[t.id].get("ok")]
