"""``agentkit run`` end to end through ``main()``: streams, JSON events, tools, approvals, exit codes, Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentkit import SessionStore
from agentkit.cli import main
from agentkit.cli.common import exit_code_for
from agentkit.errors import BackendResponseError, BackendUnavailable, ModelNotFound, SessionNotFound, UserError

from .conftest import call

REPO = Path(__file__).resolve().parents[2]


def test_answer_on_stdout_thinking_on_stderr(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    url = scripted(["<|channel>thought\nPondering.<channel|>The answer is **42**.<turn|>"])
    assert main(["run", "--backend", url, "--thinking", "what is six times seven?"]) == 0
    out, err = capsys.readouterr()
    assert out == "The answer is **42**.\n"
    assert "Pondering." in err
    (session,) = SessionStore().list()
    assert "1 step · " in err and f"agentkit run -s {session.id}" in err  # how to continue, on stderr


def test_json_events_are_one_object_per_line_ending_with_the_result(
    scripted, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    url = scripted(["Hello there.<turn|>"])
    assert main(["run", "--json", "--backend", url, "hi"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["type"] for e in events]
    assert set(kinds) == {"text_delta", "step_finished", "run_finished"}
    assert "".join(e["text"] for e in events if e["type"] == "text_delta") == "Hello there."
    final = events[-1]
    assert final["type"] == "run_finished" and final["ok"] is True and final["stop_reason"] == "completed"
    assert SessionStore().load(final["session_id"]).messages[-1]["content"] == "Hello there."


def test_json_result_of_an_unsaved_run_names_no_session(scripted, capsys) -> None:  # type: ignore[no-untyped-def]
    """--no-save: an id in the result would send a script to continue a session that does not exist."""
    assert main(["run", "--json", "--no-save", "--backend", scripted(["Hi.<turn|>"]), "hi"]) == 0
    final = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert final["type"] == "run_finished" and final["session_id"] is None and SessionStore().list() == []


def test_json_mode_ends_with_an_error_event_when_the_run_fails(scripted, capsys) -> None:  # type: ignore[no-untyped-def]
    outputs = [call("nonexistent_tool", x="1")]  # the backend has nothing left for the second step
    assert main(["run", "--json", "--backend", scripted(outputs), "go"]) == 1
    out, err = capsys.readouterr()
    last = json.loads(out.splitlines()[-1])
    assert last["type"] == "error" and last["error_type"] == "BackendError" and "no output left" in last["error"]
    assert last["session_id"] and "no output left" in err


def test_json_mode_ends_with_an_error_event_when_the_run_cannot_start(  # type: ignore[no-untyped-def]
    scripted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Errors before the first event (no backend, a bad session id, a missing file) printed nothing on stdout with
    --json: a program reading the stream saw it end empty. Now every failure ends it with the error line."""
    url = scripted(["x<turn|>"])
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    monkeypatch.setattr("agentkit.cli.config.transformers_installed", lambda: False)
    cases = [
        (["run", "--json", "hi"], 3, "BackendUnavailable"),
        (["run", "--json", "-b", url, "-s", "nope", "hi"], 2, "SessionNotFound"),
        (["run", "--json", "-b", url, "--image", str(tmp_path / "no.png"), "hi"], 2, "UserError"),
    ]
    for argv, code, error_type in cases:
        assert main(argv) == code, argv
        out, err = capsys.readouterr()
        lines = [json.loads(line) for line in out.splitlines()]
        assert len(lines) == 1 and lines[0]["type"] == "error" and lines[0]["error_type"] == error_type, out
        assert lines[0]["session_id"] is None and lines[0]["error"] in err


