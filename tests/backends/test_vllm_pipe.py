"""``agentkit run --json ... | head -n1`` against a vLLM-style server: the reader goes away mid-stream.

The command used to exit 0 but print forty lines of asyncio tracebacks ("generator didn't stop after athrow()",
"aclose(): asynchronous generator is already running"): the event stream was left open when the printer hit
the broken pipe, and asyncio.run's shutdown then closed the nested generators (the turn, the backend's stream
holding its connection slot) all at once, each under the other.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from test_vllm import FlakyOpenAIServer, Reply, completion_chunk

TURN_END = 106


@pytest.fixture
def long_answer() -> Iterator[FlakyOpenAIServer]:
    events = [completion_chunk("word ") for _ in range(3000)]
    server = FlakyOpenAIServer([Reply(events=[*events, completion_chunk("<turn|>", "stop", TURN_END)])])
    yield server
    server.close()


def test_a_reader_that_goes_away_mid_stream_ends_the_run_quietly(long_answer: FlakyOpenAIServer) -> None:
    url = long_answer.base_url.replace("http://", "vllm://") + "/" + long_answer.model
    command = [sys.executable, "-m", "agentkit.cli", "run", "-b", url, "--json", "--no-save", "write at length"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b'{"type": "text_delta"')
    process.stdout.close()  # what `| head -n1` does after its line
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0
    assert err == ""
