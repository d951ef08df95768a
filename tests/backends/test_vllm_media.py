"""Images reach vLLM however the prompt carries them: the route follows the conversation, not ``request.media``.

The agent sends a picture as a content part of the user's message and never fills ``GenerationRequest.media``;
vLLM's default (native) route used to look only at ``media``, so the picture was rendered as a placeholder
token on ``/v1/completions`` with no pixels behind it. Checked against FlakyOpenAIServer, which records what
the server would have received, and through the shared contract's media check.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_vllm import FlakyOpenAIServer, Reply, chat_chunk, usage_chunk

from agentkit import Agent, Image, Session, SessionStore, tool
from agentkit.backends import Backend, GenerationRequest
from agentkit.backends._openai_media import chat_messages
from agentkit.errors import UserError
from agentkit.gemma4 import Prompt
from agentkit.messages import ImagePart, TextPart, UserMessage
from agentkit.testing.backend_contract import GREETING, PNG, ContractHarness, check_media, run_check

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 20


@pytest.fixture
def server() -> Iterator[FlakyOpenAIServer]:
    events = [chat_chunk({"content": GREETING.removesuffix("<turn|>")}), chat_chunk({}, "stop"), usage_chunk(30, 9)]
    double = FlakyOpenAIServer([Reply(events=events)])
    yield double
    double.close()


def images_sent(server: FlakyOpenAIServer) -> list[bytes]:
    """The images of the last request, decoded from the data URLs vLLM would read."""
    body = server.requests[-1]
    found = []
    for message in body.get("messages", ()):
        for part in message["content"] if isinstance(message["content"], list) else ():
            if part.get("type") == "image_url":
                found.append(base64.b64decode(part["image_url"]["url"].partition(";base64,")[2]))
    return found


def test_an_agents_image_prompt_reaches_vllm_in_its_default_mode(server: FlakyOpenAIServer) -> None:
    backends: list[Backend] = []

    def backend_for(*outputs: str) -> Backend:
        backends.append(server.backend())  # the default mode: native prompts on /v1/completions
        return backends[-1]

    run_check(check_media, ContractHarness(backend_for=backend_for, received_images=lambda: images_sent(server)))
    assert "messages" in server.requests[0] and "prompt" not in server.requests[0]  # the chat route
    assert server.requests[0]["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_has_media_looks_at_the_messages_as_well_as_media() -> None:
    prompt = Prompt.trusted("<bos>")
    text_only = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert not GenerationRequest(prompt, messages=text_only).has_media
    assert GenerationRequest(
        prompt, messages=[{"role": "user", "content": [{"type": "image", "image": PNG}]}]
    ).has_media
    assert GenerationRequest(prompt, media=[{"data": PNG}]).has_media
    # A tool result that is a mapping with its own "type" key is data, not a media part.
    assert not GenerationRequest(prompt, messages=[{"role": "tool", "content": {"type": "image", "n": 1}}]).has_media


@pytest.mark.parametrize(
    ("part", "url"),
    [
        ({"type": "image", "image": PNG}, "data:image/png;base64," + base64.b64encode(PNG).decode()),
        ({"type": "image", "image": base64.b64encode(PNG).decode()}, "data:image/png;base64,"),
        (
            {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGODlh"}},
            "data:image/gif;base64,R0lGODlh",
        ),
        ({"type": "image_url", "image_url": {"url": "data:image/svg+xml;base64,R0lGODlh"}}, "data:image/gif;base64,"),
        ({"type": "image", "image": b"\xff\xd8\xff\xe0jpeg"}, "data:image/jpeg;base64,"),
    ],
)
def test_image_parts_become_the_image_url_form(part: dict[str, Any], url: str) -> None:
    [message] = chat_messages([{"role": "user", "content": [{"type": "text", "text": "see"}, part]}])
    text, image = message["content"]
    assert text == {"type": "text", "text": "see"} and image["type"] == "image_url"
    assert image["image_url"]["url"].startswith(url)


def test_files_audio_and_parts_without_data(tmp_path: Path) -> None:
    picture = tmp_path / "p.png"
    picture.write_bytes(PNG)
    parts = [{"type": "image", "path": str(picture)}, {"type": "audio", "audio": WAV}, {"type": "image"}]
    as_part = {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGODlh"}}
    parts.append({"type": "image_url"})
    [message] = chat_messages([{"role": "user", "content": parts}], media=[{"data": PNG}, as_part])
    from_file, audio, from_media, from_part = message["content"]
    assert from_part == as_part  # a media entry given as a content part keeps its URL
    assert base64.b64decode(from_file["image_url"]["url"].partition(",")[2]) == PNG
    assert audio == {"type": "input_audio", "input_audio": {"data": base64.b64encode(WAV).decode(), "format": "wav"}}
    assert from_media["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()


@pytest.mark.parametrize(
    ("part", "why"),
    [
        ({"type": "image"}, "has no data and the request carries no more media"),
        ({"type": "audio", "audio": b"not audio"}, "cannot tell the audio format"),
        ({"type": "image", "image": "cat.png"}, "must be base64 or a data: URL"),  # never read as a file
        ({"type": "image", "path": "/does/not/exist.png"}, "cannot read media file"),
        ({"type": "image", "image": 42}, "cannot send media of type int"),
        # No URL is ever handed to the server, which would fetch it from its own network (SSRF).
        ({"type": "image", "url": "https://example.org/cat.png"}, "does not download media"),
        ({"type": "image_url", "image_url": "http://169.254.169.254/latest/meta-data/"}, "does not download media"),
        ({"type": "image_url", "image_url": {"url": "HTTP://10.0.0.1/a.png"}}, "must be base64 or a data: URL"),
        ({"type": "image_url", "image_url": {"url": " https://10.0.0.1/a.png"}}, "must be base64 or a data: URL"),
        ({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}, "must be base64 or a data: URL"),
        ({"type": "image_url", "image_url": {"url": "data:image/png,not-base64"}}, "must be base64-encoded"),
        ({"type": "video", "video": "https://example.org/v.mp4"}, "does not download media"),
    ],
)
def test_media_that_cannot_be_sent_is_a_user_error(part: dict[str, Any], why: str) -> None:
    with pytest.raises(UserError, match=why):
        chat_messages([{"role": "user", "content": [part]}])


def test_messages_without_media_are_sent_unchanged() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "tool", "content": {"type": "x", "ok": True}}]
    assert chat_messages(messages) == messages


# -- media URLs never reach the server (it would fetch them from its own network: SSRF) -----------------------


class Canary:
    """A loopback HTTP server standing for an internal address: it counts every request that reaches it."""

    def __init__(self) -> None:
        hits = self.hits = []  # type: list[str]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                self.wfile.write(PNG)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/internal/secret.png"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    target = Canary()
    yield target
    target.close()


def test_an_image_url_in_a_saved_session_never_reaches_vllm(
    server: FlakyOpenAIServer, canary: Canary, tmp_path: Path
) -> None:
    """A session file is untrusted input: its image URL used to go out as an image_url part, fetched by vLLM."""
    store = SessionStore(tmp_path)
    store.save(Session(id="s", conversation=[UserMessage((TextPart("look"), ImagePart(url=canary.url)))]))
    raw = json.loads((tmp_path / "s.json").read_text())  # the attacker's file, as written on disk
    assert canary.url in json.dumps(raw)
    for route in ({}, {"mode": "chat"}):
        with pytest.raises(UserError, match="does not download media"):
            Agent(server.backend(**route), store=store, session_id="s").run("and this one?")
    assert server.requests == [] and canary.hits == []


def test_an_image_url_a_tool_returns_never_reaches_vllm(server: FlakyOpenAIServer, canary: Canary) -> None:
    """A tool's media (a scraper passing on a page's <img src>) become bytes or the call's error, never a URL."""
    server.replies[:] = [
        Reply(events=[chat_chunk({"content": "<|tool_call>call:shot{}<tool_call|>"}), chat_chunk({}, "stop")]),
        Reply(events=[chat_chunk({"content": "Seen."}), chat_chunk({}, "stop"), usage_chunk(30, 2)]),
    ]

    @tool
    def shot() -> ImagePart:
        """Take a screenshot."""
        return ImagePart(url=canary.url)

    result = Agent(server.backend(mode="chat"), [shot]).run("Show me the page.")
    assert result.output == "Seen."
    [record] = result.tool_calls
    assert record.error is None and "does not download media" in json.dumps(result.conversation[-2].content)
    parts = [p for r in server.requests for m in r["messages"] if isinstance(m["content"], list) for p in m["content"]]
    assert len(server.requests) == 2 and [p for p in parts if p.get("type") != "text"] == []
    assert canary.hits == []
    with pytest.raises(UserError, match="does not download media"):
        Image(canary.url)  # refused where a tool makes it
