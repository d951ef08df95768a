"""What every backend of an engine served over HTTP shares: retries, the client, and the error table.

Ollama and vLLM differ in what they send and read, not in how a request can fail, so that is decided here once:

- **Retries** (:class:`RetryPolicy`, on tenacity): a failure before any output reached the caller is tried again
  when it is transient — the connection was refused, reset or dropped, or the server answered 5xx — after
  ``retry_wait`` seconds, then up to twice as long each time with full jitter (at most 8 s), so that many
  requests failing together do not come back in step. A 4xx answer, a timeout while waiting for an answer (it
  would only wait again) and anything after output began are never retried: the caller would see text twice.
  A refused connection is retried only once the server has answered this backend before (it is restarting);
  on first contact nothing is listening at that address, and saying so at once beats four seconds of silence.
- **The client** (:class:`LoopClient`): one pooled ``httpx.AsyncClient`` per event loop (an httpx connection pool
  belongs to the loop that opened it; sync wrappers may run a backend on several) and a concurrency limit. It
  asks for answers uncompressed and refuses compressed ones: httpx inflates each chunk whole, so a few kB of
  gzip could become gigabytes in memory before any of the limits below counts them (token streams and model
  lists gain nothing from compression, and engines compress only when asked).
- **Errors** (:class:`ServerErrors`, in :mod:`agentkit.backends._http_errors`, re-exported here): one table from
  httpx's exceptions and the server's error answers to :mod:`agentkit.errors`; an engine supplies only its words,
  and what is retried follows from the same rows.

:class:`HTTPBackend` ties the three together for a concrete engine (``OllamaBackend``, ``VLLMBackend``): its
``_open_stream`` sends a streaming request and reads it up to the first event with output as one retried unit,
which is where both engines draw the line between "safe to send again" and "the caller has seen text".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import warnings
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from agentkit.errors import UserError

from ._http_errors import TRANSPORT_ERRORS, ErrorReply, ServerErrors, is_transient, server_message

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_ERROR_BODY_BYTES",
    "MAX_LINE_CHARS",
    "TRANSPORT_ERRORS",
    "ErrorReply",
    "HTTPBackend",
    "LoopClient",
    "OpenStream",
    "RetryPolicy",
    "ServerErrors",
    "bounded_lines",
    "is_transient",
    "renamed_option",
    "server_message",
    "server_url",
]

T = TypeVar("T")

MAX_RETRY_WAIT_S = 8.0


# -- retries -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a request that failed before any output is sent again (module docstring)."""

    retries: int = 3
    retry_wait: float = 0.5  # seconds before the first retry; each later wait is drawn from up to twice as long

    def __post_init__(self) -> None:
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise UserError(f"retries must be a whole number of at least 0, got {self.retries!r}")
        wait = self.retry_wait
        if not isinstance(wait, int | float) or isinstance(wait, bool) or not 0 <= wait <= 3600:
            raise UserError(f"retry_wait must be a number of seconds from 0 to 3600, got {wait!r}")

    def retrying(self, *, refused: bool = True) -> AsyncRetrying:
        """Tenacity's loop for this policy; ``refused=False`` gives up at once when nothing listens."""

        def worth_retrying(exc: BaseException) -> bool:
            return is_transient(exc) and (refused or not isinstance(exc.__cause__, httpx.ConnectError))

        return AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_random_exponential(multiplier=self.retry_wait, max=max(self.retry_wait, MAX_RETRY_WAIT_S)),
            retry=retry_if_exception(worth_retrying),
            reraise=True,
        )

    async def call(self, attempt: Callable[[], Awaitable[T]], *, refused: bool = True) -> T:
        """``attempt()``'s result, calling it again after each transient failure while the policy allows."""
        async for trial in self.retrying(refused=refused):
            with trial:
                return await attempt()
        raise AssertionError("unreachable: tenacity either returns a result or re-raises")  # pragma: no cover


def renamed_option(owner: str, old: str, new: str, old_value: T | None, new_value: T, default: T) -> T:
    """The value of option ``new`` when a caller may still pass it under its deprecated name ``old``."""
    if old_value is None:
        return new_value
    if new_value != default:
        raise UserError(f"{owner}() got both {old}= and {new}=; pass only {new}= ({old}= is its old name)")
    warnings.warn(
        f"{owner}({old}=...) is deprecated; pass {new}=... instead (the same value)", DeprecationWarning, stacklevel=3
    )
    return old_value


