"""What the npm MCP servers showed, pinned without starting them: how a server is named from its command line,
results whose ``structuredContent`` restates their content (the exact JSON the filesystem and memory servers
sent), task-only tools, a ``tools/list_changed`` refetch that fails, and ``agentkit mcp serve``'s errors for bad
arguments. The same behaviours against the real servers are in test_npm_servers.py (slow)."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import mcp.types as mt
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from agentkit import tool
from agentkit.errors import ToolError
from agentkit.mcp import MCPServerStdio, result_value
from agentkit.mcp.serve import build_server
from agentkit.messages import ImagePart
from agentkit.testing.samples import png

NPM = "/home/u/.cache/agentkit-npm/node_modules/@modelcontextprotocol"


@pytest.mark.parametrize(
    ("command", "args", "name"),
    [
        ("node", [f"{NPM}/server-everything/dist/index.js", "stdio"], "everything"),  # was "index"
        ("node", [f"{NPM}/server-filesystem/dist/index.js", "/srv/docs"], "filesystem"),  # was "index"
        ("/usr/bin/node", ["/opt/weather/build/index.js"], "weather"),  # was "index"
        ("python3", ["/srv/tools/notes/server.py"], "notes"),  # was "server"
        ("npx", ["-y", "@modelcontextprotocol/server-memory"], "memory"),
        ("npx", ["-y", "@modelcontextprotocol/server-memory@2026.8.31"], "memory"),  # was "server-memory_2026.8.31"
        ("uvx", ["mcp-server-fetch@latest"], "fetch"),  # was "fetch_latest"
        ("uvx", ["mcp-server-time"], "time"),
        ("python3", ["-m", "mcp_server_git", "--repository", "."], "git"),
        ("python3", ["my_server.py"], "my_server"),
        ("node", ["index.js"], "index"),  # nothing better to go on
        ("docker", ["run", "-i", "--rm", "mcp/everything"], "everything"),
    ],
)
def test_a_server_is_named_after_its_package_not_its_entry_file(command: str, args: list[str], name: str) -> None:
    assert MCPServerStdio(command, args).name == name


def wire(result: dict[str, Any]) -> mt.CallToolResult:
    return mt.CallToolResult.model_validate(result)


TINY = png(2, 2, (1, 2, 3))
TINY_B64 = __import__("base64").b64encode(TINY).decode()


def test_structured_content_that_restates_the_blocks_reaches_the_model_once() -> None:
    # server-filesystem's read_text_file: the text again under one key.
    text = wire({"content": [{"type": "text", "text": "alpha"}], "structuredContent": {"content": "alpha"}})
    assert result_value("read_text_file", text) == "alpha"
    # server-filesystem's read_media_file: the image block again, base64 and all, which used to reach the model
    # as text beside the image itself.
    image_block = {"type": "image", "data": TINY_B64, "mimeType": "image/png"}
    media = wire({"content": [image_block], "structuredContent": {"content": [image_block]}})
    assert result_value("read_media_file", media) == ["", ImagePart(TINY)]
    # server-memory's create_entities: the text is the wrapper's one value as JSON.
    entities = [{"name": "Ada", "entityType": "person", "observations": []}]
    listed = wire(
        {
            "content": [{"type": "text", "text": json.dumps(entities, indent=2)}],
            "structuredContent": {"entities": entities},
        }
    )
    assert result_value("create_entities", listed) == {"structured": {"entities": entities}}
    # server-memory's delete_entities: the text is one of the structured strings.
    deleted = wire(
        {
            "content": [{"type": "text", "text": "Entities deleted successfully"}],
            "structuredContent": {"success": True, "message": "Entities deleted successfully"},
        }
    )
    assert result_value("delete_entities", deleted) == {
        "structured": {"success": True, "message": "Entities deleted successfully"}
    }


def test_structured_content_that_adds_something_is_kept_with_the_text() -> None:
    other = wire({"content": [{"type": "text", "text": "alpha"}], "structuredContent": {"content": "beta"}})
    assert result_value("t", other) == {"text": "alpha", "structured": {"content": "beta"}}
    more = wire({"content": [{"type": "text", "text": "3 files"}], "structuredContent": {"count": 3, "unit": "files"}})
    assert result_value("t", more) == {"text": "3 files", "structured": {"count": 3, "unit": "files"}}
    block = {"type": "image", "data": TINY_B64, "mimeType": "image/png"}
    not_the_same = {"type": "image", "data": TINY_B64[:-4] + "AAAA", "mimeType": "image/png"}
    kept = wire({"content": [block], "structuredContent": {"content": [not_the_same]}})
    assert result_value("t", kept)[0] == {"structured": {"content": [not_the_same]}}
    with pytest.raises(ToolError, match="t reported an error: no such file"):
        result_value("t", wire({"content": [{"type": "text", "text": "no such file"}], "isError": True}))


class FakeClient:
    """What MCPServer asks of the SDK's client when it lists tools."""

    def __init__(self, tools: list[mt.Tool] | None = None, error: Exception | None = None) -> None:
        self.tools, self.error = tools or [], error

    async def list_tools(self, cursor: str | None = None, cache_mode: str = "") -> mt.ListToolsResult:
        if self.error is not None:
            raise self.error
        return mt.ListToolsResult(tools=self.tools)


