"""``agentkit run --mcp 'node …'`` and ``doctor`` with the npm MCP servers users configure (the reference server,
two filesystem servers side by side), and Ctrl+C during a long MCP call. See tests/mcp_toolsets/npm_servers.py
for where the servers come from."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentkit.cli import main

from .conftest import call

sys.path.insert(0, str(Path(__file__).parents[1] / "mcp_toolsets"))
import npm_servers as npm

pytestmark = pytest.mark.slow  # every test starts node MCP servers


def everything() -> str:
    return shlex.join([npm.node(), npm.entry("server-everything")])


def test_run_calls_the_reference_server_and_feeds_every_kind_of_result_back(
    scripted, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    url = scripted(
        [
            call("get-structured-content", location="Chicago"),
            call("get-resource-reference", resourceType="Blob"),
            call("get-tiny-image"),
            "<|tool_call>call:echo{}<tool_call|><|tool_response>",
            "Done.<turn|>",
        ]
    )
    code = main(["run", "--backend", url, "--mcp", everything(), "--json", "--no-save", "-y", "go"])
    out, err = capsys.readouterr()
    assert code == 0, err
    done = [json.loads(line) for line in out.splitlines() if '"tool_call_finished"' in line]
    structured, blob, image, bad = done
    assert structured["result"]["structured"]["conditions"] == "Light rain / drizzle"
    assert blob["result"]["resources"][0]["bytes"] > 0
    assert image["error"] is None and "MCP logo" in json.dumps(image["result"])
    assert "'message' is a required property" in bad["error"]
    assert "Traceback" not in err and "never retrieved" not in err


def test_two_filesystem_servers_get_distinct_names_and_both_work(
    scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """Two servers started as ``node …/server-filesystem/dist/index.js``: numbered after the package,
    ``filesystem2.read_text_file`` for the second one's tool, where they were ``index1``/``index2`` (bug)."""
    (one := tmp_path / "one").mkdir()
    (two := tmp_path / "two").mkdir()
    (one / "a.txt").write_text("from one", encoding="utf-8")
    (two / "b.txt").write_text("from two", encoding="utf-8")
    fs = [npm.node(), npm.entry("server-filesystem")]
    url = scripted(
        [
            call("read_text_file", path=str(one / "a.txt")),
            call("filesystem2.read_text_file", path=str(two / "b.txt")),
            "ok<turn|>",
        ]
    )
    argv = ["run", "--backend", url, "--json", "--no-save", "go"]
    argv += ["--mcp", shlex.join([*fs, str(one)]), "--mcp", shlex.join([*fs, str(two)])]
    assert main(argv) == 0
    done = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"tool_call_finished"' in line]
    assert [(d["name"], d["result"]) for d in done] == [
        ("read_text_file", "from one"),
        ("filesystem2.read_text_file", "from two"),
    ]


def test_doctor_says_which_tools_are_left_out_and_why(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    main(["doctor", "--backend", scripted(["x<turn|>"]), "--no-probe", "--mcp", everything()])
    out = capsys.readouterr().out
    assert "mcp         everything" in out and "get-tiny-image" in out
    assert "simulate-research-query left out: it runs only as an MCP task (taskSupport: required)" in out


def test_ctrl_c_during_a_long_mcp_call_cancels_it_and_stops_the_server(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(["<|tool_call>call:wait{seconds:600}<tool_call|><|tool_response>", "x<turn|>"]))
    config = tmp_path / "config.toml"
    env_table = json.dumps({"AGENTKIT_NPM_DIR": str(npm.NPM_DIR), "MCP_TEST_MARKER": str(marker)})
    env_table = env_table.replace('": "', '" = "')  # a TOML inline table
    npm.entry("sdk")
    config.write_text(
        f"[mcp.servers.ts]\ncommand = {json.dumps(npm.node())}\nargs = {json.dumps([str(npm.TS_SERVER)])}\n"
        f"env = {env_table}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "AGENTKIT_HOME": str(tmp_path / "home"), "AGENTKIT_CONFIG": str(config)}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    run = [sys.executable, "-m", "agentkit.cli", "run", "--backend", f"scripted:{outputs}", "-y", "wait a while"]
    proc = subprocess.Popen(run, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):  # until the server has the call (the wait is for start-up, not part of the check)
            if marker.exists() and "waiting 600" in marker.read_text():
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        (server_pid,) = npm.children(proc.pid, running="ts_server")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert marker.read_text().splitlines()[1:] == ["waiting 600", "cancelled"]  # the server heard the cancel
    assert not npm.alive(server_pid)
