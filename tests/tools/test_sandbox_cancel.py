"""A sandbox run cancelled while its process is being started (Ctrl-C as a call begins) ends at once.

Cancelling asyncio's ``create_subprocess_exec`` midway can leave its clean-up waiting forever for pipes that
were never connected (CPython 3.11): the interrupt was lost, and in an agent the call hung until the tool's
timeout (45 s), after which the run went on as if nothing had been pressed.
"""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from agentkit.tools import PythonSandbox

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


async def test_cancelled_while_starting_the_run_ends_and_leaves_no_process() -> None:
    box = PythonSandbox(timeout_s=30)
    before = _children()
    for _ in range(3):  # the window is the start itself; each round lands the cancel there
        task = asyncio.create_task(box.arun("import time; time.sleep(20)"))
        await asyncio.sleep(0)  # the run is now awaiting its process's start
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(20):  # a bound for the old hang, not a measurement
                await task
    assert _children() - before == set()  # no sandbox left behind (bwrap would be a child of this process)


def _children() -> set[str]:
    return {p for p in os.listdir("/proc") if p.isdigit() and _parent(p) == os.getpid()}


def _parent(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
