"""``agentkit run`` options people expect from llm/ollama: sampling, context size, continuing, stop reasons."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from agentkit import SessionStore
from agentkit.assemble import backend_options
from agentkit.cli import main
from agentkit.errors import UserError
from agentkit.testing import ScriptedBackend

from .conftest import call


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> ScriptedBackend:
    """The backend ``run`` builds, kept so a test can read the requests it was sent."""
    import agentkit.cli.common as common

    backend = ScriptedBackend(["Fine.<turn|>"] * 5)
    monkeypatch.setattr(common, "make_backend", lambda settings: backend)
    return backend


def test_sampling_flags_reach_every_request(recorded: ScriptedBackend, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "--temperature", "0.2", "--top-p", "0.5", "--max-tokens", "77", "--system", "Be brief.", "hi"]
    assert main(argv) == 0
    (request,) = recorded.requests
    assert (request.sampling.temperature, request.sampling.top_p, request.sampling.max_tokens) == (0.2, 0.5, 77)
    assert request.sampling.top_k == 64  # what was not given keeps Gemma 4's default
    assert request.messages[0] == {"role": "system", "content": "Be brief."}


def test_without_flags_the_defaults_are_gemma4s(recorded: ScriptedBackend) -> None:
    assert main(["run", "hi"]) == 0
    assert (recorded.requests[0].sampling.temperature, recorded.requests[0].sampling.top_p) == (1.0, 0.95)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--temperature", "-1"], "temperature must be a number >= 0"),
        (["--top-p", "1.5"], "top_p must be a number in (0, 1]"),
        (["--max-tokens", "0"], "max_tokens must be a whole number >= 1"),
        (["--num-ctx", "10"], "--num-ctx 10 is too small"),
    ],
)
def test_bad_sampling_values_are_usage_errors(
    flags: list[str], message: str, scripted, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    assert main(["run", "--backend", scripted(["x<turn|>"]), *flags, "hi"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_num_ctx_goes_to_the_backends_that_have_one() -> None:
    assert backend_options("ollama://h:1/gemma4:e4b", num_ctx=8192) == {"options": {"num_ctx": 8192}}
    assert backend_options("transformers:/models/x", num_ctx=8192) == {"max_cache_len": 8192}
    with pytest.raises(UserError, match="--max-model-len"):
        backend_options("vllm://h:8000/google/gemma-4-31B-it", num_ctx=8192)
    with pytest.raises(UserError, match="not to scripted"):
        backend_options("scripted:x.json", num_ctx=8192)
    assert backend_options("vllm://h:8000/m") == {}


def test_num_ctx_reaches_ollama_over_http(capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "backends"))
    from fake_ollama import FakeOllamaServer, ScriptedReply

    with FakeOllamaServer() as fake:
        fake.script(ScriptedReply(content="Hello."))
        url = fake.url.replace("http://", "ollama://") + "/gemma4:e4b"
        assert main(["run", "--no-save", "--backend", url, "--num-ctx", "16384", "--max-tokens", "99", "hi"]) == 0
        (body,) = fake.bodies("/api/chat")
    assert body["options"]["num_ctx"] == 16384 and body["options"]["num_predict"] == 99
    assert capsys.readouterr().out == "Hello.\n"


def test_num_ctx_on_vllm_is_a_clear_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--backend", "vllm://127.0.0.1:9/m", "--num-ctx", "4096", "hi"]) == 2
    assert "vllm serve MODEL --max-model-len N" in capsys.readouterr().err


def test_continue_picks_the_last_session(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["run", "--json", "--backend", scripted(["One.<turn|>"]), "first"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[-1])["session_id"]
    assert main(["run", "--json", "--backend", scripted(["Two.<turn|>"]), "second"]) == 0
    second = json.loads(capsys.readouterr().out.splitlines()[-1])["session_id"]
    assert main(["run", "-c", "--backend", scripted(["Three.<turn|>"]), "and then?"]) == 0
    assert capsys.readouterr().out == "Three.\n"
    users = [m["content"] for m in SessionStore().load(second).messages if m["role"] == "user"]
    assert users == ["second", "and then?"]
    assert len(SessionStore().load(first).messages) == 2  # untouched
    assert len(SessionStore().list()) == 2  # no new session was started


def test_continue_with_no_session_or_with_no_save_is_a_usage_error(scripted, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["run", "-c", "--backend", scripted(["x<turn|>"]), "hi"]) == 2
    assert "no saved session to continue" in capsys.readouterr().err
    assert main(["run", "-c", "--no-save", "--backend", scripted(["x<turn|>"]), "hi"]) == 2
    assert "--continue continues a saved session" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # -s and -c name two different sessions
        main(["run", "-c", "-s", "abc", "hi"])
    assert info.value.code == 2


def test_session_ids_can_be_given_by_a_unique_start(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from agentkit import Session

    store = SessionStore()
    for sid in ("20260101-aaaa11", "20260101-aabb22", "20260202-cccc33"):
        store.save(Session(id=sid, messages=[{"role": "user", "content": sid}, {"role": "assistant", "content": "ok"}]))
    assert main(["run", "-s", "20260202", "--backend", scripted(["Yes.<turn|>"]), "more"]) == 0
    assert len(store.load("20260202-cccc33").messages) == 4
    assert main(["run", "-s", "20260101-aa", "--backend", scripted(["x<turn|>"]), "more"]) == 2
    err = capsys.readouterr().err
    assert "ambiguous" in err and "20260101-aaaa11" in err and "20260101-aabb22" in err
    assert main(["run", "-s", "1999", "--backend", scripted(["x<turn|>"]), "more"]) == 2
    assert "no session '1999'" in capsys.readouterr().err
    assert main(["sessions", "show", "20260101-aab"]) == 0  # the sessions commands take prefixes too
    assert "20260101-aabb22" in capsys.readouterr().out


def test_a_reply_cut_at_max_tokens_says_so_in_words(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    url = scripted(["word " * 400 + "<turn|>"])
    assert main(["run", "--backend", url, "--max-tokens", "20", "write a lot"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("word word")  # what was written is kept
    assert "cut off at the token limit" in err and "--max-tokens" in err
    assert "see the notices above" not in err


def test_step_limit_is_explained(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    outputs = [call("nonexistent_tool", x="1")] * 2
    assert main(["run", "--backend", scripted(outputs), "--max-steps", "2", "loop"]) == 1
    assert "stopped at the step limit before a final answer (raise it with --max-steps)" in capsys.readouterr().err


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: agentkit") and "demo" in out and "models" in out


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_code_that_fails_in_the_sandbox_is_shown_as_a_failure(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    outputs = [call("run_python", code="import sys\nsys.exit('no data here')"), "It failed.<turn|>"]
    assert main(["run", "--yes", "--backend", scripted(outputs), "--tools", "python", "go"]) == 0
    err = capsys.readouterr().err
    assert "✗ run_python" in err and "exit code 1" in err and "no data here" in err
    assert "✓ run_python" not in err


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_a_sandbox_that_cannot_start_python_is_never_a_check_mark(
    scripted, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    # The interpreter the sandbox runs is missing (as a venv's was, hidden by a mount): whether the sandbox
    # reports that as an exit status or as an error, the activity line must say it failed.
    monkeypatch.setattr(sys, "executable", "/nonexistent/venv/bin/python3")
    outputs = [call("run_python", code="print(1)"), "Done.<turn|>"]
    assert main(["run", "--yes", "--backend", scripted(outputs), "--tools", "python", "go"]) == 0
    err = capsys.readouterr().err
    assert "✗ run_python" in err and "✓ run_python" not in err
