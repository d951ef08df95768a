"""Ctrl+C where it was not honoured: ``agentkit mcp serve`` with its client still connected and silent, and the
end of a ``run --json`` stream.

The server used to wait for one more line on stdin before the interrupt took effect (the MCP SDK reads stdin
in a worker thread that cannot be cancelled), so a person who ran it at a terminal saw ^C do nothing; and an
interrupted ``run --json`` stream just stopped, with no last line saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}


def test_ctrl_c_stops_a_server_whose_client_is_still_connected(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "agentkit.cli", "mcp", "serve", "--tools", "files", "--workspace", str(tmp_path)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
        process.stdin.flush()
        answer = json.loads(process.stdout.readline())  # serving now, reading the next request
        assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"] == "agentkit"
        process.send_signal(signal.SIGINT)  # stdin stays open: the client has not gone away
        assert process.wait(timeout=60) == 130
        assert process.stderr is not None
        err = process.stderr.read().decode()
        assert "agentkit: interrupted" in err and "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_ctrl_c_during_run_json_ends_the_stream_with_an_error_line(tmp_path: Path) -> None:
    # README: the stream of a run that did not finish ends with an `error` line; on Ctrl-C it just stopped.
    outputs = tmp_path / "outputs.json"
    sleep = '<|tool_call>call:run_python{code:<|"|>import time; time.sleep(60)<|"|>}<tool_call|><|tool_response>'
    outputs.write_text(json.dumps([sleep, "done<turn|>"]), encoding="utf-8")
    env = {**os.environ, "AGENTKIT_HOME": str(tmp_path / "home"), "AGENTKIT_CONFIG": str(tmp_path / "none.toml")}
    command = [sys.executable, "-m", "agentkit.cli", "run", "-b", f"scripted:{outputs}", "--tools", "python"]
    process = subprocess.Popen(
        [*command, "--yes", "--json", "sleep"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert process.stdout is not None
    try:
        assert json.loads(process.stdout.readline())["type"] == "tool_call_started"  # the sandbox is running
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
        (last,) = process.stdout.read().decode().splitlines()
        event = json.loads(last)
        assert event["type"] == "error" and event["error_type"] == "KeyboardInterrupt"
        assert event["session_id"] and f"session {event['session_id']} is saved" in event["error"]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
