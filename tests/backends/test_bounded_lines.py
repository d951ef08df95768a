"""``bounded_lines`` splits a streamed answer exactly as httpx's ``aiter_lines`` does, and stops a line without end.

The engines read their streams (vLLM's server-sent events, Ollama's JSON lines) through it instead of httpx's
``aiter_lines``, which keeps an unfinished line whole: a server sending one without end filled memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from httpx._decoders import LineDecoder  # the reference: what aiter_lines does
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.backends._http import ServerErrors, bounded_lines
from agentkit.errors import BackendResponseError


class Chunks:
    """A response as ``bounded_lines`` reads it: its text, chunk by chunk."""

    def __init__(self, chunks: list[str]) -> None:
        self.chunks = chunks

    async def aiter_text(self) -> AsyncIterator[str]:
        for chunk in self.chunks:
            if chunk:  # httpx never yields an empty chunk
                yield chunk


def httpx_lines(chunks: list[str]) -> list[str]:
    decoder = LineDecoder()
    lines = [line for chunk in chunks if chunk for line in decoder.decode(chunk)]
    return lines + decoder.flush()


def ours(chunks: list[str], limit: int = 1 << 20) -> list[str]:
    async def read() -> list[str]:
        return [line async for line in bounded_lines(Chunks(chunks), ERRORS, limit)]  # type: ignore[arg-type]

    return asyncio.run(read())


ERRORS = ServerErrors.__new__(ServerErrors)
object.__setattr__(ERRORS, "engine", "vLLM")
object.__setattr__(ERRORS, "backend", "vllm")
object.__setattr__(ERRORS, "url", "http://127.0.0.1:8000")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="ab\n\r\u2028\x85 ", max_size=8), max_size=8))
def test_lines_are_those_of_httpx(chunks: list[str]) -> None:
    assert ours(chunks) == httpx_lines(chunks)


def test_a_line_without_end_is_an_error_at_the_limit() -> None:
    with pytest.raises(BackendResponseError, match="more than 100 bytes"):
        ours(["data: " + "x" * 60, "x" * 60], limit=100)
    with pytest.raises(BackendResponseError, match="more than 100 bytes"):
        ours(["ok\ndata: " + "x" * 120], limit=100)  # the unfinished tail of a chunk that also ended a line
    assert ours(["x" * 90 + "\n", "y" * 90 + "\n"], limit=100) == ["x" * 90, "y" * 90]  # many lines, each within it
