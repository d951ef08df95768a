"""Published MCP servers from the package index, started as subprocesses: mcp-server-git on a temporary repository
and mcp-server-fetch against a loopback page (mcp-server-time is in test_mcp_client.py and the CLI tests)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agentkit import Agent, Approval, ToolCallRequest
from agentkit.backends.scripted import ScriptedBackend
from agentkit.mcp import MCPServerStdio

pytestmark = pytest.mark.slow  # each test starts a server process
Q = '<|"|>'


def call(name: str, body: str) -> str:
    return f"<|tool_call>call:{name}{{{body}}}<tool_call|><|tool_response>"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git = ["git", "-C", str(path), "-c", "user.email=t@example.com", "-c", "user.name=T"]
    subprocess.run([*git, "init", "-q"], check=True)
    (path / "notes.txt").write_text("first\n", encoding="utf-8")
    subprocess.run([*git, "add", "notes.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "add the notes"], check=True)
    (path / "notes.txt").write_text("first\nsecond\n", encoding="utf-8")
    return path


async def test_mcp_server_git_reads_freely_and_asks_before_committing(repo: Path) -> None:
    pytest.importorskip("mcp_server_git")
    asked: list[ToolCallRequest] = []

    def deny(request: ToolCallRequest) -> Approval:
        asked.append(request)
        return Approval.DENY

    r = f"repo_path:{Q}{repo}{Q}"
    backend = ScriptedBackend(
        [call("git_status", r), call("git_log", r), call("git_commit", f"{r},message:{Q}x{Q}"), "ok<turn|>"]
    )
    server = MCPServerStdio(sys.executable, ["-m", "mcp_server_git", "--repository", str(repo)])
    async with Agent(backend, toolsets=[server], ask=deny) as agent:
        result = await agent.arun("what changed?")
    status, log, commit = result.tool_calls
    assert server.name == "git"
    assert "modified:   notes.txt" in status.result
    assert "Message: add the notes" in log.result
    assert [a.name for a in asked] == ["git_commit"] and "denied" in (commit.error or "")
    assert "modified:   notes.txt" in backend.prompts[-1]


@pytest.fixture
def page() -> Iterator[str]:
    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/page.html":
                self.send_error(404)
                return
            body = b"<html><body><h1>Loopback page</h1><p>The secret word is marmalade.</p></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/page.html"
    finally:
        server.shutdown()
        server.server_close()


async def test_mcp_server_fetch_reads_a_loopback_page(page: str) -> None:
    pytest.importorskip("mcp_server_fetch")
    backend = ScriptedBackend([call("fetch", f"url:{Q}{page}{Q}"), "The word is marmalade.<turn|>"])
    server = MCPServerStdio(sys.executable, ["-m", "mcp_server_fetch", "--allow-private-ips"])
    async with Agent(backend, toolsets=[server]) as agent:
        result = await agent.arun("what is the secret word?")
        declared = agent.tools["fetch"].parameters["properties"]
    (fetched,) = result.tool_calls
    assert fetched.error is None and "The secret word is marmalade." in fetched.result
    assert "format uri" in declared["url"]["description"]  # a constraint Gemma cannot declare, kept as text
    assert "The secret word is marmalade." in backend.prompts[-1]
