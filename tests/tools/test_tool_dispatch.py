"""How a tool call is dispatched: worker thread or not, the timeout, and the one-call path of the loop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from agentkit import Agent, tool
from agentkit.errors import ToolTimeout, UserError
from agentkit.testing import ScriptedBackend

REPO = Path(__file__).resolve().parents[2]


def _thread_name() -> str:
    """Name the thread that runs this."""
    return threading.current_thread().name


async def test_sync_tools_run_in_a_worker_thread_by_default() -> None:
    assert await tool(_thread_name).acall({}) != threading.current_thread().name


async def test_thread_false_runs_on_the_event_loop_thread() -> None:
    t = tool(_thread_name, thread=False)
    assert t.thread is False
    assert await t.acall({}) == threading.current_thread().name


def test_thread_must_be_a_bool() -> None:
    with pytest.raises(UserError, match="thread must be True or False"):
        tool(_thread_name, thread="no")  # type: ignore[call-overload]


def test_retooling_keeps_thread_false() -> None:
    assert tool(tool(_thread_name, thread=False), name="other").thread is False


async def test_a_timeout_error_the_tool_raises_is_not_reported_as_our_deadline() -> None:
    async def flaky() -> str:
        """Fail like a socket timeout."""
        raise TimeoutError("upstream read timed out")

    with pytest.raises(TimeoutError, match="upstream") as info:
        await tool(flaky, timeout_s=30).acall({})
    assert not isinstance(info.value, ToolTimeout)


async def test_the_deadline_still_raises_tool_timeout() -> None:
    async def slow() -> str:
        """Take too long."""
        await asyncio.sleep(10)
        return "late"

    with pytest.raises(ToolTimeout, match=r"did not finish within 0\.05 s"):
        await tool(slow, timeout_s=0.05).acall({})


def test_one_call_in_a_step_runs_in_the_runs_task_and_reports_errors() -> None:
    def boom(x: int) -> str:
        """Fail."""
        raise RuntimeError(f"bad {x}")

    call = "<|tool_call>call:boom{x:3}<tool_call|><|tool_response>"
    agent = Agent(ScriptedBackend([call, "ok<turn|>"], chunk_size=1 << 20), tools=[tool(boom, thread=False)])
    result = agent.run("go")
    assert result.tool_calls[0].error == "boom raised RuntimeError: bad 3"
    assert result.messages[2]["content"] == {"error": "boom raised RuntimeError: bad 3"}


@pytest.mark.parametrize("n_calls", [1, 2])
def test_a_tool_raising_cancelled_error_itself_does_not_end_the_run(n_calls: int) -> None:
    async def quits() -> str:
        """Raise CancelledError without anyone cancelling."""
        raise asyncio.CancelledError()

    calls = "<|tool_call>call:quits{}<tool_call|>" * n_calls + "<|tool_response>"
    agent = Agent(ScriptedBackend([calls, "done<turn|>"], chunk_size=1 << 20), tools=[quits])
    result = agent.run("go")
    assert result.ok and result.output == "done"
    assert [c.error for c in result.tool_calls] == ["cancelled by the user"] * n_calls


SIGINT_SCRIPT = textwrap.dedent(
    """
    import asyncio
    from agentkit import Agent
    from agentkit.testing import ScriptedBackend

    async def wait() -> str:
        '''Wait until Ctrl-C.'''
        print("started", flush=True)
        await asyncio.sleep(30)
        return "woke"

    call = "<|tool_call>call:wait{}<tool_call|><|tool_response>"
    agent = Agent(ScriptedBackend([call, "never<turn|>"], chunk_size=1 << 20), tools=[wait])
    try:
        agent.run("wait")
    except KeyboardInterrupt:
        print("interrupted", [m["role"] for m in agent.messages], flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_in_agent_run_raises_keyboard_interrupt_and_closes_the_turn(tmp_path: Path) -> None:
    script = tmp_path / "ctrl_c.py"
    script.write_text(SIGINT_SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "interrupted ['user', 'assistant', 'tool', 'assistant']" in out, (out, err)
