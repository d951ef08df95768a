"""MCP through the command line: ``run --mcp``, ``[mcp.servers.NAME]``, ``doctor``, and ``agentkit mcp serve``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agentkit.cli import main
from agentkit.mcp import MCPServerStdio

from .conftest import call

pytestmark = pytest.mark.slow  # every test starts an MCP server process
TIME_SERVER = f"{sys.executable} -m mcp_server_time --local-timezone UTC"


def test_run_with_mcp_flag_calls_mcp_server_time_and_feeds_the_result_back(
    scripted, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    url = scripted([call("get_current_time", timezone="Asia/Tokyo"), "It is morning in Tokyo.<turn|>"])
    code = main(["run", "--backend", url, "--mcp", TIME_SERVER, "--json", "--no-save", "what time is it in Tokyo?"])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    finished = next(e for e in events if e["type"] == "tool_call_finished")
    assert finished["name"] == "get_current_time" and finished["error"] is None
    assert finished["result"]["structured"]["timezone"] == "Asia/Tokyo"
    assert events[-1]["output"] == "It is morning in Tokyo."


def test_config_servers_and_flags_add_up_and_collisions_are_prefixed(
    scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    server = Path(__file__).parents[1] / "mcp_toolsets" / "sdk_server.py"
    (tmp_path / "config.toml").write_text(
        f"[mcp.servers.clock]\ncommand = {json.dumps(sys.executable)}\nargs = {json.dumps([str(server)])}\n"
        'env = { TZ = "UTC" }\ntimeout = 20\n',
        encoding="utf-8",
    )
    url = scripted(
        [call("get_current_time", timezone="UTC"), call("time.get_current_time", timezone="UTC"), "ok<turn|>"]
    )
    code = main(["run", "--backend", url, "--mcp", TIME_SERVER, "--json", "--no-save", "-y", "time?"])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    done = {e["name"]: e for e in events if e["type"] == "tool_call_finished"}
    assert done["get_current_time"]["result"] == "no clock here (UTC)"  # the config's server came first
    assert done["time.get_current_time"]["result"]["structured"]["timezone"] == "UTC"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[mcp.servers.x]\nargs = []\n", "needs either command"),
        ('[mcp.servers.x]\ncommand = "a"\nurl = "http://h/mcp"\n', "needs either command"),
        ('[mcp.servers.x]\ncommand = "a"\nargs = "b c"\n', "args must be a list of strings"),
        ('[mcp.servers.x]\ncommand = "a"\nenv = { A = 1 }\n', "env must map names to strings"),
        ('[mcp.servers.x]\ncommand = "a"\ncmd = "b"\n', "unknown key(s) cmd"),
        ('[mcp.servers.x]\nurl = "ftp://h"\n', "needs an http(s) URL"),
    ],
)
def test_bad_mcp_config_is_a_usage_error_that_names_the_problem(
    scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "config.toml").write_text(config, encoding="utf-8")
    assert main(["run", "--backend", scripted(["x<turn|>"]), "--no-save", "task"]) == 2
    assert message in capsys.readouterr().err


def test_a_server_that_does_not_start_is_one_clear_line(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["run", "--backend", scripted(["x<turn|>"]), "--mcp", "no-such-mcp-cmd-xyz", "--no-save", "t"]) == 1
    err = capsys.readouterr().err
    assert "MCP server 'no-such-mcp-cmd-xyz'" in err and "could not start" in err and "Traceback" not in err


def test_doctor_lists_each_server_and_its_tools(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    main(["doctor", "--backend", scripted(["x<turn|>"]), "--no-probe", "--mcp", TIME_SERVER])
    out = capsys.readouterr().out
    assert "mcp         time" in out and "2 tool(s): get_current_time, convert_time" in out


async def test_mcp_serve_exposes_workspace_and_sandbox_tools_to_an_mcp_client(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello from the workspace\n", encoding="utf-8")
    serve = ["-m", "agentkit.cli", "mcp", "serve", "--tools", "files", "--workspace", str(tmp_path)]
    async with MCPServerStdio(sys.executable, serve) as client:
        tools = {t.name: t for t in client.list_tools()}
        assert tools["read_file"].side_effects is False and tools["write_file"].side_effects is True
        assert "relative to the workspace root" in tools["read_file"].parameters["properties"]["path"]["description"]
        assert await client.call_tool("read_file", {"path": "notes.txt"}) == "hello from the workspace\n"
        with pytest.raises(Exception, match="outside the workspace"):
            await client.call_tool("read_file", {"path": "../../etc/passwd"})


def test_batch_shares_the_servers_between_tasks(scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"id": "a", "task": "time in Lima?"}\n{"id": "b", "task": "time in Oslo?"}\n', encoding="utf-8")
    out = tmp_path / "results.jsonl"
    url = scripted(
        [
            call("get_current_time", timezone="America/Lima"),
            "Lima.<turn|>",
            call("get_current_time", timezone="Europe/Oslo"),
            "Oslo.<turn|>",
        ]
    )
    argv = ["batch", str(tasks), "-o", str(out), "-c", "1", "--backend", url, "--mcp", TIME_SERVER, "--save-sessions"]
    assert main(argv) == 0
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["output"] for r in results] == ["Lima.", "Oslo."]
    from agentkit import SessionStore

    zones = [SessionStore().load(r["session_id"]).tool_calls[0]["result"]["structured"]["timezone"] for r in results]
    assert zones == ["America/Lima", "Europe/Oslo"]


def test_without_a_terminal_a_denied_mcp_tool_says_how_to_allow_it(
    scripted, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    server = Path(__file__).parents[1] / "mcp_toolsets" / "sdk_server.py"
    url = scripted([call("write_note", note="x"), "ok<turn|>"])
    monkeypatch.setattr("sys.stdin", open(__file__, encoding="utf-8"))  # noqa: SIM115 - not a terminal
    assert main(["run", "--backend", url, "--mcp", f"{sys.executable} {server}", "--no-save", "write a note"]) == 0
    err = capsys.readouterr().err
    assert "write_note" in err and "rerun with --yes" in err


def test_the_readmes_config_examples_are_valid_config_files(tmp_path: Path) -> None:
    from agentkit.cli.config import load_config_file

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = [part.split("```", 1)[0] for part in readme.split("```toml\n")[1:]]
    servers = []
    for i, block in enumerate(blocks):
        path = tmp_path / f"c{i}.toml"
        path.write_text(block, encoding="utf-8")
        servers += load_config_file(path, required=True).get("mcp", ())
    assert {(s.name, s.command, s.url) for s in servers} >= {
        ("time", "uvx", None),
        ("docs", None, "http://127.0.0.1:8000/mcp"),
    }


def _everything_command() -> str:
    sys.path.insert(0, str(Path(__file__).parents[1] / "mcp_toolsets"))
    import npm_servers as npm

    return f"{npm.node()} {npm.entry('server-everything')}"


def test_run_offers_the_workspace_as_root_answers_sampling_and_reads_linked_resources(
    scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    workspace = tmp_path / "work"
    workspace.mkdir()
    url = scripted(
        [
            call("get-roots-list"),
            call("trigger-sampling-request", prompt="say hi"),
            "Hello from Gemma<turn|>",  # the sampling request, answered by the same model
            call("get-resource-links", count="1"),
            call("read_resource", uri="demo://resource/dynamic/text/1"),
            "Done.<turn|>",
        ]
    )
    argv = ["run", "--backend", url, "--mcp", _everything_command(), "-w", str(workspace), "--json", "--no-save"]
    code = main([*argv, "-y", "go"])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0, events[-1]
    done = [e for e in events if e["type"] == "tool_call_finished"]
    assert [e["error"] for e in done] == [None] * 4
    assert workspace.as_uri() in done[0]["result"]
    assert '"text": "Hello from Gemma"' in done[1]["result"]
    assert done[3]["result"].startswith("Resource 1:")


def test_run_without_a_person_to_ask_refuses_a_servers_form_with_the_reason(
    scripted, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    # -y approves every call and sampling request, but no one answers a form: stdin is no terminal here.
    url = scripted([call("trigger-elicitation-request"), "Done.<turn|>"])
    code = main(["run", "--backend", url, "--mcp", _everything_command(), "--json", "--no-save", "-y", "go"])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    (form,) = [e for e in events if e["type"] == "tool_call_finished"]
    assert "asked the user for input" in form["error"] and "no one can be asked here" in form["error"]
