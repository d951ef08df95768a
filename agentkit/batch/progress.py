"""Progress of a long batch: a live bar for people, periodic JSON events for programs.

Both show the same numbers, computed here once: done, ok, failed, retried, the rate since the start and the time
left at that rate. The bar draws on stderr only where it is a terminal; the JSON events (``--json``) go to their
own stream every ``interval_s`` seconds and once at the end, so a supervisor can watch a 100k-task run.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .files import BatchSummary

__all__ = ["BatchProgress", "ProgressSnapshot"]


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    done: int
    total: int
    ok: int
    failed: int
    retried: int
    elapsed_s: float
    rate_per_s: float  # tasks finished per second since the start
    eta_s: float | None  # seconds left at that rate; None before the first task ends

    def as_event(self, kind: str = "batch_progress") -> dict[str, Any]:
        return {
            "type": kind,
            "done": self.done,
            "total": self.total,
            "ok": self.ok,
            "failed": self.failed,
            "retried": self.retried,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_per_s": round(self.rate_per_s, 3),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
        }


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA -"
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"ETA {hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"ETA {rest // 60}:{rest % 60:02d}"


class BatchProgress:
    """Counts finished tasks for ``summary`` and shows them: ``with BatchProgress(...) as p: p.finished(ok)``."""

    def __init__(
        self,
        summary: BatchSummary,
        todo: int,
        *,
        console: Console | None = None,
        events: TextIO | None = None,
        interval_s: float = 5.0,
    ) -> None:
        self.summary = summary
        self.todo = todo
        self._events = events
        self._interval_s = interval_s
        self._start = time.monotonic()
        self._last_event = self._start
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/]"),
            TextColumn("{task.fields[rate]}/s {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console or Console(file=sys.stderr),
            transient=False,
        )
        self._task = self._bar.add_task("batch", total=todo, ok=0, failed=0, rate="0.0", eta=_eta(None))

    @staticmethod
    def nothing_to_do(summary: BatchSummary, events: TextIO) -> None:
        """The one event of a batch whose tasks are all in the output already: finished, all skipped."""
        snap = ProgressSnapshot(0, 0, 0, 0, 0, 0.0, 0.0, 0.0)
        events.write(json.dumps(snap.as_event("batch_finished") | {"skipped": summary.skipped}) + "\n")
        events.flush()

    def snapshot(self) -> ProgressSnapshot:
        s = self.summary
        done = s.ok + s.failed
        elapsed = time.monotonic() - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.todo - done) / rate if rate > 0 else None
        return ProgressSnapshot(done, self.todo, s.ok, s.failed, s.retried, elapsed, rate, eta)

    def finished(self, ok: bool) -> None:
        """One task's result was written."""
        if ok:
            self.summary.ok += 1
        else:
            self.summary.failed += 1
        self.refresh()

    def refresh(self) -> None:
        snap = self.snapshot()
        self._bar.update(
            self._task,
            completed=snap.done,
            ok=snap.ok,
            failed=snap.failed,
            rate=f"{snap.rate_per_s:.1f}",
            eta=_eta(snap.eta_s),
        )
        now = time.monotonic()
        if self._events is not None and now - self._last_event >= self._interval_s:
            self._last_event = now
            self._emit(snap.as_event())

    def _emit(self, event: dict[str, Any]) -> None:
        assert self._events is not None
        self._events.write(json.dumps(event) + "\n")
        self._events.flush()

    def __enter__(self) -> BatchProgress:
        self._bar.start()
        if self._events is not None:
            self._emit(self.snapshot().as_event())  # one at the start: the total is known at once
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self._bar.stop()
        if self._events is not None and exc_type is None:  # a batch that failed has no summary to give
            self._emit(self.snapshot().as_event("batch_finished") | {"skipped": self.summary.skipped})
