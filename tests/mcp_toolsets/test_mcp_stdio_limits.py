"""A hostile MCP server over stdio cannot fill the agent's memory: each line it writes is read within a limit.

The SDK's stdio transport joined the server's stdout into one line until a newline came, with no limit, and
kept all of its stderr: a server writing 64 MiB without a newline had all of it (and more, as long as it
wrote) taken into memory, and the call hung until its timeout. Now the line is cut off at
``max_line_bytes`` (16 MiB, as over HTTP), the call fails saying so, the server is stopped and restarted,
and the run goes on.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from agentkit import Agent
from agentkit.backends.scripted import ScriptedBackend
from agentkit.errors import UserError
from agentkit.mcp import MCPServerStdio
from agentkit.mcp.stdio import DEFAULT_MAX_LINE_BYTES, StderrTail, _Lines

SERVER = str(Path(__file__).with_name("hostile_stdio_server.py"))
MB = 1 << 20
FLOOD_MB = 64  # hostile_stdio_server.FLOOD_MB


def call(name: str) -> str:
    return f"<|tool_call>call:{name}{{}}<tool_call|><|tool_response>"


def hostile(tmp_path: Path, **options: object) -> MCPServerStdio:
    env = {"HOSTILE_WRITTEN": str(tmp_path / "written")}
    return MCPServerStdio(sys.executable, [SERVER], env=env, protocol="legacy", read_only=True, **options)  # type: ignore[arg-type]


@pytest.mark.slow
async def test_a_line_without_end_is_cut_off_with_a_clear_error_and_the_run_goes_on(tmp_path: Path) -> None:
    server = hostile(tmp_path, timeout_s=60)
    backend = ScriptedBackend([call("flood"), call("echo"), "It failed.<turn|>"])
    async with Agent(backend, toolsets=[server]) as agent:
        result = await agent.arun("go")
    flood, echo = result.tool_calls
    assert flood.error is not None and f"more than {DEFAULT_MAX_LINE_BYTES:,} bytes" in flood.error, flood
    assert "max_line_bytes" in flood.error and "restarted" in flood.error
    assert echo.error is None and echo.result == "echo: {}"  # the restarted server answers
    assert result.output == "It failed."
    written = int((tmp_path / "written").read_text() or 0) if (tmp_path / "written").exists() else 0
    assert written < FLOOD_MB * MB  # stopped long before it finished (pipe buffers hold a little)


@pytest.mark.slow
async def test_the_limit_is_the_servers_own_and_a_line_just_under_it_passes(tmp_path: Path) -> None:
    async with hostile(tmp_path, max_line_bytes=4096) as server:
        assert await server.call_tool("echo", {"text": "x" * 3000}) == "echo: " + '{"text": "' + "x" * 3000 + '"}'
        with pytest.raises(Exception, match=r"more than 4,096 bytes on stdout"):
            await server.call_tool("echo", {"text": "x" * 5000})


@pytest.mark.slow
async def test_a_flood_on_stderr_is_kept_to_its_last_lines(tmp_path: Path) -> None:
    """The SDK wrote all of stderr to a file agentkit read back whole to explain a crash."""
    async with hostile(tmp_path) as server:
        assert await server.call_tool("shout", {}) == "shout: {}"
        for _ in range(500):  # stderr is read by a task of its own: wait for the last line to arrive
            if server._death_note().endswith("last words of the shouting server"):
                break
            await asyncio.sleep(0.02)
        assert server._death_note().endswith("| last words of the shouting server")
        assert len(server._stderr._data) <= 2 * 16 * 1024 and len(server._death_note()) < 600


@pytest.mark.slow
async def test_a_storm_of_list_changed_notices_lists_the_tools_a_few_times(tmp_path: Path) -> None:
    """Each tools/list_changed started a listing of its own: 2,000 notices, 2,000 listings at once."""
    lists = tmp_path / "lists"
    server = MCPServerStdio(
        sys.executable, [SERVER], env={"HOSTILE_LISTS": str(lists)}, protocol="legacy", read_only=True
    )
    async with server:
        assert await server.call_tool("storm", {}) == "storm: {}"
        assert await server.call_tool("echo", {}) == "echo: {}"  # the server has read every request by now
        for _ in range(200):  # let the listings started by the notices finish
            if not any(not t.done() for t in server._background):
                break
            await asyncio.sleep(0.02)
    assert int(lists.read_text()) <= 5, lists.read_text()


def test_lines_are_cut_at_the_limit_wherever_the_chunks_break() -> None:
    lines = _Lines(5)
    assert lines.feed(b"ab") == [] and lines.feed(b"c\nde") == [b"abc"] and lines.feed(b"f\n\n") == [b"def", b""]
    assert lines.feed(b"12345\n") == [b"12345"]
    with pytest.raises(Exception, match="more than 5 bytes"):
        lines.feed(b"123") + lines.feed(b"456")
    with pytest.raises(Exception, match="more than 5 bytes"):
        _Lines(5).feed(b"123456\n")


def test_the_stderr_tail_keeps_the_last_lines() -> None:
    tail = StderrTail(10)
    for i in range(1000):
        tail.add(f"line {i}\n".encode())
    assert tail.lines()[-1] == "line 999" and len(tail._data) <= 20


def test_the_limit_is_a_positive_number_of_bytes() -> None:
    for bad in (0, -1, 1.5, True, "16M"):
        with pytest.raises(UserError, match="max_line_bytes"):
            MCPServerStdio("x", max_line_bytes=bad)  # type: ignore[arg-type]
