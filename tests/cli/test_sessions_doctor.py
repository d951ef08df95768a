"""``agentkit sessions`` and ``agentkit doctor`` through ``main()``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentkit import SessionStore, backend_from_url
from agentkit.cli import main
from agentkit.cli.doctor import check_sandbox
from agentkit.testing.samples import png

from .conftest import call


def make_session(scripted, task: str = "plan a picnic", answer: str = "Bring **sandwiches**.") -> str:  # type: ignore[no-untyped-def]
    outputs = [call("nonexistent", x="1"), f"{answer}<turn|>"]
    assert main(["run", "--json", "--backend", scripted(outputs), task]) == 0
    return SessionStore().list()[0].id


def test_list_show_export_rename_delete(scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    sid = make_session(scripted)
    capsys.readouterr()

    assert main(["sessions", "list"]) == 0
    out = capsys.readouterr().out
    assert sid in out and "plan a picnic" in out

    assert main(["sessions", "list", "--json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert info["id"] == sid and info["message_count"] == 4

    assert main(["sessions", "show", sid]) == 0
    out = capsys.readouterr().out
    assert "plan a picnic" in out and "sandwiches" in out and "nonexistent" in out

    target = tmp_path / "export.json"
    assert main(["sessions", "export", sid, "-o", str(target)]) == 0
    assert json.loads(target.read_text())["id"] == sid
    assert main(["sessions", "export", sid]) == 0
    assert json.loads(capsys.readouterr().out)["messages"][0]["content"] == "plan a picnic"

    assert main(["sessions", "rename", sid, "Picnic"]) == 0
    assert SessionStore().load(sid).title == "Picnic"

    assert main(["sessions", "delete", sid]) == 0
    assert SessionStore().list() == []
    assert main(["sessions", "delete", sid]) == 2
    assert "no session" in capsys.readouterr().err


def test_show_prints_what_the_person_wrote_and_sent_as_it_was(
    scripted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """Seen by a newcomer: "What is [b]list[int][/b]?" came back from `sessions show` as "What is list?" (read as
    Rich markup), a picture sent with --image was not mentioned, and the header said "vllm//tmp/model"."""
    picture = tmp_path / "p.png"
    picture.write_bytes(png())
    task = "What is [b]list[int][/b] in Python? [image: x]"
    assert main(["run", "-b", scripted(["Fine.<turn|>"]), "--system", "Use [red]no[/red] markup.", task]) == 0
    assert main(["run", "-b", scripted(["A picture.<turn|>"]), "--image", str(picture), "What is this?"]) == 0
    capsys.readouterr()
    with_markup, with_picture = sorted(SessionStore().list(), key=lambda i: i.title)
    assert main(["sessions", "show", with_markup.id]) == 0
    out = capsys.readouterr().out
    assert f"│ {task}" in out and "│ Use [red]no[/red] markup." in out  # in the panels, not only the title
    assert f"{with_markup.id} · scripted-gemma4 (scripted) · updated" in out
    assert main(["sessions", "show", with_picture.id]) == 0
    out = capsys.readouterr().out
    assert "│ [image:" in out and "p.png]" in out and "│ What is this?" in out  # the path may wrap
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # the list as a table, on a terminal
    assert main(["sessions", "list"]) == 0
    assert task in re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)


def test_export_and_rename_mistakes_are_usage_errors(scripted, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    sid = make_session(scripted)
    capsys.readouterr()
    assert main(["sessions", "export", sid, "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["sessions", "export", sid, "-o", "/proc/agentkit-export.json"]) == 2
    assert "cannot write /proc/agentkit-export.json" in capsys.readouterr().err
    assert main(["sessions", "rename", sid, "  "]) == 2
    assert "title is empty" in capsys.readouterr().err
    assert SessionStore().load(sid).title == "plan a picnic"


def test_list_names_the_files_it_could_not_read(scripted, capsys) -> None:  # type: ignore[no-untyped-def]
    sid = make_session(scripted)
    root = SessionStore().root
    (root / "broken.json").write_text("{not json", encoding="utf-8")
    (root / "notes.json").write_text('{"a": 1}', encoding="utf-8")
    capsys.readouterr()
    assert main(["sessions", "list", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [i["id"] for i in json.loads(out)] == [sid]
    assert "2 file(s)" in err and "broken.json: " in err and "notes.json: " in err
    assert "not valid JSON" in err and "not an agentkit session file" in err  # each with why
    assert main(["sessions", "delete", "notes"]) == 1
    assert f"to remove it: rm {root / 'notes.json'}" in capsys.readouterr().err
    assert (root / "notes.json").exists()


def test_list_on_a_terminal_is_one_line_per_session_at_80_columns(
    scripted, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    make_session(scripted, task="Translate to French, then to Spanish, then to German: good morning everyone")
    make_session(scripted, task="hi")
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["sessions", "list"]) == 0
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines), lines  # header + one line each
    assert "Translate to French" in lines[2] and "…" in lines[2]
    assert all(SessionStore().list()[n].id in lines[n + 1] for n in (0, 1))  # ids are never cut


def test_show_into_a_pipe_closed_early_exits_0_like_run(isolated_home: Path) -> None:
    from agentkit import Session

    answer = "A long answer line.\n" * 20_000  # more than a pipe holds, so the writer sees the reader leave
    SessionStore().save(
        Session(id="long", messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": answer}])
    )
    env = {**os.environ, "AGENTKIT_HOME": str(isolated_home)}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentkit.cli", "sessions", "show", "long"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert b"Traceback" not in err and b"Exception ignored" not in err


def test_empty_list_says_where_it_looked(isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "list"]) == 0
    assert str(isolated_home / "sessions") in capsys.readouterr().err


def test_doctor_all_good_with_a_model_that_calls_the_probe(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    url = scripted([call("agentkit_probe", word="marmalade"), "probe ok: marmalade<turn|>"])
    code = main(["doctor", "--backend", url])
    out = capsys.readouterr().out
    assert "✓ backend" in out and "✓ tool probe" in out
    assert code == 0  # bwrap may be missing: it is only required when the python tool is on
    # The scripted backend applies no grammar: doctor says tool calls are not constrained (a warning, not a failure).
    assert "! tool calls" in out and "not grammar-constrained" in out


def test_doctor_reports_constrained_tool_calls() -> None:
    from agentkit.backends.base import Capabilities
    from agentkit.cli import doctor

    class Constraining:
        name, model = "vllm", "m"
        capabilities = Capabilities(grammar=True)

    check = doctor._constraint("vllm://h/m", Constraining())  # type: ignore[arg-type]
    assert (check.status, check.detail.split(" (")[0]) == ("ok", "grammar-constrained")


def test_doctor_builds_each_backend_once_for_the_check_and_the_probe(
    scripted, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    # Building an in-process backend loads the model (minutes for a real one): the probe reuses it.
    from agentkit.cli import doctor

    built: list[str] = []

    def counting(url: str, **options):  # type: ignore[no-untyped-def]
        built.append(url)
        return backend_from_url(url, **options)

    monkeypatch.setattr(doctor, "build_backend", counting)
    url = scripted([call("agentkit_probe", word="marmalade"), "probe ok: marmalade<turn|>"])
    assert main(["doctor", "--backend", url]) == 0
    assert "✓ tool probe" in capsys.readouterr().out
    assert built == [url]


def test_doctor_flags_a_model_that_never_calls_tools(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    url = scripted(["I would rather just talk.<turn|>"])
    assert main(["doctor", "--backend", url]) == 1
    out = capsys.readouterr().out
    assert "✗ tool probe" in out and "without calling the tool" in out


def test_doctor_unreachable_backend_exits_3_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.toml").write_text('[backends]\ndown = "ollama://127.0.0.1:9/gemma4:e4b"\n', encoding="utf-8")
    assert main(["doctor", "--backend", "down", "--no-probe"]) == 3
    out = capsys.readouterr().out
    assert "✗ backend" in out and "ollama serve" in out


def test_doctor_reports_a_model_that_fails_to_load_and_still_checks_the_sandbox(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process backends (transformers) load the model when built, so ModelNotFound comes from the constructor.
    from agentkit.cli import doctor
    from agentkit.errors import ModelNotFound

    def missing_model(url: str) -> None:
        raise ModelNotFound("cannot load the model 'google/gemma-4-E2B-it': not in the cache", backend="transformers")

    monkeypatch.setattr(doctor, "build_backend", missing_model)
    assert main(["doctor", "--backend", "transformers:google/gemma-4-E2B-it"]) == 3
    captured = capsys.readouterr()
    assert "✗ backend" in captured.out and "not in the cache" in captured.out
    assert "sandbox" in captured.out and "agentkit: error" not in captured.err


def test_doctor_with_an_invalid_backend_url_exits_2_like_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--backend", "foo://x", "--no-probe"]) == 2
    assert main(["run", "--backend", "foo://x", "hi"]) == 2
    assert "✗ backend" in capsys.readouterr().out


@pytest.mark.parametrize("scheme", ["ollama", "vllm"])
def test_doctor_asks_a_failing_server_once_instead_of_retrying(scheme: str, capsys: pytest.CaptureFixture[str]) -> None:
    """doctor took about 5 s per server that was down (the backend's retries); it reports what is there now."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    requests: list[str] = []

    class Down(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(503)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Down)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code = main(["doctor", "--no-probe", "--backend", f"{scheme}://127.0.0.1:{server.server_port}/m"])
    finally:
        server.shutdown()
    assert code in (1, 3) and "✗ backend" in capsys.readouterr().out
    assert len(requests) == 1, requests


def test_doctor_fails_where_run_would_on_the_workspace(  # type: ignore[no-untyped-def]
    scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README's config example names a workspace that may not exist yet: doctor said "all good", then run refused.
    Doctor now builds the tools as run does and fails the same way, with the same fix, for the same exit code."""
    url = scripted(["x<turn|>"])
    missing = tmp_path / "agentkit-workspace"
    config = tmp_path / "readme-example.toml"
    config.write_text(f'tools = ["search", "fetch"]\nworkspace = "{missing}"\n', encoding="utf-8")
    assert main(["doctor", "--no-probe", "--config", str(config), "--backend", url]) == 2
    out = capsys.readouterr().out
    assert "✗ workspace" in out and f"mkdir -p {missing}" in out
    assert main(["run", "--config", str(config), "--backend", url, "hi"]) == 2
    assert main(["doctor", "--no-probe", "--tools", "files", "--backend", url]) == 2
    assert "add --workspace DIR" in capsys.readouterr().out
    missing.mkdir()
    assert main(["doctor", "--no-probe", "--json", "--config", str(config), "--backend", url]) == 0
    checks = {c["check"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["workspace"]["status"] == "ok" and checks["workspace"]["target"] == str(missing)


def test_doctor_with_a_missing_extra_exits_3(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from agentkit.cli import doctor

    def no_extra(url: str) -> None:
        raise ImportError("the transformers backend needs: pip install -e '.[transformers]'")

    monkeypatch.setattr(doctor, "build_backend", no_extra)
    assert main(["doctor", "--backend", "transformers:google/gemma-4-E2B-it", "--no-probe"]) == 3
    assert "pip install -e '.[transformers]'" in capsys.readouterr().out


def test_sandbox_check_reports_missing_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    missing = check_sandbox(needed=True)
    assert missing.status == "fail" and "apt-get install bubblewrap" in missing.fix
    assert check_sandbox(needed=False).status == "warn"


@pytest.mark.timeout(60)  # a FIFO named x.json used to hang the listing
def test_list_survives_hostile_files_and_says_what_each_is(scripted, capsys) -> None:  # type: ignore[no-untyped-def]
    sid = make_session(scripted)
    root = SessionStore().root
    (root / "deep.json").write_text("[" * 100_000, encoding="utf-8")
    os.mkfifo(root / "x.json")
    capsys.readouterr()
    assert main(["sessions", "list"]) == 0
    out, err = capsys.readouterr()
    assert sid in out
    assert "deep.json: " in err and "nested too deeply" in err and "x.json: " in err and "not a regular file" in err
    assert "Traceback" not in err
    assert main(["sessions", "show", "abc\n"]) == 2
    assert "invalid session id" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_sandbox_check_runs_python_for_real(monkeypatch: pytest.MonkeyPatch) -> None:
    good = check_sandbox(needed=True)
    assert good.status in ("ok", "warn") and "runs Python" in good.detail, good
    assert ("memory by cgroup" in good.detail) == (good.status == "ok")
    # bwrap works but the interpreter cannot start inside: the old check (it ran `true`) said all was well.
    monkeypatch.setattr(sys, "executable", "/nonexistent/bin/python3")
    broken = check_sandbox(needed=True)
    assert broken.status == "fail" and "could not start Python" in broken.detail, broken
