"""``agentkit mcp serve`` stops on Ctrl+C while its client is still connected and silent.

It used to wait for one more line on stdin before the interrupt took effect: the MCP SDK reads stdin in a
worker thread that cannot be cancelled, so a person who ran it at a terminal saw ^C do nothing.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

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
