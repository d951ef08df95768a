"""Settings precedence (flags > environment > config file > automatic default) and the default backend."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentkit import SamplingParams
from agentkit.cli import config, main
from agentkit.cli.config import default_backend_url, resolve_settings, with_model
from agentkit.errors import BackendUnavailable, UserError


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_flag_beats_environment_beats_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, 'backend = "vllm://box:8000/google/gemma-4-31B-it"\nthinking = true\ntools = ["search"]\n')
    s = resolve_settings()
    assert (s.backend_url, s.backend_source) == (
        "vllm://box:8000/google/gemma-4-31B-it",
        f"config {tmp_path / 'config.toml'}",
    )
    assert s.options.thinking is True and s.tools == ("search",)

    monkeypatch.setenv("AGENTKIT_BACKEND", "ollama://localhost:11434/gemma4:e2b")
    monkeypatch.setenv("AGENTKIT_THINKING", "0")
    s = resolve_settings()
    assert (s.backend_url, s.backend_source) == ("ollama://localhost:11434/gemma4:e2b", "AGENTKIT_BACKEND")
    assert s.options.thinking is False

    s = resolve_settings(backend="transformers:google/gemma-4-E2B-it", thinking=True, tools="")
    assert (s.backend_url, s.backend_source) == ("transformers:google/gemma-4-E2B-it", "--backend")
    assert s.options.thinking is True and s.tools == ()


def test_an_unknown_tool_error_names_where_the_list_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file = write_config(tmp_path, 'tools = ["fetch", "nope"]\n')
    with pytest.raises(UserError, match=rf"unknown tool\(s\) nope \(from tools in {config_file}\)"):
        resolve_settings()
    monkeypatch.setenv("AGENTKIT_TOOLS", "search,bogus")
    with pytest.raises(UserError, match=r"unknown tool\(s\) bogus \(from AGENTKIT_TOOLS\); choose from search"):
        resolve_settings()
    with pytest.raises(UserError, match=r"unknown tool\(s\) typo \(from --tools\)"):
        resolve_settings(tools="typo")
    assert resolve_settings(tools="").tools == ()  # the flag, even empty, beats the variable


def test_named_backends_and_model_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, '[backends]\nlocal = "ollama://localhost:11434/gemma4:e4b"\n')
    s = resolve_settings(backend="local")
    assert s.backend_url == "ollama://localhost:11434/gemma4:e4b"
    assert s.named_backends == {"local": "ollama://localhost:11434/gemma4:e4b"}
    assert resolve_settings(backend="local", model="gemma4:e2b").backend_url == "ollama://localhost:11434/gemma4:e2b"
    monkeypatch.setenv("AGENTKIT_MODEL", "gemma4:26b")
    assert resolve_settings(backend="local").backend_url == "ollama://localhost:11434/gemma4:26b"


def test_an_unknown_backend_name_lists_the_names_in_the_config(tmp_path: Path) -> None:
    write_config(tmp_path, 'backend = "gpu"\n[backends]\nlocal = "ollama://localhost:11434/gemma4:e4b"\n')
    with pytest.raises(UserError, match=r"'gpu' is not a backend URL nor a name from \[backends\].*its names: local"):
        resolve_settings()
    with pytest.raises(UserError, match=r"--backend: 'lcoal' is not a backend URL"):
        resolve_settings(backend="lcoal")


def test_with_model_rewrites_each_url_form() -> None:
    assert (
        with_model("vllm://h:8000/google/gemma-4-31B-it", "google/gemma-4-E4B-it")
        == "vllm://h:8000/google/gemma-4-E4B-it"
    )
    assert with_model("transformers:google/gemma-4-E2B-it", "/models/mine") == "transformers:/models/mine"
    assert with_model("ollama:gemma4", "gemma4:e2b") == "ollama:gemma4:e2b"
    with pytest.raises(UserError, match="scripted"):
        with_model("scripted:out.json", "x")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("backend = ", "not valid TOML"),
        ('backnd = "x"', "unknown key"),
        ("thinking = 3", "thinking must be true or false"),
        ('tools = "search"', "tools must be a list"),
        ('tools = ["search", "teleport"]', "unknown tool"),
        ("max_steps = 0", "max_steps"),
    ],
)
def test_bad_config_files_are_usage_errors_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = write_config(tmp_path, text)
    assert main(["run", "--backend", "scripted:x.json", "hello"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    if "TOML" in message or "key" in message:
        assert str(path) in err


def test_a_config_file_that_is_not_utf8_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.toml").write_bytes('system = "café"\n'.encode("latin-1"))
    assert main(["run", "--backend", "scripted:x.json", "hello"]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err


def test_explicit_missing_config_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.toml"), "hi"]) == 2
    assert "does not exist" in capsys.readouterr().err


class FakeOllamaTags(http.server.BaseHTTPRequestHandler):
    """Answers Ollama's /api/tags like a server that has pulled two models."""

    def do_GET(self) -> None:
        if self.path != "/api/tags":
            self.send_error(404)
            return
        body = json.dumps({"models": [{"name": "llama3:8b"}, {"name": "gemma4:e2b"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_ollama() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeOllamaTags)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_default_backend_prefers_a_running_ollama_and_its_gemma4_model(fake_ollama: str) -> None:
    assert default_backend_url({"OLLAMA_HOST": fake_ollama}) == f"ollama://{fake_ollama}/gemma4:e2b"


def test_default_backend_falls_back_to_transformers_then_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    nobody = {"OLLAMA_HOST": "127.0.0.1:9"}  # the discard port: nothing answers
    monkeypatch.setattr(config, "transformers_installed", lambda: True)
    assert default_backend_url(nobody) == "transformers:google/gemma-4-E2B-it"
    monkeypatch.setattr(config, "transformers_installed", lambda: False)
    with pytest.raises(BackendUnavailable) as info:
        default_backend_url(nobody)
    text = str(info.value)
    assert "ollama pull gemma4:e4b" in text and "agentkit demo" in text
    # The package named agentkit on PyPI is another project: the command works from the checkout instead.
    assert "pip install -e '.[transformers]'" in text and "agentkit[transformers]" not in text


def test_no_backend_at_all_exits_3_with_instructions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    monkeypatch.setattr(config, "transformers_installed", lambda: False)
    assert main(["run", "hello"]) == 3
    err = capsys.readouterr().err
    assert "ollama serve" in err and "Traceback" not in err


def test_the_automatic_backend_is_named_on_stderr(
    fake_ollama: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentkit.backends import registry
    from agentkit.testing import ScriptedBackend

    monkeypatch.setenv("OLLAMA_HOST", fake_ollama)
    built: list[str] = []
    monkeypatch.setattr(registry, "backend_from_url", lambda url: built.append(url) or ScriptedBackend(["Hi.<turn|>"]))
    assert main(["run", "--no-save", "hello"]) == 0  # this fake only lists models: the answer comes from a script
    assert built == [f"ollama://{fake_ollama}/gemma4:e2b"]
    assert f"no backend configured; using ollama://{fake_ollama}/gemma4:e2b" in capsys.readouterr().err


def test_sampling_and_context_size_come_from_the_config_file_under_the_flags(tmp_path: Path) -> None:
    write_config(tmp_path, "temperature = 0.4\ntop_p = 0.9\nmax_tokens = 300\nnum_ctx = 8192\n")
    s = resolve_settings()
    assert s.options.sampling == SamplingParams(temperature=0.4, top_p=0.9, max_tokens=300)
    assert s.num_ctx == 8192
    s = resolve_settings(sampling={"temperature": 0.0, "top_p": None}, num_ctx=4096)
    assert (s.options.sampling.temperature, s.options.sampling.top_p, s.num_ctx) == (0.0, 0.9, 4096)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("temperature = -1\n", "temperature must be a number >= 0"),
        ('top_p = "high"\n', "top_p must be a number in (0, 1]"),
        ("num_ctx = 10\n", "num_ctx = 10 in"),
        ("num_ctx = 1.5\n", "num_ctx must be a whole number"),
    ],
)
def test_bad_sampling_in_the_config_file_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(UserError) as info:
        resolve_settings()
    assert message in str(info.value) and str(path) in str(info.value)
