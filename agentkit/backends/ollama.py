"""OllamaBackend: Gemma 4 on a local Ollama server, through ``/api/chat``.

Why ``/api/chat`` and not raw generation with agentkit's own prompt
--------------------------------------------------------------------
Checked in ollama/ollama at commit fb30760996871fa9460115c753afd2c60d4ab0f7 (2026-08-21):

- Ollama's default engine runs the model in llama-server and only renders a control token as text when the
  request lists it as a *preserved token* (``model/parsers/parsers.go:19-21``: "parser grammar tokens that
  must remain visible in llama-server detokenized output"; ``llm/server.go:215``; passed on at
  ``llm/llama_server.go:1576``).
- Those tokens come from the model's built-in parser only: ``Gemma4Parser.PreservedTokens`` lists
  ``<|channel>``, ``<channel|>``, ``<|tool_call>``, ``<tool_call|>``, ``<|tool_response>`` and ``<|"|>``
  (``model/parsers/gemma4.go:53-62``), and ``preservedTokensForCompletion`` returns nil without a parser
  (``server/routes.go:2314-2319``).
- ``/api/generate`` sets up that parser only when the request is *not* raw
  (``server/routes.go:440-446``: ``if !req.Raw && m.Config.Parser != ""``) and passes
  ``preservedTokensForCompletion(builtinParser)`` at ``server/routes.go:668``.

So ``raw: true`` generation comes back without the call, thought and string-delimiter tokens on the default
engine (the MLX engine decodes every token, ``x/mlxrunner/pipeline.go:404``, so raw output would even differ
by platform). Tool calls cannot be read from that text. The reliable path is ``/api/chat`` with ``tools`` and
``think``: Ollama renders the prompt with its Gemma 4 renderer (``model/renderers/gemma4.go``), parses the
output with its Gemma 4 parser, and streams ``thinking`` / ``content`` / ``tool_calls``
(``server/routes.go:2807-2833``). This backend maps those pieces back into native Gemma 4 text
(:class:`~agentkit.backends._ollama_convert.NativeTextWriter`) so the agent loop parses one format everywhere.

The request body is posted through the official client's request machinery (``AsyncClient._request``, the
method its public ``chat()`` calls) rather than ``chat()`` itself: ollama-python's ``Tool`` model has no
``properties``/``required``/``anyOf`` on a parameter and its ``Message`` has no ``tool_call_id``, so going
through ``chat()`` would silently drop nested object parameters from the tool declarations, which Ollama's
``api.ToolProperty`` (``api/types.go:418-426``) does accept.

Errors and retries
------------------
Connection failures and 5xx answers are retried with exponential backoff (tenacity) until the first piece
of output arrives; 4xx answers never are, and nothing is retried once text has reached the caller (that
would duplicate output). Messages say what to do: ``ollama serve``, ``ollama pull MODEL``, shorten the
conversation or raise ``num_ctx``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, cast

import httpx
import ollama
import pydantic
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from agentkit.errors import (
    BackendError,
    BackendResponseError,
    BackendUnavailable,
    ContextTooLong,
    ModelNotFound,
    StreamInterrupted,
)

from ._ollama_convert import NativeTextWriter, chat_body
from .base import Capabilities, GenerationDone, GenerationRequest, RawDelta, Timings, Usage

__all__ = ["DEFAULT_HOST", "OllamaBackend"]

DEFAULT_HOST = "http://localhost:11434"

# Phrases of Ollama's "does not fit" errors (llm/llama_server.go:298, server/routes.go:910-968) and of
# llama-server's own ("exceeds the available context size").
# "model 'x' not found" (routes.go:2485, 1367) and 'model "x" not found, try pulling it first' (routes.go:3116);
# any other 404 (a wrong address, another server) is not a missing model.
_MODEL_NOT_FOUND = re.compile(r"model ['\"].*['\"] not found")
_CONTEXT_PHRASES = ("context length", "context window", "context size", "exceeds the available context")


_ChatChunks = AsyncGenerator[ollama.ChatResponse, None]


class _Version(pydantic.BaseModel):
    version: str = ""


class _DebugInfo(pydantic.BaseModel):
    rendered_template: str = ""
    image_count: int = 0


class _DebugRender(pydantic.BaseModel):
    debug_info: _DebugInfo = pydantic.Field(default_factory=_DebugInfo, alias="_debug_info")


class _Client(ollama.AsyncClient):
    """The official client plus the calls its public API lacks or cannot make faithfully (module docstring)."""

    async def chat_stream(self, body: dict[str, Any]) -> _ChatChunks:
        chunks = await self._request(ollama.ChatResponse, "POST", "/api/chat", json=body, stream=True)
        return cast(_ChatChunks, chunks)  # the client returns its inner async generator

    async def debug_render(self, body: dict[str, Any]) -> str:
        body = {**body, "stream": False, "_debug_render_only": True}
        return (await self._request(_DebugRender, "POST", "/api/chat", json=body)).debug_info.rendered_template

    async def version(self) -> str:
        return (await self._request(_Version, "GET", "/api/version")).version


class OllamaBackend:
    """A :class:`~agentkit.backends.base.Backend` for a Gemma 4 model served by Ollama.

    ``host`` is the server's base URL; ``keep_alive`` how long Ollama keeps the model loaded after a call
    (``"5m"``, seconds, ``-1`` forever); ``timeout`` the longest wait in seconds for the next piece of a
    response (loading a large model counts, hence the generous default); ``retries`` how many times a failed
    connection or 5xx answer is retried before any output arrived; ``options`` Ollama engine options sent with
    every call (``{"num_ctx": 32768}``), under the request's own sampling settings; ``backoff_s`` the first
    wait between retries (doubling each time, at most 8 s).
    """

    def __init__(
        self,
        model: str,
        host: str = DEFAULT_HOST,
        *,
        keep_alive: float | str | None = None,
        timeout: float = 300.0,
        retries: int = 3,
        options: Mapping[str, Any] | None = None,
        backoff_s: float = 0.5,
    ) -> None:
        self._model = model
        self._host = host.rstrip("/")
        self._keep_alive = keep_alive
        self._timeout = httpx.Timeout(timeout, connect=min(10.0, timeout))
        self._timeout_s = timeout
        self._retries = max(0, retries)
        self._options = dict(options or {})
        self._backoff_s = backoff_s
        self._client: _Client | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # -- Backend protocol -----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return "ollama"

    @property
    def model(self) -> str:
        return self._model

    @property
    def host(self) -> str:
        return self._host

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            media=True,
            server_tool_parsing=True,
            grammar_note="Ollama has no way to pass a grammar for Gemma 4's call format; its parser and agentkit's "
            "tolerant parsing are the defence there",
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[RawDelta | GenerationDone]:
        body = chat_body(self._model, request, options=self._options, keep_alive=self._keep_alive)
        started = time.perf_counter()
        chunks, head = await self._open(body)
        writer = NativeTextWriter()
        ttft: float | None = None
        final: ollama.ChatResponse | None = None
        try:
            async with contextlib.aclosing(self._continue(chunks, head)) as pieces:
                async for chunk in pieces:
                    text = self._native(writer, chunk)
                    if text:
                        if ttft is None:
                            ttft = time.perf_counter() - started
                        yield RawDelta(text)
                    if chunk.done:
                        final = chunk
                        break
        finally:
            # Closing the response closes its connection, which is how Ollama learns to stop generating.
            await chunks.aclose()
        if final is None:
            raise StreamInterrupted(
                f"Ollama at {self._host} ended the response before the model finished (no final 'done' message); "
                "the server may have restarted — try again",
                backend="ollama",
            )
        tail, stop = writer.finish(final.done_reason)
        if tail:
            if ttft is None:
                ttft = time.perf_counter() - started
            yield RawDelta(tail)
        total = time.perf_counter() - started
        eval_count = final.eval_count or 0
        eval_s = (final.eval_duration or 0) / 1e9
        yield GenerationDone(
            stop=stop,
            usage=Usage(prompt_tokens=final.prompt_eval_count or 0, completion_tokens=eval_count),
            timings=Timings(ttft_s=ttft or 0.0, total_s=total, tokens_per_s=eval_count / eval_s if eval_s > 0 else 0.0),
        )

    async def check(self) -> None:
        client = self._ensure_client()
        try:
            await client.version()
            await client.show(self._model)
        except Exception as exc:
            error = self._translate(exc, streamed=False)
            if isinstance(error, ModelNotFound):
                error = ModelNotFound(await self._not_found_message(), backend="ollama", status=404)
            raise error from exc

    async def list_models(self) -> list[str]:
        """The models this Ollama server has pulled (``/api/tags``), sorted by name."""
        try:
            listed = await self._ensure_client().list()
        except Exception as exc:
            raise self._translate(exc, streamed=False) from exc
        return sorted({m.model for m in listed.models if m.model})

    async def rendered_prompt(self, request: GenerationRequest) -> str:
        """The prompt Ollama's own Gemma 4 renderer makes of ``request``; nothing is generated.

        Ollama renders the conversation itself on this path, so this is how to see what the model is really
        given and compare it with agentkit's rendering (``request.prompt``); it uses the chat endpoint's
        ``_debug_render_only`` switch (``api/types.go:169-171``, ``server/routes.go:2708-2718``).
        """
        body = chat_body(self._model, request, options=self._options, keep_alive=self._keep_alive)
        try:
            return await self._ensure_client().debug_render(body)
        except Exception as exc:
            raise self._translate(exc, streamed=False) from exc

    async def aclose(self) -> None:
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            await client.close()  # type: ignore[no-untyped-call]

    # -- internals ------------------------------------------------------------------------------------

    def _ensure_client(self) -> _Client:
        # httpx connection pools belong to the event loop that opened them; a new loop gets a new client.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = _Client(host=self._host, timeout=self._timeout)
            self._client_loop = loop
        return self._client

    async def _open(self, body: dict[str, Any]) -> tuple[_ChatChunks, list[ollama.ChatResponse]]:
        """Send the request and read up to the first chunk with output, retrying failures before that point."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_exponential(multiplier=self._backoff_s, max=max(self._backoff_s, 8.0)),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._open_once(body)
        raise AssertionError("unreachable: tenacity either returns a result or re-raises")  # pragma: no cover

    async def _open_once(self, body: dict[str, Any]) -> tuple[_ChatChunks, list[ollama.ChatResponse]]:
        chunks = await self._ensure_client().chat_stream(body)
        head: list[ollama.ChatResponse] = []
        try:
            while True:
                chunk = await anext(chunks)
                head.append(chunk)
                if chunk.done or _has_output(chunk):
                    return chunks, head
        except StopAsyncIteration:
            return chunks, head  # ended without "done": reported by stream() after the head is replayed
        except Exception as exc:
            await chunks.aclose()
            raise self._translate(exc, streamed=False) from exc
        except BaseException:
            await chunks.aclose()
            raise

    async def _continue(self, chunks: _ChatChunks, head: list[ollama.ChatResponse]) -> _ChatChunks:
        for chunk in head:
            yield chunk
        if head and head[-1].done:
            return
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except Exception as exc:
                raise self._translate(exc, streamed=True) from exc
            yield chunk

    @staticmethod
    def _native(writer: NativeTextWriter, chunk: ollama.ChatResponse) -> str:
        message = chunk.message
        parts = [writer.thinking(message.thinking or ""), writer.content(message.content or "")]
        for call in message.tool_calls or ():
            parts.append(writer.tool_call(call.function.name, call.function.arguments or {}))
        return "".join(parts)

    def _translate(self, exc: BaseException, *, streamed: bool) -> BackendError:
        """The agentkit error for a failure of the ollama client or its httpx transport."""
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, ollama.ResponseError):
            return self._response_error(str(exc.error), exc.status_code, streamed=streamed)
        # ollama-python raises a bare ConnectionError for refused connections outside streams.
        if type(exc) is ConnectionError or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return BackendUnavailable(
                f"Cannot reach Ollama at {self._host}: start it with `ollama serve` "
                "(or set --backend / AGENTKIT_BACKEND)",
                backend="ollama",
            )
        if isinstance(exc, httpx.TimeoutException):
            what = "stopped sending output" if streamed else "did not answer"
            error_cls = StreamInterrupted if streamed else BackendUnavailable
            return error_cls(
                f"Ollama at {self._host} {what} for {self._timeout_s:g} s; it may be overloaded or still loading "
                "the model — try again, or give OllamaBackend a larger timeout=",
                backend="ollama",
            )
        if isinstance(exc, httpx.TransportError | ConnectionError):  # RemoteProtocolError, ReadError, resets
            if streamed:
                return StreamInterrupted(
                    f"The connection to Ollama at {self._host} broke off mid-response ({exc or type(exc).__name__}); "
                    "the server may have restarted — run the request again",
                    backend="ollama",
                )
            return BackendUnavailable(
                f"Ollama at {self._host} closed the connection before answering ({exc or type(exc).__name__}); "
                "is it restarting? Check `ollama serve`'s log",
                backend="ollama",
            )
        return BackendResponseError(
            f"Unexpected failure talking to Ollama at {self._host}: {type(exc).__name__}: {exc}", backend="ollama"
        )

    def _response_error(self, text: str, status: int, *, streamed: bool) -> BackendError:
        code = status if status > 0 else None  # the client reports errors inside a stream with status -1
        lowered = text.lower()
        if status == 404 and _MODEL_NOT_FOUND.search(text):
            return ModelNotFound(
                f"Ollama at {self._host} does not have the model '{self._model}': run `ollama pull {self._model}` "
                f"(Ollama said: {text})",
                backend="ollama",
                status=404,
            )
        if any(phrase in lowered for phrase in _CONTEXT_PHRASES):
            return ContextTooLong(
                f"The conversation does not fit {self._model}'s context window on Ollama ({text}). Start a new "
                "session or shorten the input, or raise the window with options={'num_ctx': 32768}",
                backend="ollama",
                status=code,
            )
        if "does not support" in lowered:
            # Capability checks (server/images.go:543-575, routes.go:2621-2630): tools, thinking, vision, audio.
            return BackendResponseError(
                f"Ollama's model '{self._model}' cannot do what was asked ({text}); agentkit needs a Gemma 4 model "
                "with tool support, e.g. `ollama pull gemma4:e4b`",
                backend="ollama",
                status=code,
            )
        if streamed:
            return StreamInterrupted(f"Ollama reported an error mid-response: {text}", backend="ollama", status=code)
        where = f"HTTP {status}" if code else "error"
        hint = " — is this address an Ollama server?" if status in (404, 405) else ""
        return BackendResponseError(
            f"Ollama at {self._host} answered with {where}: {text}{hint}", backend="ollama", status=code
        )

    async def _not_found_message(self) -> str:
        hint = ""
        try:
            listed = await self._ensure_client().list()
            names = sorted(m.model for m in listed.models if m.model)
            hint = f" (it has: {', '.join(names)})" if names else " (it has no models yet)"
        except Exception:  # the hint is a courtesy; the missing model is the error to report
            hint = ""
        return f"Ollama at {self._host} does not have the model '{self._model}': run `ollama pull {self._model}`{hint}"


def _has_output(chunk: ollama.ChatResponse) -> bool:
    message = chunk.message
    return bool(message.content or message.thinking or message.tool_calls)


def _retryable(exc: BaseException) -> bool:
    """Connection failures and server-side (5xx) errors; never 4xx, never a read timeout (it would wait again)."""
    if isinstance(exc, BackendUnavailable):
        return not isinstance(exc.__cause__, httpx.ReadTimeout | httpx.WriteTimeout | httpx.PoolTimeout)
    return isinstance(exc, BackendResponseError) and exc.status is not None and exc.status >= 500
