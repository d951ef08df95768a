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


async def test_a_servers_form_is_asked_in_dialogs_and_the_answer_reaches_the_server(store: SessionStore) -> None:
    from agentkit.messages import ToolResult
    from agentkit.tui.widgets import ApprovalScreen, ConfirmScreen, PromptScreen, ToolCard

    from .conftest import call, wait_for
    from .test_app import send

    sys.path.insert(0, str(Path(__file__).parents[1] / "mcp_toolsets"))
    import npm_servers as npm

    backend = ScriptedBackend([call("trigger-elicitation-request"), "Thanks.<turn|>"])
    app = AgentkitApp(backend, options=AgentOptions(toolsets=[npm.everything()]), store=store)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, app, "ask me")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval dialog", steps=2000)
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the form's question")
        assert "MCP server everything asks you" in app.screen.question  # type: ignore[attr-defined]
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), "the first field")
        assert app.screen.title_text.startswith("String (Your full, legal name; string)")  # type: ignore[attr-defined]
        await pilot.press(*"Ada", "enter")
        for _ in range(12):  # the other fields: skipped, or their defaults
            await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen) or not app.running, "a field")
            if not app.running:
                break
            await pilot.press("enter")
        await wait_for(pilot, lambda: not app.running, "the run finished", steps=2000)
        assert app.query_one(ToolCard).error is None
        (result,) = [m for m in app.agent.conversation if isinstance(m, ToolResult)]
        assert '"name": "Ada"' in str(result.content) and '"integer": 42' in str(result.content)