# -- the client --------------------------------------------------------------------------------------------

#: The most of an error answer's body read: its message is all that is used, and a proxy's error page (or a
#: server that never stops sending) must not fill memory first.
MAX_ERROR_BODY_BYTES = 1 << 20


#: The most a whole (not streamed) answer may have: model lists and model details are kilobytes.
MAX_BODY_BYTES = 16 << 20


async def _whole(response: httpx.Response, errors: ServerErrors) -> httpx.Response:
    """``response`` read (at most :data:`MAX_BODY_BYTES`) into a response whose ``json()`` and ``text`` work."""
    try:
        body = await _head(response, MAX_BODY_BYTES + 1)
    finally:
        await response.aclose()
    if len(body) > MAX_BODY_BYTES:
        raise errors.too_large(MAX_BODY_BYTES)
    skip = {"content-encoding", "content-length", "transfer-encoding"}  # the body is decoded and whole now
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in skip]
    return httpx.Response(response.status_code, headers=headers, content=body, request=response.request)


#: The longest line of a streamed answer (one SSE event, one NDJSON chunk): a chunk is a few hundred characters.
MAX_LINE_CHARS = 16 << 20

# What str.splitlines (and so httpx's aiter_lines) ends a line at.
_NEWLINES = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


async def bounded_lines(
    response: httpx.Response, errors: ServerErrors, limit: int = MAX_LINE_CHARS
) -> AsyncIterator[str]:
    """``response.aiter_lines()``, but a line still unfinished past ``limit`` characters is ``errors.too_large``.

    httpx keeps an unfinished line whole, so a server that sends one without end fills memory. The lines are
    httpx's (``str.splitlines``, a ``\\r\\n`` split across chunks counted once); a chunk without a line end is
    only kept, never joined, so a long line costs linear time.
    """
    parts: list[str] = []
    size = 0
    async for text in response.aiter_text():
        if not _NEWLINES.intersection(text):
            parts.append(text)
            size += len(text)
            if size > limit:
                raise errors.too_large(limit)
            continue
        lines = ("".join(parts) + text).splitlines(keepends=True)
        tail = lines[-1]
        # An unfinished last line, or one ending in "\r" (a "\n" may follow in the next chunk), waits.
        keep = tail[-1] not in _NEWLINES or tail.endswith("\r")
        if keep:
            lines.pop()
        parts, size = ([tail], len(tail)) if keep else ([], 0)
        for line in lines:
            yield line[:-2] if line.endswith("\r\n") else line[:-1]
        if size > limit:
            raise errors.too_large(limit)
    for line in "".join(parts).splitlines():
        yield line


async def _head(response: httpx.Response, limit: int) -> bytes:
    """The first ``limit`` bytes of the body (decoded as the server encoded it); the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def server_url(url: str, *, strip_suffix: str = "") -> str:
    """``url`` without a trailing slash (or ``strip_suffix``), with ``http://`` when it names no scheme."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    if strip_suffix and url.endswith(strip_suffix):
        url = url[: -len(strip_suffix)]
    return url