def test_a_missing_extra_is_exit_3_with_the_install_command_not_an_internal_error() -> None:
    """README's exit codes: 3 for "extra not installed". The transformers backend without its extra said "internal
    error: ImportError ... this is a bug" and exited 1. In a process of its own: hiding torch from this one (as an
    earlier version did) left torch's objects to be freed while it was hidden, 26 tracebacks at the suite's exit."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = sys.modules['transformers'] = None  # as if the extra were not installed\n"
        "from agentkit.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", code, "run", *args, "--backend", "transformers:some/model", "hi"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    plain = run()
    assert plain.returncode == 3, plain.stderr
    err = plain.stderr
    assert "agentkit: error: the transformers backend needs torch and transformers" in err
    assert "pip install -e '.[transformers]'" in err and "internal error" not in err and "bug" not in err
    assert "install CPU torch first" in err  # else pip picks a multi-GB CUDA build on a machine without a GPU
    as_json = run("--json")
    assert as_json.returncode == 3
    (line,) = as_json.stdout.splitlines()
    assert json.loads(line)["type"] == "error"


def test_task_from_stdin_and_session_continued(
    scripted, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("summarise: cats are great\n"))
    assert main(["run", "--json", "--backend", scripted(["Cats: great.<turn|>"])]) == 0
    session = json.loads(capsys.readouterr().out.splitlines()[-1])["session_id"]
    assert main(["run", "--backend", scripted(["Still great.<turn|>"]), "--session", session, "and dogs?"]) == 0
    assert capsys.readouterr().out == "Still great.\n"
    users = [m["content"] for m in SessionStore().load(session).messages if m["role"] == "user"]
    assert users == ["summarise: cats are great\n", "and dogs?"]


def test_files_tool_with_yes_writes_and_without_is_denied(
    scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    ws = tmp_path / "ws"
    ws.mkdir()
    outputs = [call("write_file", path="hello.txt", content="hi from gemma"), "Written.<turn|>"]
    # stdin is not a terminal here: without --yes nobody can approve, so the write is denied.
    assert main(["run", "--backend", scripted(outputs), "--tools", "files", "--workspace", str(ws), "write it"]) == 0
    out, err = capsys.readouterr()
    assert not (ws / "hello.txt").exists()
    assert "✗ write_file" in err and "approval" in err
    assert "rerun with --yes" in err  # the person learns how to allow it
    assert main(["run", "--yes", "--backend", scripted(outputs), "--tools", "files", "-w", str(ws), "write it"]) == 0
    out, err = capsys.readouterr()
    assert (ws / "hello.txt").read_text() == "hi from gemma"
    assert "⚙ write_file" in err and "✓ write_file" in err
    assert out == "Written.\n"


def test_a_drifted_call_is_recovered_end_to_end_and_counted(
    scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    # Parenthesis syntax with "=" and plain quotes (jundot/omlx#1886, ollama/ollama#17882), then a bare call.
    ws = tmp_path / "ws"
    ws.mkdir()  # --workspace must exist; it is never created for you
    outputs = [
        "<|tool_call>call:write_file(path='hello.txt', content=\"hi from gemma\")<tool_call|><|tool_response>",
        'call:read_file{path:<|"|>hello.txt<|"|>}<turn|>',
        "Done.<turn|>",
    ]
    args = ["run", "--json", "--yes", "--backend", scripted(outputs), "--tools", "files", "-w", str(ws), "go"]
    assert main(args) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (ws / "hello.txt").read_text() == "hi from gemma"
    finished = [e for e in events if e["type"] == "tool_call_finished"]
    assert [(e["name"], e["error"]) for e in finished] == [("write_file", None), ("read_file", None)]
    assert "hi from gemma" in json.dumps(finished[1]["result"])
    assert events[-1]["call_counts"] == {"clean": 0, "repaired": 2, "malformed": 0}
    assert finished[1]["repair"] == "no <|tool_call> opener"
    saved = SessionStore().load(events[-1]["session_id"]).tool_calls
    assert [r.get("repair") for r in saved] == [finished[0]["repair"], "no <|tool_call> opener"]
    assert "parenthesis arguments" in finished[0]["repair"]
    assert events[-1]["output"] == "Done."


def test_files_tool_needs_a_workspace(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["run", "--backend", scripted(["x<turn|>"]), "--tools", "files", "hi"]) == 2
    assert "--workspace" in capsys.readouterr().err


def test_a_workspace_that_is_a_file_is_a_usage_error(scripted, capsys) -> None:  # type: ignore[no-untyped-def]
    url = scripted(["x<turn|>"])
    assert main(["run", "--backend", url, "--tools", "files", "-w", __file__, "hi"]) == 2
    assert "(--workspace) is not a folder; give a folder" in capsys.readouterr().err


@pytest.mark.parametrize("tools", ["files", "python"])
def test_a_missing_workspace_is_a_usage_error_and_is_not_created(
    tools: str, scripted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    # A typo in the path used to create an empty folder silently and run the task there.
    missing = tmp_path / "not" / "there"
    url = scripted(["x<turn|>"])
    assert main(["run", "--yes", "--backend", url, "--tools", tools, "-w", str(missing), "hi"]) == 2
    err = capsys.readouterr().err
    assert f"the workspace folder {missing} does not exist (--workspace)" in err and "mkdir -p" in err
    assert not missing.exists() and not missing.parent.exists()
    monkeypatch.setenv("AGENTKIT_WORKSPACE", str(missing))  # the same from the environment, which it names
    assert main(["run", "--yes", "--backend", url, "--tools", tools, "hi"]) == 2
    assert "does not exist (AGENTKIT_WORKSPACE)" in capsys.readouterr().err
    assert not missing.parent.exists()


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_python_tool_runs_in_a_scratch_sandbox_without_a_workspace(
    scripted, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    outputs = [call("run_python", code="print(6 * 7)"), "It printed 42.<turn|>"]
    assert main(["run", "--yes", "--backend", scripted(outputs), "--tools", "python", "compute"]) == 0
    out, err = capsys.readouterr()
    assert "✓ run_python" in err and "42" in err and out == "It printed 42.\n"


def test_step_limit_exits_1(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    outputs = [call("nonexistent_tool", x="1")] * 2
    assert main(["run", "--backend", scripted(outputs), "--max-steps", "2", "loop"]) == 1
    assert "max_steps" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["run", "--backend", "nope://x", "hi"], 2, "invalid backend"),
        (["run", "--backend", "scripted:/does/not/exist.json", "hi"], 2, "cannot read scripted outputs"),
        (["run", "--tools", "teleport", "--backend", "scripted:x", "hi"], 2, "unknown tool"),
        (["run", "--session", "some-id", "--no-save", "--backend", "scripted:x", "hi"], 2, "drop --no-save"),
        (["sessions", "show", "no-such-session"], 2, "no session"),
        (["run", "--backend", "ollama://127.0.0.1:9/gemma4:e4b", "hi"], 3, "Cannot reach Ollama"),
    ],
)
def test_user_mistakes_exit_with_the_documented_code_and_no_traceback(
    argv: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_argparse_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--concurrency", "3"])
    assert info.value.code == 2


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for line in ("0    success", "2    usage error", "3    backend unavailable", "130  interrupted"):
        assert line in out


def test_exit_code_mapping() -> None:
    assert exit_code_for(BackendUnavailable("down")) == 3
    assert exit_code_for(ModelNotFound("pull it")) == 3
    assert exit_code_for(UserError("bad")) == 2
    assert exit_code_for(SessionNotFound("no")) == 2
    assert exit_code_for(BackendResponseError("500")) == 1
    assert exit_code_for(KeyboardInterrupt()) == 130


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import sys
    import agentkit.cli.common as common
    from agentkit.testing import ScriptedBackend
    # A slow model, so there is time to press Ctrl-C in the middle of the answer.
    common.make_backend = lambda settings: ScriptedBackend(["word " * 3000 + "<turn|>"], chunk_size=5, delay_s=0.01)
    from agentkit.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_ctrl_c_exits_130_and_the_session_is_saved(tmp_path: Path, isolated_home: Path) -> None:
    script = tmp_path / "slow_agentkit.py"
    script.write_text(CTRL_C_SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "AGENTKIT_HOME": str(isolated_home)}
    proc = subprocess.Popen(
        [sys.executable, str(script), "run", "write forever"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.read(20)  # the answer is streaming
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "is saved" in err and "Traceback" not in err
    (info,) = SessionStore(isolated_home / "sessions").list()
    saved = SessionStore(isolated_home / "sessions").load(info.id)
    assert [m["role"] for m in saved.messages] == ["user", "assistant"]
    assert saved.messages[1]["content"].startswith("word word")


async def test_terminal_ask_reads_the_answer_and_the_call_line_is_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from agentkit import Approval, ToolCallRequest
    from agentkit.cli.run import EventPrinter, TerminalAsk
    from agentkit.events import ThinkingDelta, ToolCallStarted

    read_end, write_end = os.pipe()
    stdin = os.fdopen(read_end)
    monkeypatch.setattr(sys, "stdin", stdin)
    out, err = io.StringIO(), io.StringIO()
    printer = EventPrinter(out, err)
    printer.handle(ThinkingDelta("half a thought", 1))
    ask = TerminalAsk(printer)
    os.write(write_end, b"a\n")
    request = ToolCallRequest("c1", "write_file", {"path": "x.txt"}, True, "Write\n   a file.")
    assert await ask(request) is Approval.ALWAYS
    printer.handle(ToolCallStarted("c1", "write_file", {"path": "x.txt"}, 1))
    text = err.getvalue()
    assert "half a thought\n? allow write_file(path='x.txt') — Write a file." in text
    assert "⚙" not in text  # the question already showed the call
    os.write(write_end, b"\n")
    assert await ask(ToolCallRequest("c2", "write_file", {}, True)) is Approval.DENY  # Enter alone means no
    os.close(write_end)
    stdin.close()
