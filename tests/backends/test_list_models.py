"""``list_models()``: what a server says it has, over real loopback HTTP (the TUI's ``/model`` lists it)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the test double lives next to this file

from fake_ollama import GEMMA4_CAPABILITIES, FakeOllamaServer, closed_port

from agentkit.backends import Backend, ListsModels
from agentkit.backends.ollama import OllamaBackend
from agentkit.backends.vllm import VLLMBackend
from agentkit.errors import BackendUnavailable
from agentkit.testing import ScriptedBackend


class ModelsServer:
    """Answers ``GET /v1/models`` with a JSON body that a test can change between calls."""

    def __init__(self, status: int, payload: Any) -> None:
        self.status, self.payload, self.calls = status, payload, 0
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                double.calls += 1
                data = json.dumps(double.payload).encode()
                self.send_response(double.status if self.path == "/v1/models" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def models_server() -> Iterator[ModelsServer]:
    server = ModelsServer(200, {"object": "list", "data": [{"id": "google/gemma-4-31B-it"}, {"id": "a-lora"}]})
    yield server
    server.close()


async def test_ollama_lists_the_pulled_models_sorted() -> None:
    with FakeOllamaServer({"gemma4:e4b": GEMMA4_CAPABILITIES, "gemma4:26b": GEMMA4_CAPABILITIES}) as fake:
        backend = OllamaBackend("gemma4:e4b", fake.url)
        try:
            assert isinstance(backend, ListsModels) and isinstance(backend, Backend)
            assert await backend.list_models() == ["gemma4:26b", "gemma4:e4b"]
        finally:
            await backend.aclose()
        assert any(r.path == "/api/tags" for r in fake.requests)


async def test_ollama_down_is_a_backend_error_that_says_what_to_do() -> None:
    backend = OllamaBackend("gemma4:e4b", f"http://127.0.0.1:{closed_port()}", retries=0)
    with pytest.raises(BackendUnavailable, match="ollama serve"):
        await backend.list_models()
    await backend.aclose()


async def test_vllm_asks_the_server_again_on_every_call(models_server: ModelsServer) -> None:
    backend = VLLMBackend("google/gemma-4-31B-it", models_server.url, tokenizer=False, retry_wait=0.01)
    try:
        assert await backend.list_models() == ["a-lora", "google/gemma-4-31B-it"]
        models_server.payload = {"object": "list", "data": [{"id": "other"}]}
        assert await backend.list_models() == ["other"]  # not the list cached at the first call
        assert models_server.calls == 2
    finally:
        await backend.aclose()


async def test_vllm_without_a_listing_lists_nothing(models_server: ModelsServer) -> None:
    models_server.status, models_server.payload = 404, {"detail": "Not Found"}
    backend = VLLMBackend("m", models_server.url, tokenizer=False, retry_wait=0.01)
    try:
        assert await backend.list_models() == []
    finally:
        await backend.aclose()


async def test_scripted_lists_its_one_model() -> None:
    assert await ScriptedBackend([], model="tiny").list_models() == ["tiny"]
