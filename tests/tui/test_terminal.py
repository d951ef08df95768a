"""``agentkit chat`` in a real pseudo-terminal: the bytes a terminal sends for a paste and for newline keys.

Pilot tests post key events; this one goes through Textual's real driver and input parser, which is where
a bracketed paste, a line feed (Ctrl+J) and a kitty-protocol Shift+Enter are told apart from Enter.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentkit import SessionStore

pytestmark = pytest.mark.slow

PASTE = b"\x1b[200~line one\nline two\nline three\x1b[201~"  # what a terminal sends for a bracketed paste


class Terminal:
    """A child process on a pty, and everything it wrote so far."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the program
            os.execvpe(argv[0], argv, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        self.output = b""

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw: {what}\n{self.output[-2000:]!r}")
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    self.output += os.read(self.fd, 65536)
                except OSError:
                    return

    def close(self) -> None:
        self.send(b"\x11")  # Ctrl+Q
        self.wait_for(lambda: os.waitpid(self.pid, os.WNOHANG) != (0, 0), "the app quit", timeout_s=30)


@pytest.mark.skipif(sys.platform != "linux", reason="uses a Linux pty")
def test_paste_and_newline_keys_reach_the_model_whole(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(["First answer.<turn|>", "Second answer.<turn|>"]))
    env = {**os.environ, "AGENTKIT_HOME": str(tmp_path / "home"), "TERM": "xterm-256color"}
    store = SessionStore(tmp_path / "home" / "sessions")
    history = tmp_path / "home" / "input_history.json"

    def answers() -> list[str]:
        infos = store.list()
        return [m["content"] for m in store.load(infos[0].id).messages] if infos else []

    term = Terminal([sys.executable, "-m", "agentkit.cli", "chat", "--backend", f"scripted:{outputs}"], env)
    try:
        term.wait_for(lambda: b"Message Gemma" in term.output, "the prompt")
        term.send(PASTE)
        term.send(b"\r")  # Enter
        term.wait_for(lambda: len(answers()) == 2, "the first answer saved")
        term.send(b"a\nb\x1b[13;2uc\r")  # a, Ctrl+J, b, Shift+Enter (kitty protocol), c, Enter
        term.wait_for(lambda: len(answers()) == 4, "the second answer saved")
    finally:
        term.close()
    assert answers() == ["line one\nline two\nline three", "First answer.", "a\nb\nc", "Second answer."]
    assert json.loads(history.read_text()) == ["line one\nline two\nline three", "a\nb\nc"]
