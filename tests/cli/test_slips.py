"""The slips a newcomer makes in a first session, each answered with the fix, not only "invalid".

Found by walking through the README in a fresh virtualenv: a misspelt engine or separator in a backend URL, a
server address with no engine, ``vllm://HOST:PORT`` before knowing the model's name, a misspelt option,
command or config key, JSON where TOML goes, ``--help`` with no example, ``batch --json`` that printed nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import sys
from pathlib import Path

import pytest

from agentkit import backend_from_url
from agentkit.cli import build_parser, main
from agentkit.errors import UserError


@pytest.mark.parametrize(
    ("url", "advice"),
    [
        ("olama://localhost:11434/gemma4:e4b", "did you mean ollama://localhost:11434/gemma4:e4b?"),
        ("vlm://gpu-box:8000/google/gemma-4-31B-it", "did you mean vllm://gpu-box:8000/google/gemma-4-31B-it?"),
        ("vllm//127.0.0.1:8000/m", "did you mean vllm://127.0.0.1:8000/m?"),
        ("transformer:google/gemma-4-E2B-it", "did you mean transformers:google/gemma-4-E2B-it?"),
        ("127.0.0.1:8000/m", "needs its engine in front: vllm://127.0.0.1:8000/m or ollama://127.0.0.1:8000/m"),
        ("localhost:11434", "vllm://localhost:11434 or ollama://localhost:11434"),
        ("gpu-box.lan:8000/google/gemma-4-31B-it", "vllm://gpu-box.lan:8000/google/gemma-4-31B-it"),
        ("vllm:", "nothing after vllm: — give the server and the model it serves: vllm://HOST:8000/MODEL"),
        ("transformers:", "transformers:google/gemma-4-E2B-it"),
        ("vllm:127.0.0.1:8000/m", "is a server address, not a model; write vllm://127.0.0.1:8000/m"),
        ("vllm:/127.0.0.1:8000/m", "write vllm://127.0.0.1:8000/m"),
        ("ollama:localhost:11434/gemma4:e4b", "write ollama://localhost:11434/gemma4:e4b"),
        ("vllm://127.0.0.1:8000", "`agentkit models --backend vllm://127.0.0.1:8000`"),
    ],
)
def test_a_slip_in_a_backend_url_is_answered_with_the_url_meant(url: str, advice: str) -> None:
    with pytest.raises(UserError) as info:
        backend_from_url(url)
    assert advice in str(info.value)
    assert "?." not in str(info.value)


@pytest.mark.parametrize("url", ["ollama:gemma4:e4b", "ollama:library/gemma4:e4b", "vllm:google/gemma-4-31B-it"])
def test_short_urls_naming_a_model_are_still_models(url: str) -> None:
    # A model tag such as gemma4:e4b is not a HOST:PORT; the short form keeps working.
    assert backend_from_url(url).model == url.partition(":")[2]


def test_an_ollama_tag_is_not_mistaken_for_a_scheme_typo() -> None:
    with pytest.raises(UserError, match="for the Ollama model 'gemma4:e4b' use ollama:gemma4:e4b") as info:
        backend_from_url("gemma4:e4b")
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize(
    ("argv", "usage", "advice"),
    [
        (["run", "--backnd", "x", "hi"], "usage: agentkit run", "--backnd (did you mean --backend?)"),
        (["chat", "--sesion", "x"], "usage: agentkit chat", "--sesion (did you mean --session?)"),
        (["sessions", "list", "--jsn"], "usage: agentkit sessions list", "--jsn (did you mean --json?)"),
        (["mcp", "serve", "--wrkspace", "d"], "usage: agentkit mcp serve", "--wrkspace (did you mean --workspace?)"),
        (["rnu", "hi"], "usage: agentkit ", "invalid choice: 'rnu'; did you mean 'run'?"),
        (["sessions", "lsit"], "usage: agentkit sessions", "did you mean 'list'?"),
        (["--verison"], "usage: agentkit ", "--verison (did you mean --version?)"),  # not "COMMAND is required"
    ],
)
def test_a_misspelt_option_or_command_gets_the_closest_one_and_that_commands_usage(
    argv: list[str], usage: str, advice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and advice in err


def test_an_option_unlike_any_is_reported_without_a_guess(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--frobnicate", "hi", "extra"])
    err = capsys.readouterr().err
    assert "agentkit run: error: unrecognized arguments: --frobnicate extra; see agentkit run --help" in err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["sessions"], "agentkit sessions: error: say which action: list, show, delete, export, rename (see"),
        (["mcp"], "agentkit mcp: error: say which action: serve (see agentkit mcp --help)"),
        ([], None),  # `agentkit` alone prints the help (README)
    ],
)
def test_a_command_without_its_action_names_the_actions(
    argv: list[str], said: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """`agentkit sessions` said only "the following arguments are required: ACTION"."""
    if said is None:
        assert main(argv) == 0
        assert "first steps:" in capsys.readouterr().out
        return
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert said in capsys.readouterr().err


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prefix}{name}"] = sub
                found.update(_commands(sub, f"{prefix}{name} "))
    return found


def test_every_command_help_shows_examples_that_parse() -> None:
    parser = build_parser()
    commands = _commands(parser)
    shown = [name for name in commands if " " not in name] + ["mcp serve"]
    for name in shown:
        text = commands[name].format_help()
        assert "examples:\n  agentkit " + name.split()[0] in text, name
        for line in text.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines():
            example = line.split("  #", 1)[0].strip()
            if any(shell in example for shell in ("|", "$(", ">")):
                continue  # the shell around the command
            parser.parse_args(shlex.split(example)[1:])  # an example that does not parse would teach a mistake


def test_the_top_level_help_starts_a_newcomer_off(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    first = out.split("first steps:\n", 1)[1].split("\n\n", 1)[0]
    assert [line.split()[1] for line in first.splitlines()] == ["demo", "doctor", "run", "chat", "COMMAND"]


def test_models_lists_a_server_given_without_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "backends"))
    from fake_ollama import GEMMA4_CAPABILITIES, FakeOllamaServer

    with FakeOllamaServer({"gemma4:e4b": GEMMA4_CAPABILITIES, "gemma4:26b": GEMMA4_CAPABILITIES}) as fake:
        server = fake.url.replace("http://", "ollama://")
        assert main(["models", "--backend", server]) == 0
        out, err = capsys.readouterr()
        assert out == "gemma4:26b\ngemma4:e4b\n"
        assert f"use one with: agentkit run --backend {server}/gemma4:26b" in err
        assert main(["models", "--json", "--backend", server + "/"]) == 0
        info = json.loads(capsys.readouterr().out)
    assert info["current"] is None and info["models"] == ["gemma4:26b", "gemma4:e4b"]


def test_a_server_address_alone_runs_the_one_model_it_serves(capsys: pytest.CaptureFixture[str]) -> None:
    # `vllm serve MODEL` serves one model: `run --backend vllm://HOST:PORT` should not need its name copied.
    sys.path.insert(0, str(Path(__file__).parents[1] / "backends"))
    from fake_ollama import GEMMA4_CAPABILITIES, FakeOllamaServer, ScriptedReply

    with FakeOllamaServer({"gemma4:e4b": GEMMA4_CAPABILITIES}) as fake:
        fake.script(ScriptedReply(content="Hello."))
        server = fake.url.replace("http://", "ollama://")
        assert main(["run", "--no-save", "--backend", server + "/", "hi"]) == 0
        out, err = capsys.readouterr()
        assert out.strip() == "Hello." and f"{server} serves one model; using gemma4:e4b" in err
        assert fake.bodies("/api/chat")[0]["model"] == "gemma4:e4b"


def test_a_server_address_serving_several_models_is_asked_to_name_one(capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "backends"))
    from fake_ollama import GEMMA4_CAPABILITIES, FakeOllamaServer

    with FakeOllamaServer({"gemma4:e4b": GEMMA4_CAPABILITIES, "gemma4:26b": GEMMA4_CAPABILITIES}) as fake:
        server = fake.url.replace("http://", "ollama://")
        assert main(["run", "--backend", server, "hi"]) == 2
        err = capsys.readouterr().err
        assert f"serves 2 models (gemma4:26b, gemma4:e4b); name one: --backend {server}/gemma4:26b" in err
        assert fake.bodies("/api/chat") == []


def test_doctor_checks_the_one_model_a_server_address_serves(capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "backends"))
    from fake_ollama import GEMMA4_CAPABILITIES, FakeOllamaServer

    with FakeOllamaServer({"gemma4:e4b": GEMMA4_CAPABILITIES}) as fake:
        server = fake.url.replace("http://", "ollama://")
        main(["doctor", "--json", "--no-probe", "--backend", server])
        checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
        assert checks[f"backend     {server}/gemma4:e4b"]["status"] == "ok"
    with FakeOllamaServer({"gemma4:e4b": GEMMA4_CAPABILITIES, "gemma4:26b": GEMMA4_CAPABILITIES}) as fake:
        server = fake.url.replace("http://", "ollama://")
        assert main(["doctor", "--json", "--no-probe", "--backend", server]) == 2  # the user's to name, as in run
        (check,) = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"].startswith("backend")]
        assert check["status"] == "fail" and "serves 2 models (gemma4:26b, gemma4:e4b); name one" in check["fix"]


def test_a_servers_model_names_are_shown_one_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    # A name is the server's to choose: a newline in it showed a second model the server does not have.
    sys.path.insert(0, str(Path(__file__).parents[1] / "backends"))
    from fake_ollama import GEMMA4_CAPABILITIES, FakeOllamaServer

    with FakeOllamaServer({"a\nrm -rf ~:latest": GEMMA4_CAPABILITIES, "gemma4:e4b": GEMMA4_CAPABILITIES}) as fake:
        server = fake.url.replace("http://", "ollama://")
        assert main(["models", "--backend", server]) == 0
        out = capsys.readouterr().out
        assert out.splitlines() == ["a\\x0arm -rf ~:latest", "gemma4:e4b"]
        assert main(["run", "--backend", server, "hi"]) == 2
        assert "serves 2 models (a\\x0arm -rf ~:latest, gemma4:e4b)" in capsys.readouterr().err


def test_a_json_config_file_is_told_to_be_toml_and_a_misspelt_key_gets_the_right_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    as_json = tmp_path / "config.json"
    as_json.write_text('{"backend": "ollama://localhost:11434/gemma4:e4b"}', encoding="utf-8")
    assert main(["run", "--config", str(as_json), "hi"]) == 2
    assert "is not valid TOML" in (err := capsys.readouterr().err) and "the config file is TOML, not JSON" in err
    misspelt = tmp_path / "config.toml"
    misspelt.write_text('backnd = "ollama://localhost:11434/gemma4:e4b"\n', encoding="utf-8")
    assert main(["run", "--config", str(misspelt), "hi"]) == 2
    assert "unknown key(s) backnd (did you mean backend?)" in capsys.readouterr().err


def test_batch_json_says_finished_when_every_task_was_already_done(
    tmp_path: Path,
    scripted,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    tasks, out = tmp_path / "tasks.txt", tmp_path / "results.jsonl"
    tasks.write_text("one\ntwo\n", encoding="utf-8")
    url = scripted(["A.<turn|>", "B.<turn|>"])
    assert main(["batch", str(tasks), "-o", str(out), "-c", "1", "--backend", url]) == 0
    capsys.readouterr()
    assert main(["batch", str(tasks), "-o", str(out), "--backend", url, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {
            "type": "batch_finished",
            "done": 0,
            "total": 0,
            "ok": 0,
            "failed": 0,
            "retried": 0,
            "elapsed_s": 0.0,
            "rate_per_s": 0.0,
            "eta_s": 0.0,
            "skipped": 2,
        }
    ]


@pytest.mark.parametrize(
    ("given", "meant"), [("serch", "search"), ("web_search", "search"), ("file", "files"), ("run_python", "python")]
)
def test_a_misspelt_tool_name_gets_the_built_in_meant(
    given: str, meant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--backend", "scripted:unused.json", "--tools", f"fetch,{given}", "hi"]) == 2
    assert f"unknown tool(s) {given} (did you mean {meant}?) (from --tools)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("vllm://gpu-box:8000", True),
        ("vllm://gpu-box:8000/", True),
        ("ollama://localhost:11434", True),
        ("vllm://gpu-box:8000/google/gemma-4-31B-it", False),
        ("vllm://gpu-box:8000//srv/models/x", False),
        ("ollama:gemma4:e4b", False),
        ("foo://box:1", False),  # an unknown scheme gets its own error, not a model listing
        ("transformers:google/gemma-4-E2B-it", False),
    ],
)
def test_is_server_address(url: str, expected: bool) -> None:
    from agentkit.backends import is_server_address

    assert is_server_address(url) is expected


def test_run_json_ends_with_an_error_line_when_the_settings_stop_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # README: a run that cannot start prints a last line `error`; a bad config file or --tools printed nothing.
    bad = tmp_path / "bad.toml"
    bad.write_text('backend = "ollama://x\n', encoding="utf-8")
    for argv in (["--config", str(bad)], ["--backend", "scripted:unused.json", "--tools", "serch"]):
        assert main(["run", "--json", *argv, "hi"]) == 2
        (line,) = capsys.readouterr().out.splitlines()
        event = json.loads(line)
        assert event["type"] == "error" and event["error_type"] == "UserError" and event["session_id"] is None


def test_an_otlp_endpoint_without_a_scheme_is_named_as_the_problem(
    scripted,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # It was reported as "N spans could not be sent ... is the collector running there?".
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")
    assert main(["run", "--backend", scripted(["Hi.<turn|>"]), "--no-save", "hi"]) == 0
    err = capsys.readouterr().err
    assert "OTEL_EXPORTER_OTLP_ENDPOINT='localhost:4318' has no scheme" in err and "http://localhost:4318" in err
    assert "could not be sent" not in err


def test_an_otlp_timeout_that_is_not_a_number_keeps_the_bound(
    scripted,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    otlp_receiver: tuple[str, list[bytes]],
) -> None:
    # The SDK fell back to its 10 s of retries at exit, past README's "at most 3 s".
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from agentkit.cli import otel

    made: list[float | None] = []  # the timeout the command gave the exporter
    from opentelemetry.exporter.otlp.proto.http import trace_exporter

    original = trace_exporter.OTLPSpanExporter.__init__

    def init(self, *args, timeout=None, **kwargs):  # type: ignore[no-untyped-def]
        made.append(timeout)
        original(self, *args, timeout=timeout, **kwargs)

    monkeypatch.setattr(trace_exporter.OTLPSpanExporter, "__init__", init)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver[0])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "abc")
    assert main(["run", "--backend", scripted(["Hi.<turn|>"]), "--no-save", "hi"]) == 0
    assert "OTEL_EXPORTER_OTLP_TIMEOUT='abc' is not a number of seconds" in capsys.readouterr().err
    assert made == [otel.EXIT_TIMEOUT_S]
    assert otlp_receiver[1]  # the spans still went out


def test_without_bubblewrap_doctor_reports_it_and_run_says_what_to_do(
    scripted,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # doctor stopped half-way with the error (no sandbox line, no summary); run advised a Python argument
    # (allow_unsafe_unconfined=True) that nobody choosing tools by name can pass.
    import shutil

    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "bwrap" else which(name, *a, **k))
    url = scripted(["Hi.<turn|>"])
    assert main(["doctor", "--no-probe", "--json", "--tools", "python", "--backend", url]) == 1
    checks = {c["check"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["workspace"]["status"] == "fail" and "needs bubblewrap" in checks["workspace"]["detail"]
    assert checks["sandbox"]["status"] == "fail" and "apt-get install bubblewrap" in checks["sandbox"]["fix"]
    assert main(["run", "--tools", "python", "--backend", url, "hi"]) == 1
    err = capsys.readouterr().err
    assert "apt-get install bubblewrap" in err and "leave python out of the tools" in err
    assert "allow_unsafe_unconfined" not in err


def test_models_of_a_server_that_is_down_says_how_to_start_it_without_a_made_up_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "--backend", "vllm://127.0.0.1:9"]) == 3
    err = capsys.readouterr().err
    assert "Cannot reach vLLM at http://127.0.0.1:9" in err and "vllm serve MODEL " in err


def test_text_that_is_not_utf8_is_refused_up_front(
    scripted,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "café" in Latin-1 as an argument, on stdin, as --system, as a title: an "internal error" when the session
    # was saved, or a vLLM request blamed on the server ("sent something agentkit cannot read").
    latin1 = b"caf\xe9".decode("utf-8", "surrogateescape")  # what Python makes of such an argument
    url = scripted(["Hi.<turn|>"])
    assert main(["run", "--backend", url, latin1]) == 2
    assert "the task is not UTF-8 text (character 4 is the byte 0xe9" in capsys.readouterr().err
    assert main(["run", "--backend", url, "--system", latin1, "hi"]) == 2
    assert "--system is not UTF-8 text" in capsys.readouterr().err

    class Stdin:
        buffer = io.BytesIO(b"caf\xe9\n")

        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stdin", Stdin())
    assert main(["run", "--backend", url]) == 2
    assert "the task on stdin is not UTF-8 text (byte 3" in capsys.readouterr().err
    assert main(["run", "--backend", url, "fine"]) == 0
    capsys.readouterr()
    assert main(["sessions", "rename", "2", latin1]) == 2
    assert "the new title is not UTF-8 text" in capsys.readouterr().err
