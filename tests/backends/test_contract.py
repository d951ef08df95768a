"""The backend conformance suite (agentkit.testing.backend_contract) against every backend agentkit ships.

Each harness makes its engine write the suite's raw outputs the way that backend's own tests do: ScriptedBackend
replays them, FakeOllamaServer answers with what Ollama's Gemma 4 parser would extract from them, and the real
vLLM server and the tiny transformers model are forced token by token by a logits processor, so the text still
comes out of the real sampler, stop handling and detokenizer.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the test doubles live next to this file

from fake_ollama import FakeOllamaServer, ScriptedReply, closed_port
from vllm_server import MAX_MODEL_LEN, START_TIMEOUT_S, VLLMServer

from agentkit import gemma4
from agentkit.backends import Backend, OllamaBackend, ScriptedBackend, VLLMBackend
from agentkit.gemma4.tokens import STOP_MARKERS
from agentkit.testing.backend_contract import BackendContract, ContractHarness


class TestScriptedContract(BackendContract):
    @pytest.fixture
    def harness(self) -> ContractHarness:
        return ContractHarness(backend_for=lambda *outputs: ScriptedBackend(list(outputs)))


def ollama_reply(raw: str) -> ScriptedReply:
    """What Ollama streams for a model that writes ``raw``: its parser's fields, "length" when no marker ended it."""
    ends = [i for i in (raw.find(m) for m in STOP_MARKERS) if i != -1]
    parsed = gemma4.parse_response(raw)
    return ScriptedReply(
        content=parsed.content,
        thinking=parsed.thinking,
        tool_calls=[(c.name, c.arguments) for c in parsed.tool_calls],
        done_reason="stop" if ends else "length",
        delay_s=0.002,  # an engine writes at a finite rate; a cancellation can land mid-answer
    )


class TestOllamaContract(BackendContract):
    @pytest.fixture
    def fake(self) -> Iterator[FakeOllamaServer]:
        with FakeOllamaServer() as server:
            yield server

    @pytest.fixture
    def harness(self, fake: FakeOllamaServer) -> ContractHarness:
        backend = OllamaBackend("gemma4:e4b", fake.url, retry_wait=0.001)

        def backend_for(*outputs: str) -> Backend:
            fake.script(*map(ollama_reply, outputs))
            return backend

        def received_images() -> list[bytes]:
            body = fake.bodies("/api/chat")[-1]
            return [base64.b64decode(image) for m in body["messages"] for image in m.get("images") or ()]

        return ContractHarness(
            backend_for=backend_for,
            unavailable=lambda: OllamaBackend("gemma4:e4b", f"http://127.0.0.1:{closed_port()}", retry_wait=0.001),
            received_images=received_images,
        )


@pytest.mark.vllm
@pytest.mark.timeout(START_TIMEOUT_S + 120)  # the first test may wait for the session's server to start
class TestVLLMContract(BackendContract):
    @pytest.fixture
    def harness(self, vllm_server: VLLMServer) -> ContractHarness:
        transformers = pytest.importorskip("transformers")
        tokenizer = transformers.AutoTokenizer.from_pretrained(vllm_server.model_dir)

        def ids(text: str) -> list[int]:
            encoded: list[int] = tokenizer.encode(text, add_special_tokens=False)
            assert tokenizer.decode(encoded, skip_special_tokens=False) == text
            return encoded

        def backend_for(*outputs: str) -> Backend:
            # The server's ScriptedOutputLogitsProcessor forces the first output; a second one after a tool result.
            xargs: dict[str, Any] = {"agentkit_script": ids(outputs[0])}
            if len(outputs) > 1 and outputs[1] != outputs[0]:
                xargs["agentkit_script_after"] = ids(outputs[1])
                xargs["agentkit_switch_token"] = tokenizer.convert_tokens_to_ids("<tool_response|>")
            if not any(m in outputs[0] for m in STOP_MARKERS):
                xargs["agentkit_delay_s"] = 0.01  # a long answer stays in flight long enough to be cancelled
            return VLLMBackend(vllm_server.model, vllm_server.base_url, extra_body={"vllm_xargs": xargs})

        return ContractHarness(
            backend_for=backend_for,
            unavailable=lambda: VLLMBackend("no-such-model", vllm_server.base_url, tokenizer=False),
            context_tokens=MAX_MODEL_LEN,
        )


@pytest.mark.transformers
class TestTransformersContract(BackendContract):
    @pytest.fixture(scope="class")
    def harness(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContractHarness]:
        torch = pytest.importorskip("torch")
        pytest.importorskip("transformers")
        from test_transformers import ScriptedLogits
        from transformers import AutoTokenizer

        from agentkit.backends.transformers import TransformersBackend
        from agentkit.testing.tiny_model import build_tiny_gemma4

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # two shared cores: more torch threads only wait on each other
        root = tmp_path_factory.mktemp("contract-tiny")
        model_dir = build_tiny_gemma4(root / "model")
        script = ScriptedLogits(AutoTokenizer.from_pretrained(model_dir))
        backend = TransformersBackend(model_dir, logits_processors=[script], max_cache_len=512)

        def backend_for(*outputs: str) -> Backend:
            script.scripts.clear()  # what an earlier check left unread must not leak into this one
            script.queue(*outputs)
            return backend

        yield ContractHarness(
            backend_for=backend_for,
            unavailable=lambda: TransformersBackend(root / "missing"),
            context_tokens=512,
        )
        torch.set_num_threads(threads)