async def test_task_only_tools_are_left_out_with_the_reason() -> None:
    plain = mt.Tool(name="search", input_schema={"type": "object"})
    optional = mt.Tool(
        name="index", input_schema={"type": "object"}, execution=mt.ToolExecution(task_support="optional")
    )
    required = mt.Tool(
        name="research", input_schema={"type": "object"}, execution=mt.ToolExecution(task_support="required")
    )
    server = MCPServerStdio("unused")
    await server._refresh(FakeClient([plain, optional, required]))  # type: ignore[arg-type]
    assert [t.name for t in server.list_tools()] == ["search", "index"]
    assert list(server.left_out) == ["research"] and "taskSupport: required" in server.left_out["research"]


async def test_a_refetch_on_list_changed_that_fails_keeps_the_list_and_leaves_no_error_behind() -> None:
    """The reference server announces a change right after the handshake; when the connection closes before the
    refetch is answered, the error used to stay in a task nobody awaited ("Task exception was never retrieved"
    on stderr, in the CLI too)."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        server = MCPServerStdio("unused")
        await server._refresh(FakeClient([mt.Tool(name="search", input_schema={"type": "object"})]))  # type: ignore[arg-type]
        server._client = FakeClient(error=MCPError(mt.CONNECTION_CLOSED, "Connection closed"))  # type: ignore[assignment]
        await server._on_message(mt.ToolListChangedNotification())
        await asyncio.gather(*server._background)  # the refetch ran to its end; nothing was raised to here
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert reported == []
    assert [t.name for t in server.list_tools()] == ["search"]


@tool
def read_note(path: str, start_line: int = 1) -> str:
    """Read a note.

    Args:
        path: where the note is.
        start_line: the first line to return.
    """
    return f"{path} from line {start_line}"


@tool
def explode() -> str:
    """Fail in a way nobody planned."""
    raise RuntimeError("internal detail: /home/secret/config")


async def test_mcp_serve_answers_bad_arguments_with_the_tools_own_message() -> None:
    async with Client(build_server([read_note, explode])) as client:
        missing = await client.call_tool("read_note", {})
        wrong = await client.call_tool("read_note", {"path": "a", "start_line": "one"})
        extra = await client.call_tool("read_note", {"path": "a", "colour": "red"})
        fine = await client.call_tool("read_note", {"path": "a", "start_line": 3})
        crash = await client.call_tool("explode", {})
    texts = [r.content[0].text for r in (missing, wrong, extra, fine, crash)]  # type: ignore[union-attr]
    assert [r.is_error for r in (missing, wrong, extra, fine, crash)] == [True, True, True, False, True]
    assert texts[0] == "invalid arguments for read_note: path: Field required"  # was pydantic's report with a URL
    assert texts[1] == (
        "invalid arguments for read_note: start_line: Input should be a valid integer, unable to parse string as an "
        "integer"
    )
    assert texts[2] == "invalid arguments for read_note: colour: Extra inputs are not permitted"
    assert texts[3] == "a from line 3"
    assert texts[4] == "Error executing tool explode"  # a crash's own text stays on the server, as the SDK keeps it
