"""agentkit against the MCP servers users actually connect, from npm: the reference server
(``@modelcontextprotocol/server-everything``, every feature of the spec), ``server-filesystem`` and
``server-memory``, each run with node as a client configuration runs it, plus a small server of our own on the
official TypeScript SDK (ts_server.cjs) for the requests a server may send unasked (sampling, elicitation,
roots) and for cancellation. Every tool is called through the agent loop (a scripted model writes the calls
in Gemma 4's format), and the declarations the model reads are checked against the format.

Installed by ``.ci/run`` (``npm ci`` of tests/mcp_toolsets/npm into ``~/.cache/agentkit-npm``); skipped with
the command to run where they are not (see npm_servers.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentkit import Agent, allow_all
from agentkit.backends.base import Capabilities
from agentkit.backends.scripted import ScriptedBackend
from agentkit.errors import ToolError, ToolTimeout
from agentkit.gemma4 import parse_value, tool_call_grammar
from agentkit.mcp import MCPServer, MCPServerHTTP
from agentkit.messages import ImagePart, ToolResult
from agentkit.testing.injections import control_tokens_in

sys.path.insert(0, str(Path(__file__).parent))
import npm_servers as npm

pytestmark = pytest.mark.slow  # each test starts node processes (about half a second each)
Q = '<|"|>'


class SeeingBackend(ScriptedBackend):
    """A scripted model that takes images, as Gemma 4 on vLLM or transformers does: tool media stay media."""

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(media=True)


def call(name: str, body: str = "") -> str:
    return f"<|tool_call>call:{name}{{{body}}}<tool_call|><|tool_response>"


def s(text: str) -> str:
    return f"{Q}{text}{Q}"


def declarations(prompt: str) -> dict[str, str]:
    """Each ``<|tool>declaration:NAME{…}<tool|>`` block of a rendered prompt, by name."""
    found = {}
    for block in prompt.split("<|tool>declaration:")[1:]:
        body = block.split("<tool|>", 1)[0]
        name, _, rest = body.partition("{")
        found[name] = "{" + rest
    return found


_KEYS = ("description", "enum", "items", "nullable", "properties", "required", "type")


def gemma_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """A flattened JSON schema as GEMMA4_PROTOCOL.md says a declaration carries it: only the keys Gemma knows,
    types upper-cased, empty values left out (written from the spec, independently of the renderer)."""
    out: dict[str, Any] = {}
    for key in _KEYS:
        value = node.get(key)
        if not value:
            continue
        if key == "type":
            value = [v.upper() for v in value] if isinstance(value, list) else value.upper()
        elif key == "items":
            value = gemma_schema(value)
        elif key == "properties":
            value = {name: gemma_schema(sub) for name, sub in value.items()}
        out[key] = value
    return out


async def declared(server: MCPServer) -> tuple[str, dict[str, Any]]:
    """The system block the model reads for ``server``'s tools (rendered by a real agent round), and the tools."""
    backend = ScriptedBackend(["ok<turn|>"])
    async with Agent(backend, toolsets=[server]) as agent:
        await agent.arun("hi")
        tools = dict(agent.tools)
    return backend.prompts[0].split("<|turn>user", 1)[0], tools


async def test_declarations_are_valid_gemma4_and_byte_stable_across_restarts(tmp_path: Path) -> None:
    servers = (
        npm.everything,
        lambda: npm.filesystem(tmp_path),
        lambda: npm.memory(tmp_path / "g.jsonl"),
        lambda: npm.ts_server(tmp_path / "marker"),  # zod's anyOf, nullable, const, allOf [$ref], recursion
    )
    for make in servers:
        first_server, second_server = make(), make()
        first, tools = await declared(first_server)
        second, _ = await declared(second_server)
        assert first == second  # byte for byte, from two separate server processes (the prompt cache relies on it)
        blocks = declarations(first)
        assert list(blocks) == list(tools) and len(blocks) >= 5
        assert "any JSON value" not in first  # every parameter of these servers has a type
        for name, body in blocks.items():
            parsed = parse_value(body)  # the format's own value syntax, whole
            params = tools[name].parameters
            expected = {"description": tools[name].description}
            if params.get("properties") or params.get("required"):
                expected["parameters"] = gemma_schema(params)
            else:
                expected["parameters"] = {"type": "OBJECT"}  # a tool without parameters
            assert parsed == expected, name
            assert control_tokens_in(body.replace(Q, "")) == 0
        tool_call_grammar([t.as_openai_tool() for t in tools.values()])  # constrained decoding accepts them all
    # The names a user sees, and a colliding tool is prefixed with: the package, not its dist/index.js (bug).
    assert [npm.everything().name, npm.filesystem(tmp_path).name, npm.memory(tmp_path).name] == [
        "everything",
        "filesystem",
        "memory",
    ]


