"""MCP servers in the terminal assistant: /tools starts them and lists their tools; closing the app stops them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from agentkit import AgentOptions, SessionStore
from agentkit.mcp import MCPServerStdio
from agentkit.testing import ScriptedBackend
from agentkit.tui import AgentkitApp
from agentkit.tui.widgets import InfoMessage

from .test_commands import SIZE, type_and_send

SERVER = str(Path(__file__).parents[1] / "mcp_toolsets" / "sdk_server.py")

pytestmark = pytest.mark.slow  # starts an MCP server process


async def test_tools_lists_mcp_tools_and_closing_the_app_stops_the_server(store: SessionStore, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    server = MCPServerStdio(sys.executable, [SERVER], env={"MCP_TEST_PIDFILE": str(pidfile)})
    backend = ScriptedBackend([])
    app = AgentkitApp(backend, options=AgentOptions(toolsets=[server]), store=store)
    async with app.run_test(size=SIZE) as pilot:
        await type_and_send(pilot, app, "/tools")
        text = app.query(InfoMessage).last().text
        assert "echo  Echo the text back." in text  # read-only: no mark
        assert "⚠ write_note" in text  # no readOnlyHint: asks first
        pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert backend.requests == []
