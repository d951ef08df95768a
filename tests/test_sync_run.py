"""``Agent.run`` on the agent's own event loop: Ctrl-C cancels the request, the SIGINT handler is only borrowed.

The runner takes over SIGINT for the length of a run, and only from Python's default handler: a program's own
handler is left alone, and the default is back once the run is over. These run in this process (the
subprocess test in tests/tools/test_tool_dispatch.py sends a real Ctrl-C from outside).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from agentkit import Agent, tool
from agentkit.testing import ScriptedBackend

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

CALL = "<|tool_call>call:look{}<tool_call|><|tool_response>"


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """Python's own SIGINT handler for the test, whatever the test runner installed."""
    assert threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def test_the_run_borrows_the_default_handler_and_gives_it_back(default_sigint: None) -> None:
    seen: list[Any] = []

    @tool
    async def look() -> str:
        """Look at the SIGINT handler."""
        seen.append(signal.getsignal(signal.SIGINT))
        return "looked"

    agent = Agent(ScriptedBackend([CALL, "Done.<turn|>", CALL, "Again.<turn|>"], chunk_size=1 << 20), tools=[look])
    assert agent.run("look").output == "Done."
    assert agent.run("look again").output == "Again."
    assert len(seen) == 2 and all(h is not signal.default_int_handler and callable(h) for h in seen)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_program_s_own_handler_is_left_alone(default_sigint: None) -> None:
    calls: list[int] = []

    def mine(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)

    seen: list[Any] = []

    @tool
    async def look() -> str:
        """Look at the SIGINT handler, then raise SIGINT."""
        seen.append(signal.getsignal(signal.SIGINT))
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(0)
        return "looked"

    signal.signal(signal.SIGINT, mine)
    agent = Agent(ScriptedBackend([CALL, "Done.<turn|>"], chunk_size=1 << 20), tools=[look])
    result = agent.run("look")
    assert result.output == "Done." and result.tool_calls[0].result == "looked"
    assert seen == [mine] and calls == [signal.SIGINT]  # the program's handler ran; the request went on
    assert signal.getsignal(signal.SIGINT) is mine


def test_ctrl_c_cancels_the_request_closes_the_turn_and_the_agent_runs_again(default_sigint: None) -> None:
    @tool
    async def look() -> str:
        """Wait until interrupted."""
        signal.raise_signal(signal.SIGINT)  # Ctrl-C while the tool runs
        await asyncio.sleep(30)
        return "woke"

    agent = Agent(ScriptedBackend([CALL, "Back.<turn|>"], chunk_size=1 << 20), tools=[look])
    with pytest.raises(KeyboardInterrupt):
        agent.run("look")
    assert [m["role"] for m in agent.messages] == ["user", "assistant", "tool", "assistant"]
    assert agent.messages[2]["content"] == {"error": "cancelled by the user"}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert agent.run("still there?").output == "Back."  # the agent's loop survived the interrupt