async def test_everything_lists_what_this_client_can_call() -> None:
    async with npm.everything() as server:
        names = {t.name for t in server.list_tools()}
        left_out = dict(server.left_out)
    assert {"echo", "get-sum", "get-tiny-image", "trigger-long-running-operation", "get-env"} <= names
    # A task-only tool answers a plain call with an error: never declared, and doctor says why (bug).
    assert "simulate-research-query" not in names
    assert "taskSupport: required" in left_out["simulate-research-query"]
    # Without an agent (no model, no person) and no roots, agentkit declares none of sampling, elicitation and
    # roots, so the server registers none of the tools that need them.
    assert not names & {"trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"}


async def test_every_everything_tool_through_the_agent_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTKIT_TEST_SECRET", "do-not-pass-me-on")
    script = [
        call("echo", f"message:{s('hi')}"),
        call("get-sum", "a:2,b:40.5"),
        call("get-tiny-image"),
        call("get-annotated-message", f"includeImage:true,messageType:{s('error')}"),
        call("get-structured-content", f"location:{s('Chicago')}"),
        call("get-resource-links", "count:2"),
        call("get-resource-reference", f"resourceId:3,resourceType:{s('Text')}"),
        call("get-resource-reference", f"resourceId:2,resourceType:{s('Blob')}"),
        call("gzip-file-as-resource", f"data:{s('data:text/plain;base64,aGVsbG8=')},name:{s('h.gz')}"),
        call("gzip-file-as-resource", f"data:{s('data:text/plain,hi')},name:{s('r.gz')},outputType:{s('resource')}"),
        call("trigger-long-running-operation", "duration:0.2,steps:2"),
        call("toggle-simulated-logging"),
        call("toggle-subscriber-updates"),
        call("get-env"),
        call("get-sum", f"a:{s('two')},b:1"),  # refused before the server is asked
        call("echo"),
        "Done.<turn|>",
    ]
    backend = SeeingBackend(script)
    async with Agent(backend, toolsets=[npm.everything()], approval=allow_all) as agent:
        result = await agent.arun("use every tool")
    assert result.output == "Done."
    r = {i: c for i, c in enumerate(result.tool_calls)}
    assert all(r[i].error is None for i in range(14)), [c.error for c in result.tool_calls]
    assert r[0].result == "Echo: hi" and r[1].result == "The sum of 2 and 40.5 is 42.5."
    media = [m.media for m in result.conversation if isinstance(m, ToolResult)]
    for i in (2, 3):  # the images are typed media beside the text (the model sees them after the response)
        (image,) = media[i]
        assert isinstance(image, ImagePart) and image.data is not None and image.data.startswith(b"\x89PNG")
    assert r[3].result[0] == "Error: Operation failed"
    # Structured content with an outputSchema, once (its JSON text copy is not repeated to the model).
    assert r[4].result == {"structured": {"temperature": 36, "conditions": "Light rain / drizzle", "humidity": 82}}
    assert [link["uri"] for link in r[5].result["links"]] == [
        "demo://resource/dynamic/blob/1",
        "demo://resource/dynamic/text/2",
    ]
    (text_resource,) = r[6].result["resources"]
    assert text_resource["uri"] == "demo://resource/dynamic/text/3" and text_resource["text"].startswith("Resource 3:")
    (blob_resource,) = r[7].result["resources"]
    assert blob_resource["uri"] == "demo://resource/dynamic/blob/2" and blob_resource["bytes"] > 0
    assert "data" not in json.dumps(blob_resource)  # a blob reaches the model as its size, never as base64
    assert r[8].result == {
        "links": [{"uri": "demo://resource/session/h.gz", "name": "h.gz", "mime_type": "application/gzip"}]
    }
    assert r[9].result["resources"][0]["mime_type"] == "application/gzip"
    assert r[10].result == "Long running operation completed. Duration: 0.2 seconds, Steps: 2."
    assert r[11].result.startswith("Started simulated, random-leveled logging")
    env = json.loads(r[13].result)
    assert "PATH" in env and "AGENTKIT_TEST_SECRET" not in env  # the agent's environment is not handed on
    assert "invalid arguments for get-sum: a: 'two' is not of type 'number'" in (r[14].error or "")
    assert "'message' is a required property" in (r[15].error or "")
    prompt = backend.prompts[-1]
    assert f"response:get-sum{{value:{s('The sum of 2 and 40.5 is 42.5.')}}}" in prompt
    assert f"response:get-tiny-image{{value:{s(r[2].result[0])}}}<tool_response|><|image|>" in prompt
    assert "response:get-structured-content{structured:{conditions:" in prompt


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HTTPServerProcess:
    """``server-everything streamableHttp`` on a loopback port, which a test can restart (losing its sessions)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [npm.node(), npm.entry("server-everything"), "streamableHttp"],
            env={**os.environ, "PORT": str(self.port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(400):  # until it listens
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def everything_http() -> Iterator[HTTPServerProcess]:
    server = HTTPServerProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_everything_over_streamable_http(everything_http: HTTPServerProcess) -> None:
    backend = SeeingBackend(
        [
            call("get-tiny-image"),
            call("get-structured-content", f"location:{s('New York')}"),
            call("trigger-long-running-operation", "duration:0.2,steps:2"),
            "ok<turn|>",
        ]
    )
    async with Agent(backend, toolsets=[MCPServerHTTP(everything_http.url, timeout_s=30)]) as agent:
        result = await agent.arun("go")
        assert "simulate-research-query" not in agent.tools
    image, weather, waited = result.tool_calls
    assert image.error is None and weather.error is None and waited.error is None
    (picture,) = next(m for m in result.conversation if isinstance(m, ToolResult)).media
    assert isinstance(picture, ImagePart) and picture.data is not None and picture.data.startswith(b"\x89PNG")
    assert set(weather.result["structured"]) == {"temperature", "conditions", "humidity"}
    assert waited.result.startswith("Long running operation completed.")


async def test_a_new_http_session_when_the_server_restarted_between_calls(everything_http: HTTPServerProcess) -> None:
    """The server lost its sessions (a redeploy): it answers the old session id with 400 "No valid session ID".
    agentkit opens a new session and makes the call there; every call after the restart used to fail (bug)."""
    async with MCPServerHTTP(everything_http.url, timeout_s=30) as server:
        assert await server.call_tool("echo", {"message": "before"}) == "Echo: before"
        everything_http.stop()
        everything_http.start()
        assert await server.call_tool("echo", {"message": "after"}) == "Echo: after"
        assert await server.call_tool("echo", {"message": "again"}) == "Echo: again"
    assert server.restarts == 1


async def test_an_http_server_that_dies_mid_call_fails_that_call_and_is_used_again_once_back(
    everything_http: HTTPServerProcess,
) -> None:
    import asyncio

    async with MCPServerHTTP(everything_http.url, timeout_s=60) as server:

        async def kill_soon() -> None:
            await asyncio.sleep(0.5)
            assert everything_http.proc is not None
            everything_http.proc.kill()

        killer = asyncio.create_task(kill_soon())
        with pytest.raises(ToolError, match=r"stopped while running trigger-long-running-operation"):
            await server.call_tool("trigger-long-running-operation", {"duration": 30, "steps": 30})
        await killer
        everything_http.proc.wait(10)  # type: ignore[union-attr]
        everything_http.start()
        assert await server.call_tool("echo", {"message": "back"}) == "Echo: back"


async def test_filesystem_tools_stay_in_their_root_and_report_refusals_as_tool_errors(tmp_path: Path) -> None:
    from agentkit.testing.samples import png

    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("alpha\nbeta\n", encoding="utf-8")
    (root / "pic.png").write_bytes(png(8, 6, (10, 200, 10)))
    (tmp_path / "secret.txt").write_text("outside", encoding="utf-8")
    R = str(root.resolve())
    script = [
        call("list_allowed_directories"),
        call("read_text_file", f"head:1,path:{s(R + '/docs/a.txt')}"),
        call("read_file", f"path:{s(R + '/docs/a.txt')}"),
        call("read_media_file", f"path:{s(R + '/pic.png')}"),
        call("read_multiple_files", f"paths:[{s(R + '/docs/a.txt')},{s(R + '/none.txt')}]"),
        call("write_file", f"content:{s('one')},path:{s(R + '/b.txt')}"),
        call("edit_file", f"edits:[{{newText:{s('two')},oldText:{s('one')}}}],path:{s(R + '/b.txt')}"),
        call("create_directory", f"path:{s(R + '/new/deep')}"),
        call("move_file", f"destination:{s(R + '/new/b.txt')},source:{s(R + '/b.txt')}"),
        call("list_directory", f"path:{s(R)}"),
        call("list_directory_with_sizes", f"path:{s(R)},sortBy:{s('name')}"),
        call("directory_tree", f"path:{s(R + '/new')}"),
        call("search_files", f"path:{s(R)},pattern:{s('**/*.txt')}"),
        call("get_file_info", f"path:{s(R + '/docs/a.txt')}"),
        call("read_text_file", f"path:{s(str(tmp_path / 'secret.txt'))}"),
        call("read_text_file", f"path:{s(R + '/../secret.txt')}"),
        call("write_file", f"content:{s('x')},path:{s(str(tmp_path / 'planted.txt'))}"),
        "ok<turn|>",
    ]
    backend = SeeingBackend(script)
    async with Agent(backend, toolsets=[npm.filesystem(root)], approval=allow_all) as agent:
        result = await agent.arun("go")
    r = result.tool_calls
    assert all(c.error is None for c in r[:14]), [c.error for c in r]
    # The server also sends each text as structuredContent {"content": text}: the model reads it once (bug).
    assert r[0].result == f"Allowed directories:\n{R}"
    assert r[1].result == "alpha" and r[2].result == "alpha\nbeta\n"
    # An image comes back as media, and its base64 (restated in structuredContent) never as text (bug).
    (picture,) = [m for m in result.conversation if isinstance(m, ToolResult)][3].media
    assert isinstance(picture, ImagePart) and picture.data == (root / "pic.png").read_bytes()
    assert r[3].result[0] == "" and "iVBOR" not in backend.prompts[-1]
    assert "alpha" in r[4].result and "ENOENT" in r[4].result
    assert "-one\n" in r[6].result and "+two" in r[6].result
    assert (root / "new" / "b.txt").read_text(encoding="utf-8") == "two"
    assert set(r[9].result.splitlines()) == {"[DIR] docs", "[DIR] new", "[FILE] pic.png"}
    assert json.loads(r[11].result)[0]["name"] == "b.txt"
    assert r[12].result.splitlines() == [f"{R}/docs/a.txt", f"{R}/new/b.txt"]
    assert r[13].result.startswith("size: 11")
    for refused in r[14:]:
        assert refused.error is not None and "reported an error: Access denied - path outside allowed directories" in (
            refused.error
        )
    assert not (tmp_path / "planted.txt").exists()
    assert "response:read_text_file{error:" in backend.prompts[-1]


async def test_memory_graph_round_trip_with_nested_arguments(tmp_path: Path) -> None:
    graph = tmp_path / "graph.jsonl"
    script = [
        call(
            "create_entities",
            f"entities:[{{entityType:{s('person')},name:{s('Ada')},observations:[{s('writes programs')}]}},"
            f"{{entityType:{s('machine')},name:{s('Engine')},observations:[]}}]",
        ),
        call("create_relations", f"relations:[{{from:{s('Ada')},relationType:{s('programs')},to:{s('Engine')}}}]"),
        call("add_observations", f"observations:[{{contents:[{s('born 1815')}],entityName:{s('Ada')}}}]"),
        call("search_nodes", f"query:{s('1815')}"),
        call("open_nodes", f"names:[{s('Engine')}]"),
        call("read_graph"),
        call("delete_observations", f"deletions:[{{entityName:{s('Ada')},observations:[{s('born 1815')}]}}]"),
        call("delete_relations", f"relations:[{{from:{s('Ada')},relationType:{s('programs')},to:{s('Engine')}}}]"),
        call("delete_entities", f"entityNames:[{s('Engine')}]"),
        call("add_observations", f"observations:[{{contents:[{s('x')}],entityName:{s('Nobody')}}}]"),
        call("create_entities", f"entities:[{{name:{s('NoType')}}}]"),
        "ok<turn|>",
    ]
    async with Agent(ScriptedBackend(script), toolsets=[npm.memory(graph)], approval=allow_all) as agent:
        result = await agent.arun("go")
    r = result.tool_calls
    assert all(c.error is None for c in r[:9]), [c.error for c in r]
    # The text is the structured content's one value as JSON (or one of its strings): sent once (bug).
    assert r[0].result == {
        "structured": {
            "entities": [
                {"name": "Ada", "entityType": "person", "observations": ["writes programs"]},
                {"name": "Engine", "entityType": "machine", "observations": []},
            ]
        }
    }
    assert r[3].result["structured"]["entities"][0]["observations"] == ["writes programs", "born 1815"]
    assert r[4].result["structured"]["relations"] == [{"from": "Ada", "to": "Engine", "relationType": "programs"}]
    assert len(r[5].result["structured"]["entities"]) == 2
    assert r[8].result == {"structured": {"success": True, "message": "Entities deleted successfully"}}
    assert r[9].error == "add_observations reported an error: Entity with name Nobody not found"
    assert "invalid arguments for create_entities" in (r[10].error or "") and "'entityType' is a required" in (
        r[10].error or ""
    )
    saved = [json.loads(line) for line in graph.read_text(encoding="utf-8").splitlines()]
    assert saved == [{"type": "entity", "name": "Ada", "entityType": "person", "observations": ["writes programs"]}]


async def test_zod_schemas_arguments_round_trip_through_the_gemma_format(tmp_path: Path) -> None:
    """A TypeScript server's zod schema (union, nullable, enum, literal, array of objects, a recursive type): the
    model's call in Gemma 4's syntax reaches the server as the JSON it expects (it echoes what it got)."""
    topic = f"topic:{{name:{s('Alps')},subtopics:[{{name:{s('huts')},subtopics:[]}}]}}"
    body = (
        f"budget:null,kind:{s('trip')},mode:{s('draft')},owner:{{email:{s('a@b.org')},name:{s('Ada')}}},"
        f"steps:[{{done:false,title:{s('pack')}}},{{title:{s('go')}}}],{topic},when:3"
    )
    backend = ScriptedBackend(
        [call("plan", body), call("plan", f"kind:{s('holiday')},owner:{{}},steps:[],when:1"), "ok<turn|>"]
    )
    async with Agent(backend, toolsets=[npm.ts_server(tmp_path / "marker")]) as agent:
        result = await agent.arun("plan it")
        declared = declarations(backend.prompts[0])["plan"]
    good, bad = result.tool_calls
    assert good.error is None and json.loads(good.result) == {
        "kind": "trip",
        "when": 3,
        "budget": None,
        "steps": [{"title": "pack", "done": False}, {"title": "go"}],
        "owner": {"name": "Ada", "email": "a@b.org"},
        "mode": "draft",
        "topic": {"name": "Alps", "subtopics": [{"name": "huts", "subtopics": []}]},
    }
    assert (
        bad.error is not None and "invalid arguments for plan" in bad.error and "'holiday' is not one of" in bad.error
    )
    assert f"kind:{{description:{s('what to plan')},enum:[{s('trip')},{s('project')}]" in declared
    assert f"when:{{description:{s('one of: string (an ISO date) | number (days from now)')}" in declared
    assert f"budget:{{description:{s('minimum 0')},nullable:true,type:{s('NUMBER')}}}" in declared


async def test_a_timeout_cancels_the_call_on_the_server_which_stays_usable(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    async with npm.ts_server(marker, timeout_s=1) as server:
        with pytest.raises(ToolTimeout, match=r"wait did not finish within 1 s"):
            await server.call_tool("wait", {"seconds": 60})
        assert await server.call_tool("wait", {"seconds": 0}) == "waited 0 s"
    assert marker.read_text().splitlines()[1:] == ["waiting 60", "cancelled", "waiting 0"]


async def test_requests_the_client_never_offered_are_refused_at_once(tmp_path: Path) -> None:
    """Sampling, elicitation and roots from a server that asks anyway: a clear error for that call, no hang."""
    backend = ScriptedBackend([call("ask-model"), call("ask-user"), call("list-roots"), "ok<turn|>"])
    server = npm.ts_server(tmp_path / "m", timeout_s=60, sampling=False, elicitation=False)
    async with Agent(backend, toolsets=[server], approval=allow_all) as agent:
        result = await agent.arun("go")
    assert [c.error for c in result.tool_calls] == [
        "ask-model reported an error: MCP error -32600: Sampling not supported",
        "ask-user reported an error: MCP error -32600: Elicitation not supported",
        "list-roots reported an error: MCP error -32600: List roots not supported",
    ]
    assert result.output == "ok"


async def test_a_server_killed_mid_call_is_reported_and_restarted() -> None:
    import asyncio

    server = npm.everything(timeout_s=60)
    async with server:
        (pid,) = npm.children(running="server-everything")

        async def kill_soon() -> None:
            await asyncio.sleep(0.5)
            npm.kill(pid)

        killer = asyncio.create_task(kill_soon())
        with pytest.raises(ToolError, match=r"stopped while running trigger-long-running-operation .*restarted"):
            await server.call_tool("trigger-long-running-operation", {"duration": 30, "steps": 30})
        await killer
        assert await server.call_tool("echo", {"message": "back"}) == "Echo: back"
        (restarted,) = npm.children(running="server-everything")
    assert restarted != pid and server.restarts == 1
    assert not npm.alive(restarted)


def inspector(workspace: Path, *args: str) -> dict[str, Any]:
    """One ``npx @modelcontextprotocol/inspector --cli`` run against ``agentkit mcp serve``; its JSON answer."""
    serve = [sys.executable, "-m", "agentkit.cli", "mcp", "serve", "--tools", "files", "--workspace", str(workspace)]
    done = subprocess.run(
        [npm.node(), npm.entry("inspector"), "--cli", *serve, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_agentkit_mcp_serve_from_the_official_inspector_cli(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello from the workspace\n", encoding="utf-8")
    listed = {t["name"]: t for t in inspector(tmp_path, "--method", "tools/list")["tools"]}
    assert {"read_file", "write_file", "edit_file", "list_dir", "find_files", "grep"} <= set(listed)
    assert listed["read_file"]["annotations"] == {"readOnlyHint": True, "destructiveHint": False}
    assert listed["read_file"]["inputSchema"]["required"] == ["path"]
    read = inspector(tmp_path, "--method", "tools/call", "--tool-name", "read_file", "--tool-arg", "path=notes.txt")
    assert read == {"content": [{"type": "text", "text": "hello from the workspace\n"}], "isError": False}
    # A missing argument: the tool's own message, not the SDK's pydantic report with its model name and URL (bug).
    missing = inspector(tmp_path, "--method", "tools/call", "--tool-name", "read_file")
    assert missing == {
        "content": [{"type": "text", "text": "invalid arguments for read_file: path: Field required"}],
        "isError": True,
    }
