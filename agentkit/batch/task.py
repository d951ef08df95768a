"""What one batch task is when it runs, the same for every executor: its result record, timeout and errors.

:func:`run_task` turns a task into the record written to the results file; the local executor awaits it in the
driver's event loop, the Ray executor in a worker actor's, so a task behaves alike wherever it runs.
:func:`preflight` is what a worker checks once before taking tasks (the tools can be built — a sandbox needs
``bwrap`` — and the backend answers). :func:`once_per_worker` gives a factory a resource built once per process
(a backend and its connection pool) that is never pickled, which is what a factory sent to Ray workers needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from agentkit.errors import AgentkitError, SessionError, UserError
from agentkit.events import describe_stop, to_jsonable
from agentkit.sessions import Session, SessionStore

from .files import BatchTask

if TYPE_CHECKING:
    from agentkit import Agent

__all__ = [
    "SESSION_KEY",
    "AgentFactory",
    "HeldSessions",
    "close_worker_resources",
    "once_per_worker",
    "preflight",
    "run_task",
    "save_returned_session",
]

AgentFactory = Callable[[], "Agent"]
"""Builds the agent for one task (called once per task, in the process that runs it)."""

T = TypeVar("T")


SESSION_KEY = "_session"
"""A record's key for the session a worker sends back (``{"root": ..., "session": ...}``); never written out."""


async def run_task(
    make_agent: AgentFactory, task: BatchTask, timeout_s: float, *, return_session: bool = False
) -> dict[str, Any]:
    """Run one task to its result record; never raises for the task's own failures (the record says them).

    ``return_session``: the agent's session (when it has a store) is kept in memory and sent back in the record
    under :data:`SESSION_KEY` for the driver to write, instead of being written on the machine that ran it.
    """
    start = time.perf_counter()
    record: dict[str, Any] = {"id": task.id, "task": task.task}
    held: HeldSessions | None = None
    agent: Agent | None = None
    try:
        agent = make_agent()
        if return_session and agent.store is not None:
            agent.store = held = HeldSessions(agent.store.root)
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
    if held is not None and agent is not None and agent.session.revision > 0:  # saved at least once, as on disk
        record[SESSION_KEY] = {"root": str(held.root), "session": agent.session.to_dict()}
    return record


class HeldSessions(SessionStore):
    """A worker's session store that writes nothing: the session stays in memory and goes back to the driver.

    The agent still "saves" after every step (the revision counts them) and runs without a lock, as a fresh
    batch session is written by no one else; ``root`` is where the driver writes it.
    """

    def save(self, session: Session) -> None:
        session.updated_at = time.time()
        session.revision += 1

    def revision(self, session_id: str) -> int | None:
        return None

    def exists(self, session_id: str) -> bool:
        return False

    @contextlib.asynccontextmanager
    async def lock(self, session_id: str, *, timeout_s: float = 30.0) -> AsyncIterator[None]:
        yield


def save_returned_session(record: dict[str, Any], returned: dict[str, Any]) -> None:
    """Write a session a worker sent back (atomically, as every session is), on the driver; a session that
    cannot be written makes the record a failure that says so (its result would point to nothing)."""
    try:
        SessionStore(returned["root"]).save(Session.from_dict(returned["session"], source="a returned session"))
    except (SessionError, UserError) as exc:
        record.update(
            ok=False,
            error=f"the task ran, but its session could not be saved: {exc}",
            error_type=type(exc).__name__,
            session_id=None,
        )


async def preflight(make_agent: AgentFactory) -> None:
    """Raise the error every task would meet: tools that cannot be built here, a backend that does not answer.

    Building the agent builds its tools, so a sandbox without ``bwrap`` raises ``SandboxUnavailable`` here; the
    backend's ``check()`` raises ``BackendUnavailable``/``ModelNotFound`` with what to do.
    """
    agent = make_agent()
    await agent.backend.check()


class once_per_worker(Generic[T]):  # lower case: it reads like a function, backend = once_per_worker(build)
    """``build()`` run at most once per process, on first call; the value is never pickled.

    A factory sent to Ray workers is pickled, and a live backend (an HTTP connection pool, a loaded model) must
    not be: ``backend = once_per_worker(lambda: backend_from_url(URL))`` then ``lambda: Agent(backend())`` gives
    each worker process one backend shared by all its tasks. A value with an async ``aclose`` is closed by
    :func:`close_worker_resources` when the worker finishes.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._built = False
        self._lock = threading.Lock()

    def __call__(self) -> T:
        if not self._built:
            with self._lock:
                if not self._built:
                    self._value = self._build()
                    self._built = True
                    _BUILT.append(self)
        return self._value  # type: ignore[return-value]

    def __getstate__(self) -> dict[str, Any]:
        return {"build": self._build}  # the value stays in the process that built it

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["build"])  # type: ignore[misc]

    async def aclose(self) -> None:
        value, self._value, self._built = self._value, None, False
        close: Callable[[], Awaitable[Any]] | None = getattr(value, "aclose", None)
        if callable(close):
            await close()


_BUILT: list[once_per_worker[Any]] = []


async def close_worker_resources() -> None:
    """Close what :class:`once_per_worker` built in this process (a worker's last act)."""
    while _BUILT:
        await _BUILT.pop().aclose()
