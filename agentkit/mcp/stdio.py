"""The stdio transport agentkit gives the MCP SDK: every line a server writes is read within a byte limit.

The SDK's ``stdio_client`` joins the server's stdout into a line until a newline comes, with no limit: a
hostile or broken server writing gigabytes without a newline fills the agent's memory, and keeps the
server's stderr in whatever file it is given, which grows as long as the server writes. This transport is
the SDK's (one JSON-RPC message a line, the server in a process group of its own, stopped as the spec says:
stdin closed, a grace period, then SIGTERM and SIGKILL to the group) with two bounds: a line past
``max_line_bytes`` (16 MiB by default, the same as one answer over HTTP, :mod:`agentkit.mcp.bounded`) ends
the connection, since the rest of the stream cannot be trusted to line up with requests again, and only the
last 16 KiB of stderr are kept (they explain a crash). A line cut off is told to ``on_cut``, so the tool call
in flight fails saying which limit was passed; the server is then restarted for the next call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

import anyio
import anyio.abc
import mcp.types as mt
from mcp import StdioServerParameters
from mcp.client._transport import TransportStreams
from mcp.client.stdio import get_default_environment
from mcp.os.posix.utilities import terminate_posix_process_tree
from mcp.shared.message import SessionMessage

__all__ = ["DEFAULT_MAX_LINE_BYTES", "LineTooLong", "StderrTail", "bounded_stdio_client"]

#: The most bytes one line (one JSON-RPC message) from a server may have: the HTTP transport's limit.
DEFAULT_MAX_LINE_BYTES = 16 << 20
STDERR_TAIL_BYTES = 16 << 10  # of a server's stderr, kept to explain a crash
_GRACE_S = 2.0  # for the server to exit once its stdin is closed (the SDK's value), and again after SIGTERM
_FLUSH_S = 0.5  # for messages already accepted to reach the server before stdin closes


class LineTooLong(Exception):
    """A server wrote more than the limit without a newline."""


class StderrTail:
    """The last ``size`` bytes a server wrote to stderr."""

    def __init__(self, size: int = STDERR_TAIL_BYTES) -> None:
        self._size = size
        self._data = bytearray()

    def add(self, chunk: bytes) -> None:
        self._data += chunk
        if len(self._data) > 2 * self._size:  # trimmed in steps, not on every chunk
            del self._data[: -self._size]

    def lines(self) -> list[str]:
        text = bytes(self._data[-self._size :]).decode("utf-8", errors="replace")
        return [line.rstrip() for line in text.splitlines() if line.strip()]


class _Lines:
    """Bytes as they arrive, cut into lines of at most ``limit`` bytes (without the newline)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        lines, start = [], 0
        while (end := chunk.find(b"\n", start)) != -1:
            self._grow(end - start)
            self._parts.append(chunk[start:end])
            lines.append(b"".join(self._parts))
            self._parts, self._size, start = [], 0, end + 1
        if start < len(chunk):
            self._grow(len(chunk) - start)
            self._parts.append(chunk[start:])
        return lines

    def _grow(self, by: int) -> None:
        self._size += by
        if self._size > self._limit:
            raise LineTooLong(
                f"it wrote more than {self._limit:,} bytes on stdout without a newline (one MCP message past "
                "max_line_bytes), so it was stopped; raise max_line_bytes if the server is trusted and its "
                "answers are that large"
            )


def _parse(line: bytes) -> SessionMessage | Exception:
    """One line as a message, or the error the SDK's session hands to the message handler."""
    try:
        return SessionMessage(mt.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        return exc


@asynccontextmanager
async def bounded_stdio_client(
    server: StdioServerParameters,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    stderr: StderrTail | None = None,
    on_cut: Callable[[str], None] = lambda reason: None,
) -> AsyncIterator[TransportStreams]:
    """Run ``server`` and yield the SDK's (read, write) streams to it; a ``Transport`` for ``mcp.Client``."""
    if sys.platform == "win32":  # pragma: no cover - agentkit's sandbox and CI are POSIX; the SDK's, unbounded
        from mcp.client.stdio import stdio_client

        async with stdio_client(server) as streams:
            yield streams
        return
    tail = stderr if stderr is not None else StderrTail()
    process = await anyio.open_process(
        [server.command, *server.args],
        env=get_default_environment() | (server.env or {}),
        cwd=server.cwd,
        stderr=subprocess.PIPE,
        start_new_session=True,  # the whole tree is stopped together
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    stdin, stdout, errout = process.stdin, process.stdout, process.stderr
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
    writer_done = anyio.Event()

    async def drain(stream: anyio.abc.ByteReceiveStream, keep: Callable[[bytes], object]) -> None:
        with suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            while True:
                keep(await stream.receive())

    async def read_stdout() -> None:
        lines = _Lines(max_line_bytes)
        async with read_writer:
            try:
                async for chunk in stdout:
                    for line in lines.feed(chunk):
                        await read_writer.send(_parse(line))
            except LineTooLong as exc:
                on_cut(str(exc))
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)  # it may be blocked writing the rest; nothing of it is read
                return  # closing the read stream fails the calls in flight (CONNECTION_CLOSED)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                pass  # the session went away or our shutdown closed the pipe
        # A server still writing while it shuts down must not block on a full pipe.
        await drain(stdout, lambda _: None)

    async def write_stdin() -> None:
        try:
            async with write_reader:
                async for message in write_reader:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await stdin.send(data.encode())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await read_writer.aclose()  # the server stopped reading: the session sees the connection end
        finally:
            writer_done.set()

    async def stop() -> None:
        read_stream.close()
        write_stream.close()
        with anyio.move_on_after(_FLUSH_S):
            await writer_done.wait()
        with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await stdin.aclose()
        if not await _exited(process, _GRACE_S):
            await terminate_posix_process_tree(process, _GRACE_S)
            await _exited(process, _GRACE_S)
        for stream in (stdout, errout, read_stream, write_stream, read_writer, write_reader):
            with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await stream.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_stdout)
        tg.start_soon(write_stdin)
        tg.start_soon(drain, errout, tail.add)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):  # even when cancelled, the server must not be left running
                await stop()
            tg.cancel_scope.cancel()


async def _exited(process: anyio.abc.Process, within_s: float) -> bool:
    """Whether the process exited within ``within_s`` (polled: ``wait()`` would also wait for pipes to close)."""
    with anyio.move_on_after(within_s):
        while process.returncode is None:  # noqa: ASYNC110 - no event tells of an exit without waiting on pipes
            await anyio.sleep(0.01)
        return True
    return False
