"""backend_from_url: one string picks the engine; bad strings say what a good one looks like."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentkit import backend_from_url
from agentkit.errors import UserError
from agentkit.testing import ScriptedBackend


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("gemma4", "expected SCHEME"),
        ("ollama://", "no host"),
        ("ollama://localhost:11434/", "no model"),
        ("ollama://localhost:notaport/gemma4", "invalid backend"),
        ("llamacpp://x/y", "unknown backend scheme 'llamacpp'"),
        ("http://localhost:8000/v1", "vllm://HOST:PORT/MODEL"),
        ("gemma4:e4b", "use ollama:gemma4:e4b"),
    ],
)
def test_bad_urls_are_user_errors_with_examples(url: str, why: str) -> None:
    with pytest.raises(UserError, match="Examples: ollama://") as info:
        backend_from_url(url)
    assert why in str(info.value)


def test_a_url_that_is_not_a_string_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"needs a URL string.*got NoneType"):
        backend_from_url(None)  # type: ignore[arg-type]


def test_scripted_backend_from_file(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(["Hello!<turn|>"]))
    backend = backend_from_url(f"scripted:{path}")
    assert isinstance(backend, ScriptedBackend)
    path.write_text('{"not": "a list"}')
    with pytest.raises(UserError, match="JSON list of strings"):
        backend_from_url(f"scripted:{path}")


def test_scripted_backend_rejects_a_lone_string_or_non_string_outputs() -> None:
    with pytest.raises(UserError, match="takes a list of raw outputs"):
        ScriptedBackend("Hello!<turn|>")
    with pytest.raises(UserError, match="output 1 is of type int"):
        ScriptedBackend(["Hello!<turn|>", 42])  # type: ignore[list-item]
    assert ScriptedBackend(["Hi<turn|>", lambda request: "Bye<turn|>"]).model == "scripted-gemma4"


def test_engine_urls_resolve_host_and_model() -> None:
    ollama = pytest.importorskip("agentkit.backends.ollama")
    b = backend_from_url("ollama://example.org:1234/gemma4:e4b")
    assert isinstance(b, ollama.OllamaBackend)
    assert b.model == "gemma4:e4b"
    assert backend_from_url("ollama:gemma4").model == "gemma4"


def test_vllm_url_keeps_slashes_in_model_name() -> None:
    vllm = pytest.importorskip("agentkit.backends.vllm")
    b = backend_from_url("vllm://gpu-box:8000/google/gemma-4-31B-it")
    assert isinstance(b, vllm.VLLMBackend)
    assert b.model == "google/gemma-4-31B-it"


def test_vllm_url_can_name_a_local_model_path() -> None:
    pytest.importorskip("agentkit.backends.vllm")
    assert backend_from_url("vllm://127.0.0.1:8011//srv/models/tiny").model == "/srv/models/tiny"
