"""Leaving the interpreter cleanly after ``torch.compile``: what compiling left in torch is freed first.

A compilation leaves fake tensors behind: in dynamo's caches on the compiled code objects, and in class
attributes (``torch._decomp.decompositions_for_rng.PhiloxStateTracker`` keeps the last AOT compilation's
random-number state). Their fake mode maps constant storages by ``StorageWeakRef``. Left to the interpreter's
teardown, they are freed after ``torch.storage`` has been cleared, and every ``StorageWeakRef.__del__`` then
prints ``Exception ignored in ... AttributeError: 'NoneType' object has no attribute '_free_weak_ref'`` on
stderr (26 of them ended each full test run). So an exit hook drops both while torch is still whole and
collects them. A compilation still running at exit (on the engine's daemon thread) holds dynamo's compile lock;
the hook then leaves the state alone rather than pull it from under the compiler.

Importing this module imports nothing of torch; the hook does nothing in a process that never compiled.
"""

from __future__ import annotations

import atexit
import gc
import sys

__all__ = ["release_compile_state"]


def release_compile_state() -> None:
    """Drop what the last compilation left in torch's class attributes (idempotent; an exit hook)."""
    rng = sys.modules.get("torch._decomp.decompositions_for_rng")
    if rng is None:
        return
    lock = getattr(sys.modules.get("torch._dynamo.convert_frame"), "compile_lock", None)
    if lock is not None and not lock.acquire(blocking=False):
        return  # compiling right now, on another thread
    try:
        rng.PhiloxStateTracker.reset()
        dynamo = sys.modules.get("torch._dynamo")
        if dynamo is not None:
            dynamo.reset()  # the compiled code's caches and guards
    finally:
        if lock is not None:
            lock.release()
    gc.collect()


atexit.register(release_compile_state)
