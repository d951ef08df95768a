"""The four built-in tools driven end to end by the agent loop, from raw Gemma 4 tool calls to tool responses."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agentkit import Agent, Approval, ToolCallRequest, allow_all
from agentkit.testing import ScriptedBackend
from agentkit.tools import PythonSandbox, Workspace, make_fetch_url, make_web_search

from .conftest import needs_bwrap

Q = '<|"|>'  # Gemma 4's string delimiter


def call(name: str, **args: str) -> str:
    body = ",".join(f"{k}:{Q}{v}{Q}" for k, v in args.items())
    return f"<|tool_call>call:{name}{{{body}}}<tool_call|><|tool_response>"


class _Page(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"The release notes say: tools are confined by default."
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def page_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/notes"
    server.shutdown()
    server.server_close()


class FakeDDGS:
    """Test double for ``ddgs.DDGS`` with one canned result."""

    def text(self, query: str, **kwargs: Any) -> list[dict[str, Any]]:
        return [{"title": f"About {query}", "href": "https://example.org/gemma", "body": "Gemma 4 is an open model."}]


@needs_bwrap
@pytest.mark.bwrap
def test_four_tools_through_the_agent(tmp_path: Path, page_url: str) -> None:
    ws = Workspace(tmp_path)
    (tmp_path / "a.txt").write_text("hi")
    tools = [
        *ws.tools(),
        PythonSandbox(ws, timeout_s=10).as_tool(),
        make_web_search(client_factory=FakeDDGS),
        make_fetch_url(allow_private=True),  # the page is served on loopback
    ]
    backend = ScriptedBackend(
        [
            call("read_file", path="a.txt"),
            call("write_file", path="b.txt", content="written by the model"),
            call("run_python", code="print(open('b.txt').read().upper())"),
            call("web_search", query="gemma 4"),
            call("fetch_url", url=page_url),
            call("read_file", path="../outside.txt"),
            "The file says hi.<turn|>",
        ]
    )
    result = Agent(backend, tools=tools, approval=allow_all).run("What does a.txt say?")

    assert result.output == "The file says hi." and result.ok
    names = ["read_file", "write_file", "run_python", "web_search", "fetch_url", "read_file"]
    assert [c.name for c in result.tool_calls] == names
    assert [c.ok for c in result.tool_calls] == [True, True, True, True, True, False]  # the escape failed
    assert (tmp_path / "b.txt").read_text() == "written by the model"
    assert result.tool_calls[2].result.stdout == "WRITTEN BY THE MODEL\n"
    assert result.tool_calls[3].result[0]["url"] == "https://example.org/gemma"
    assert "outside the workspace" in (result.tool_calls[5].error or "")

    # What the model read back, in the native response format of each step.
    last = backend.prompts[-1]
    assert f"response:read_file{{value:{Q}hi{Q}}}<tool_response|>" in last
    assert f"response:write_file{{value:{Q}created b.txt (20 bytes){Q}}}" in last
    assert f"stdout:{Q}WRITTEN BY THE MODEL\n{Q}" in last
    assert "tools are confined by default" in last
    assert "outside the workspace" in last


def test_side_effects_need_approval_by_default(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    asked: list[ToolCallRequest] = []

    def ask(request: ToolCallRequest) -> Approval:
        asked.append(request)
        return Approval.DENY

    backend = ScriptedBackend(
        [call("list_dir", path="."), call("write_file", path="x.txt", content="x"), "Nothing written.<turn|>"]
    )
    result = Agent(backend, tools=ws.tools(), ask=ask).run("Write x.txt")
    assert [r.name for r in asked] == ["write_file"]  # read-only list_dir ran without asking
    assert not (tmp_path / "x.txt").exists()
    assert result.tool_calls[0].ok and not result.tool_calls[1].ok


@needs_bwrap
@pytest.mark.bwrap
def test_a_sandbox_that_cannot_start_is_a_failed_call(tmp_path: Path) -> None:
    # bwrap sets the sandbox up but cannot exec the interpreter: that used to come back as a result (exit 1),
    # which the CLI and the TUI showed with a ✓.
    box = PythonSandbox(tmp_path, timeout_s=10)
    box.python = "/nonexistent/bin/python3"
    backend = ScriptedBackend([call("run_python", code="print(1)"), "It failed.<turn|>"])
    result = Agent(backend, tools=[box.as_tool()], approval=allow_all).run("Print 1")
    assert not result.tool_calls[0].ok
    assert "could not start Python" in (result.tool_calls[0].error or "")
