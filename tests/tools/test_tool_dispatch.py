"""How a tool call is dispatched: worker thread or not, the timeout, and the one-call path of the loop."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import textwrap
import threading
import typing
from pathlib import Path
from typing import Annotated, Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentkit import Agent, gemma4, tool
from agentkit.errors import ToolTimeout, UserError
from agentkit.testing import ScriptedBackend
from agentkit.tools.runtime import ToolArgumentError
from agentkit.toolsets import callable_name

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


_VALIDATED: list[int] = []


def _counted(value: int) -> int:
    _VALIDATED.append(value)
    return value


def square(n: Annotated[int, pydantic.AfterValidator(_counted)]) -> int:
    """Square a number."""
    return n * n


def test_the_agent_validates_each_call_once() -> None:
    """Validation runs before approval and its result is what the tool gets: not validated again to run it."""
    _VALIDATED.clear()

    call = "<|tool_call>call:square{n:7}<tool_call|>"
    agent = Agent(ScriptedBackend([call, "49<turn|>"], chunk_size=1 << 20), tools=[tool(square, thread=False)])
    result = agent.run("go")
    assert [c.result for c in result.tool_calls] == [49]
    assert _VALIDATED == [7]


def test_declaring_a_tool_reads_its_signature_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The declaration and the validator come from one walk over the signature and hints."""
    walked: list[object] = []
    signature, hints = inspect.signature, typing.get_type_hints

    def count_signature(fn: Any, *args: Any, **kwargs: Any) -> inspect.Signature:
        walked.append(("signature", fn))
        return signature(fn, *args, **kwargs)

    def count_hints(obj: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        walked.append(("hints", obj))
        return hints(obj, *args, **kwargs)

    def lookup(query: str, limit: int = 5) -> str:
        """Look something up."""
        return query

    monkeypatch.setattr(inspect, "signature", count_signature)
    monkeypatch.setattr(typing, "get_type_hints", count_hints)
    declared = tool(lookup)
    assert walked == [("signature", lookup), ("hints", lookup)]
    assert declared.validate({"query": "x"}) == {"query": "x", "limit": 5}
    with pytest.raises(ToolArgumentError, match="limit"):
        declared.validate({"query": "x", "limit": "many"})


@given(st.text(max_size=40))
def test_every_name_toolsets_make_callable_is_accepted_and_parsed_back(raw: str) -> None:
    """One rule for tool names: what callable_name makes, tool() accepts and the parser reads after call:."""
    name = callable_name(raw)
    declared = tool(_thread_name, name=name)
    parsed = gemma4.parse_response(f"<|tool_call>call:{declared.name}{{}}<tool_call|>")
    assert [c.name for c in parsed.tool_calls] == [name]


@pytest.mark.parametrize("name", ["with space", "émoji", "a/b", "", "x{y"])
def test_names_the_parser_cannot_read_are_refused(name: str) -> None:
    with pytest.raises(UserError, match="cannot be called by the model"):
        tool(_thread_name, name=name)
