"""An MCP server's image (and audio) blocks reach the model, end to end through ``Agent.run``: the real SDK test
server over stdio, and the request each engine's server receives — vLLM's JSON body (FlakyOpenAIServer records
it), Ollama's ``images`` (FakeOllamaServer) — or, on a backend that takes no media, a description and a notice.
The in-process engine's round is in tests/backends/test_transformers_media.py."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "backends"))
sys.path.insert(0, str(Path(__file__).parent))

from fake_ollama import FakeOllamaServer, ScriptedReply
from sdk_server import COLOURS, WAV
from test_vllm import FlakyOpenAIServer, Reply, chat_chunk, completion_chunk, usage_chunk

from agentkit import Agent
from agentkit.backends.ollama import OllamaBackend
from agentkit.backends.scripted import ScriptedBackend
from agentkit.events import Notice
from agentkit.gemma4.tokens import IMAGE
from agentkit.mcp import MCPServerStdio
from agentkit.messages import ImagePart, ToolResult
from agentkit.testing.samples import png

SERVER = str(Path(__file__).with_name("sdk_server.py"))
RED = png(40, 30, COLOURS["red"])
Q = '<|"|>'
CALL = f"<|tool_call>call:picture{{colour:{Q}red{Q}}}<tool_call|><|tool_response>"

pytestmark = pytest.mark.slow  # each test starts the server process


def server() -> MCPServerStdio:
    return MCPServerStdio(sys.executable, [SERVER])


async def test_vllm_receives_the_mcp_image_in_the_tool_message() -> None:
    replies = [
        Reply(events=[completion_chunk(CALL, "stop", "<|tool_response>"), usage_chunk(20, 9)]),
        Reply(events=[chat_chunk({"content": "A red picture."}), chat_chunk({}, "stop"), usage_chunk(40, 4)]),
    ]
    vllm = FlakyOpenAIServer(replies)
    try:
        async with Agent(vllm.backend(), toolsets=[server()]) as agent:
            result = await agent.arun("Take a red picture")
    finally:
        vllm.close()
    assert result.output == "A red picture." and result.tool_calls[0].error is None
    first, second = vllm.requests
    assert "prompt" in first  # text only: the native route
    tool = second["messages"][-1]  # the image is there: the chat route, the picture in the tool message
    assert tool["role"] == "tool" and tool["content"][0] == {"type": "text", "text": "a red picture"}
    url = tool["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.partition(",")[2]) == RED
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool"]


async def test_ollama_receives_the_mcp_image_and_audio_in_the_tool_messages_images() -> None:
    with FakeOllamaServer() as fake:
        fake.script(
            ScriptedReply(tool_calls=[("picture", {"colour": "red"}), ("sound", {})]),
            ScriptedReply(content="Red, and silence."),
        )
        backend = OllamaBackend("gemma4:e4b", fake.url, retry_wait=0.001)
        async with Agent(backend, toolsets=[server()]) as agent:
            result = await agent.arun("Picture and sound")
        bodies = fake.bodies("/api/chat")
    assert result.output == "Red, and silence."
    picture, sound = bodies[-1]["messages"][-2:]
    assert picture["role"] == "tool" and picture["tool_name"] == "picture" and picture["content"] == "a red picture"
    assert picture["images"] == [base64.b64encode(RED).decode()]
    assert sound["tool_name"] == "sound" and sound["images"] == [base64.b64encode(WAV).decode()]


async def test_a_backend_without_media_is_told_about_the_mcp_image() -> None:
    backend = ScriptedBackend([CALL, "I was told of a picture.<turn|>"])
    async with Agent(backend, toolsets=[server()]) as agent:
        events = [e async for e in agent.run_stream("Take a red picture")]
    assert any(isinstance(e, Notice) and "cannot pass" in e.message for e in events)
    prompt = backend.prompts[-1]
    assert IMAGE not in prompt
    assert f"images:[{{bytes:{len(RED)},mime_type:{Q}image/png{Q}" in prompt and f"text:{Q}a red picture{Q}" in prompt


async def test_the_conversation_keeps_the_mcp_image_as_a_typed_part() -> None:
    from agentkit.backends.base import Capabilities

    class Seeing(ScriptedBackend):
        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(media=True)

    backend = Seeing([CALL, "Red.<turn|>"])
    async with Agent(backend, toolsets=[server()]) as agent:
        await agent.arun("Take a red picture")
    [result] = [m for m in agent.conversation if isinstance(m, ToolResult)]
    assert result.content == "a red picture" and result.media == (ImagePart(RED),)
    assert backend.prompts[-1].endswith(f"response:picture{{value:{Q}a red picture{Q}}}<tool_response|>{IMAGE}")
