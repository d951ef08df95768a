"""Run a coroutine to completion on an agent's own event loop, for the synchronous ``Agent.run``.

What ``asyncio.Runner.run`` does, minus its per-call bookkeeping (a context copy, a fresh handler object, the
running-loop checks): it was a tenth of the loop's own time per request. Ctrl-C keeps Runner's behaviour: the
first one cancels the request (so it is closed and saved as cancelled) and then raises ``KeyboardInterrupt``; a
second one, while the cancellation is still unwinding, raises at once.

The handler is read and set through ``_signal``, the C module the ``signal`` module wraps: ``signal.signal`` and
``signal.getsignal`` turn every handler they return into an enum member where they can, which for a function
means a failed enum lookup and a caught ``ValueError``, 8 µs of each run's 15 µs of set-up here.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

try:
    from _signal import getsignal as _getsignal
    from _signal import signal as _setsignal
except ImportError:  # an interpreter without CPython's _signal: the public wrappers do the same, slower
    from signal import getsignal as _getsignal
    from signal import signal as _setsignal

__all__ = ["LoopRunner"]

T = TypeVar("T")


class LoopRunner:
    """One event loop for an agent's life: backends keep connection pools bound to it across runs."""

    def __init__(self) -> None:
        self._runner = asyncio.Runner()
        self._loop = self._runner.get_loop()
        self._task: asyncio.Task[Any] | None = None
        self._interrupts = 0

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self._interrupts += 1
        task = self._task
        if self._interrupts == 1 and task is not None and not task.done():
            task.cancel()
            self._loop.call_soon_threadsafe(lambda: None)  # wake the loop if it sleeps in select()
            return
        raise KeyboardInterrupt()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        task: asyncio.Task[T] = self._loop.create_task(coro)
        self._task = task
        self._interrupts = 0
        handle = (
            threading.current_thread() is threading.main_thread()
            and _getsignal(signal.SIGINT) is signal.default_int_handler
        )
        if handle:
            try:
                _setsignal(signal.SIGINT, self._on_sigint)
            except ValueError:  # an interpreter whose main thread cannot take signals
                handle = False
        try:
            return self._loop.run_until_complete(task)
        except asyncio.CancelledError:
            if self._interrupts and task.uncancel() == 0:
                raise KeyboardInterrupt() from None
            raise
        finally:
            self._task = None
            if handle and _getsignal(signal.SIGINT) == self._on_sigint:
                _setsignal(signal.SIGINT, signal.default_int_handler)

    def close(self) -> None:
        self._runner.close()