class LoopClient:
    """One pooled ``httpx.AsyncClient`` per event loop, and at most ``max_concurrency`` requests at a time on each.

    An httpx pool (and an asyncio semaphore) belongs to the loop that made it, so each loop gets its own, kept
    for as long as the loop lives: a backend used from an agent's loop and from ``asyncio.run`` keeps both pools
    warm instead of making a new one at every switch. :meth:`aclose` closes the running loop's client and
    forgets those of loops that have closed (their sockets went with them; they cannot be closed from another
    loop); a later request opens a fresh client.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise UserError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self._base_url = base_url
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        # Uncompressed only (the module docstring): replaces httpx's default "gzip, deflate" and the caller's.
        self._headers = {k: v for k, v in (headers or {}).items() if k.lower() != "accept-encoding"}
        self._headers["Accept-Encoding"] = "identity"
        self._max = max_concurrency
        self._per_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, asyncio.Semaphore | None]
        ] = weakref.WeakKeyDictionary()

    def _current(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore | None]:
        loop = asyncio.get_running_loop()
        held = self._per_loop.get(loop)
        if held is None or held[0].is_closed:
            limits = httpx.Limits(max_connections=self._max or 100, max_keepalive_connections=self._max or 20)
            client = httpx.AsyncClient(
                base_url=self._base_url,
                headers=self._headers,
                timeout=self._timeout,
                limits=limits,
                follow_redirects=True,
            )
            held = self._per_loop[loop] = (client, asyncio.Semaphore(self._max) if self._max else None)
        return held

    def client(self) -> httpx.AsyncClient:
        return self._current()[0]

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[httpx.AsyncClient]:
        """The client, holding one of the ``max_concurrency`` slots for as long as the block runs."""
        client, limit = self._current()
        if limit is None:
            yield client
            return
        async with limit:
            yield client

    async def aclose(self) -> None:
        for loop in [loop for loop in self._per_loop if loop.is_closed()]:
            del self._per_loop[loop]
        held = self._per_loop.pop(asyncio.get_running_loop(), None)
        if held is not None:
            await held[0].aclose()


@dataclass(slots=True)
class OpenStream(Generic[T]):
    """A streaming answer read up to its first event with output: the events so far, the rest still to read."""

    response: httpx.Response
    head: list[T]
    rest: AsyncGenerator[T, None]

    async def events(self) -> AsyncGenerator[T, None]:
        for event in self.head:
            yield event
        async for event in self.rest:
            yield event

    async def aclose(self) -> None:
        """Stop reading; closing the connection is how a server learns to stop generating."""
        await self.rest.aclose()
        await self.response.aclose()


# -- the base of an HTTP engine's backend ------------------------------------------------------------------


class HTTPBackend:
    """The shared half of a backend for an engine served over HTTP: its model, client, retries and errors."""

    def __init__(self, model: str, *, client: LoopClient, retry: RetryPolicy, errors: ServerErrors) -> None:
        self._model = model
        self._http = client
        self._retry = retry
        self._errors = errors
        self._answered = False  # the server has sent this backend a response (so a refused connection is a restart)

    @property
    def model(self) -> str:
        return self._model

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(
        self,
        build: Callable[[httpx.AsyncClient], httpx.Request],
        *,
        stream: bool,
        served: Sequence[str] | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        """Send a request (tried again after transient failures unless ``retry`` is off); return the response
        once its status is not an error.

        An error answer is read, closed and raised as the table's error; with ``stream`` the body of a good
        answer is left for the caller to read (and close). ``served`` names the server's models for a 404.
        """

        async def once() -> httpx.Response:
            client = self._http.client()
            with self._errors.mapped(served=served):
                # Always streamed, so no body is read whole before its size is known (httpx's non-stream send
                # reads everything a server sends); a whole answer is read here within MAX_BODY_BYTES.
                response = await client.send(build(client), stream=True)
                self._answered = True
                encoding = response.headers.get("content-encoding", "").strip().lower()
                if encoding not in ("", "identity"):  # nothing of it is read (the module docstring)
                    await response.aclose()
                    raise self._errors.compressed(encoding)
                if response.status_code < 400:
                    return response if stream else await _whole(response, self._errors)
                try:
                    body = (await _head(response, MAX_ERROR_BODY_BYTES)).decode("utf-8", errors="replace")
                finally:
                    await response.aclose()
                raise ErrorReply(response.status_code, body)

        return await self._retry.call(once, refused=self._answered) if retry else await once()

    async def _open_stream(
        self,
        build: Callable[[httpx.AsyncClient], httpx.Request],
        events: Callable[[httpx.Response], AsyncGenerator[T, None]],
        has_output: Callable[[T], bool],
        *,
        served: Sequence[str] | None = None,
    ) -> OpenStream[T]:
        """Send a streaming request and read its ``events`` up to the first that ``has_output``, retried whole.

        Until output exists nothing has reached the caller, so a connection dropped or an error event before it
        is as safe to retry as a refused connection; after it, nothing is (the caller would see text twice).
        """

        async def attempt() -> OpenStream[T]:
            response = await self._send(build, stream=True, served=served, retry=False)
            rest = events(response)
            head: list[T] = []
            try:
                with self._errors.mapped(served=served):
                    async for event in rest:
                        head.append(event)
                        if has_output(event):
                            break
            except BaseException:
                await rest.aclose()
                await response.aclose()
                raise
            return OpenStream(response, head, rest)

        return await self._retry.call(attempt, refused=self._answered)

    def _json(self, data: str | bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError:
            raise self._errors.not_json(data if isinstance(data, str) else data.decode("utf-8", "replace")) from None
