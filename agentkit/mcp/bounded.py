"""The HTTP client agentkit gives the MCP SDK: every answer a server sends is read within a byte limit.

The SDK reads a JSON answer whole (``response.aread()``) with no limit, so a hostile or broken server that
streams an endless body, or a small gzip body that inflates to gigabytes, fills the agent's memory. SSE
answers are bounded by the SDK per event (``max_sse_event_size``), which this client sets to the same
limit. Here, through httpx's response hook (so environment proxies keep working, as a custom transport
would not allow), each non-SSE body is counted as it arrives and cut off past the limit, and compressed
bodies are refused: the client asks for ``identity`` and a body the server compressed anyway is never
inflated. The error is an ``httpx2.StreamError``, which the SDK turns into the call's JSON-RPC error, so
the agent reports a clear tool error and the run goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx2

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "ResponseTooLarge", "bounded_client"]

#: The most bytes one answer (a JSON body, or one SSE event) may have: far above any tool result an agent
#: can use (a large picture as base64), far below what exhausts memory.
DEFAULT_MAX_RESPONSE_BYTES = 16 << 20

# The SDK's own defaults: 30 s to connect and write, 300 s between reads (a stream may wait for events).
_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


class ResponseTooLarge(httpx2.StreamError):
    """An MCP server's answer went past the byte limit (or came compressed, which could inflate past it)."""


class _Bounded(httpx2.AsyncByteStream):
    """The body as it arrives, ended with :class:`ResponseTooLarge` once it passes ``limit`` bytes."""

    def __init__(self, inner: httpx2.AsyncByteStream, limit: int, url: str, encoding: str | None) -> None:
        self._inner, self._limit, self._url, self._encoding = inner, limit, url, encoding

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._encoding is not None:
            raise ResponseTooLarge(
                f"the MCP server at {self._url} sent its answer compressed ({self._encoding[:40]!r}) though asked "
                "for identity; compressed answers are not read (they could inflate past any limit)"
            )
        total = 0
        async for chunk in self._inner:
            total += len(chunk)
            if total > self._limit:
                raise ResponseTooLarge(
                    f"the MCP server at {self._url} sent an answer of more than {self._limit:,} bytes; it was cut "
                    "off there (raise max_response_bytes if the server is trusted and its answers are that large)"
                )
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def bounded_client(
    limit: int = DEFAULT_MAX_RESPONSE_BYTES, headers: Mapping[str, str] | None = None
) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` for ``streamable_http_client`` whose answers stop at ``limit`` bytes."""

    async def ask_identity(request: httpx2.Request) -> None:
        request.headers["Accept-Encoding"] = "identity"

    async def bound(response: httpx2.Response) -> None:
        content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        encoding = response.headers.get("content-encoding", "").strip().lower()
        compressed = encoding if encoding not in ("", "identity") else None
        if content_type == "text/event-stream" and compressed is None:
            return  # a stream may last the session; the SDK bounds each of its events instead
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        where = response.request.url
        url = f"{where.scheme}://{where.host}" + (f":{where.port}" if where.port else "")  # never the user info
        response.stream = _Bounded(response.stream, limit, url, compressed)

    return httpx2.AsyncClient(
        headers=dict(headers or {}),
        timeout=_TIMEOUT,
        follow_redirects=False,
        event_hooks={"request": [ask_identity], "response": [bound]},
    )
