"""``agentkit mcp serve``: agentkit's built-in tools for any MCP client, over stdin/stdout.

stdout belongs to the protocol, so nothing else may be printed there; problems go to stderr before the
server starts (a missing workspace, an unknown tool), as for every other command.

Ctrl+C ends the server at once. The SDK reads stdin in a worker thread that cannot be cancelled, so on its own
an interrupted server waited for one more line of input before it stopped. Here the server reads a pipe that
this module fills from the real stdin; Ctrl+C closes that pipe, and the server sees the end of its input and
stops the way it does when a client goes away.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from agentkit.assemble import build_tools

from .common import EXIT_INTERRUPTED, EXIT_OK
from .config import resolve_settings

__all__ = ["mcp_command"]


def mcp_command(args: argparse.Namespace) -> int:
    settings = resolve_settings(
        tools=args.tools if args.tools is not None else "python,files",
        workspace=args.workspace,
        config=args.config,
    )
    tools = build_tools(settings)
    from agentkit.mcp.serve import build_server

    server = build_server(tools)
    if sys.stdin.isatty():  # a person ran it: say what it is waiting for, since it prints nothing else
        names = ", ".join(t.name for t in tools)
        print(
            f"agentkit mcp serve: serving {names} to an MCP client on stdin/stdout. Nothing to type here: an MCP "
            "client starts this command itself (command = agentkit, args = [mcp, serve, ...]). Ctrl+C stops.",
            file=sys.stderr,
        )
    with _interruptible_stdin() as interrupted:
        server.run()
    if interrupted.is_set():
        print("\nagentkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


@contextlib.contextmanager
def _interruptible_stdin() -> Iterator[threading.Event]:
    """fd 0 becomes a pipe fed from the real stdin by a daemon thread; the first Ctrl+C closes the pipe (the
    server reads the end of its input), a second one interrupts as usual. Yields the event Ctrl+C sets."""
    interrupted = threading.Event()
    try:
        real_stdin = os.dup(0)
    except OSError:  # no stdin at all: nothing to forward, nothing to wait for
        yield interrupted
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # the lock below is never held across a write that waits
    saved_stdin = os.dup(0)
    os.dup2(read_end, 0)
    os.close(read_end)
    lock = threading.Lock()
    writer: list[int] = [write_end]  # emptied once closed, so the pipe is closed once

    def close_pipe() -> None:
        with lock:
            if writer:
                os.close(writer.pop())

    def forward() -> None:
        try:
            while data := os.read(real_stdin, 65536):
                while data:
                    with lock:
                        if not writer:
                            return
                        # BlockingIOError: the server reads slower than input comes; wait for room below.
                        with contextlib.suppress(BlockingIOError):
                            data = data[os.write(writer[0], data) :]
                        fd = writer[0]
                    if data:
                        select.select([], [fd], [], 0.1)  # wakes up at once when the pipe is closed too
        except (OSError, ValueError):
            pass
        finally:
            close_pipe()

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        close_pipe()

    threading.Thread(target=forward, name="agentkit-mcp-stdin", daemon=True).start()
    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)
        close_pipe()
        os.dup2(saved_stdin, 0)
        os.close(saved_stdin)
