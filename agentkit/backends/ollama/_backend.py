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
(:class:`~agentkit.backends._native_text.NativeTextWriter`, shared with vLLM's chat path) so the agent loop
parses one format everywhere.

The request goes over the shared HTTP plumbing (:mod:`agentkit.backends._http`: one pooled httpx client per
event loop, the retry policy, the error table) and each streamed line is read with the official client's models
(``ollama.ChatResponse``). Not through ollama-python's ``chat()``: its ``Tool`` model has no
``properties``/``required``/``anyOf`` on a parameter and its ``Message`` has no ``tool_call_id``, so it would
silently drop nested object parameters from the tool declarations, which Ollama's ``api.ToolProperty``
(``api/types.go:418-426``) does accept.

Errors and retries
------------------
Connection failures and 5xx answers are retried with backoff until the first piece of output arrives; 4xx
answers never are, and nothing is retried once text has reached the caller (that would duplicate output).
Messages say what to do: ``ollama serve``, ``ollama pull MODEL``, shorten the conversation or raise ``num_ctx``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import httpx
import ollama
import pydantic

from agentkit.errors import ModelNotFound, StreamInterrupted

from .._http import (
    ErrorReply,
    HTTPBackend,
    LoopClient,
    RetryPolicy,
    ServerErrors,
    bounded_lines,
    renamed_option,
    server_url,
)
from .._native_text import NativeTextWriter
from ..base import Capabilities, GenerationDone, GenerationRequest, RawDelta, Timings, Usage
from ._convert import chat_body

__all__ = ["DEFAULT_HOST", "OllamaBackend"]

DEFAULT_HOST = "http://localhost:11434"

# "model 'x' not found" (routes.go:2485, 1367) and 'model "x" not found, try pulling it first' (routes.go:3116);
# any other 404 (a wrong address, another server) is not a missing model.
_MODEL_NOT_FOUND = re.compile(r"model ['\"].*['\"] not found")
# Phrases of Ollama's "does not fit" errors (llm/llama_server.go:298, server/routes.go:910-968) and of
# llama-server's own ("exceeds the available context size").
_CONTEXT = re.compile(r"context length|context window|context size|exceeds the available context", re.IGNORECASE)
# Capability checks (server/images.go:543-575, routes.go:2621-2630): tools, thinking, vision, audio.
_UNSUPPORTED = re.compile(r"does not support", re.IGNORECASE)

_ChatChunks = AsyncGenerator[ollama.ChatResponse, None]


class _DebugInfo(pydantic.BaseModel):
    rendered_template: str = ""
    image_count: int = 0


class _DebugRender(pydantic.BaseModel):
    debug_info: _DebugInfo = pydantic.Field(default_factory=_DebugInfo, alias="_debug_info")


class OllamaBackend(HTTPBackend):
    """A :class:`~agentkit.backends.base.Backend` for a Gemma 4 model served by Ollama.

    ``host`` is the server's base URL; ``keep_alive`` how long Ollama keeps the model loaded after a call
    (``"5m"``, seconds, ``-1`` forever); ``timeout`` the longest wait in seconds for the next piece of a
    response (loading a large model counts, hence the generous default); ``retries`` how many times a failed
    connection or 5xx answer is retried before any output arrived, ``retry_wait`` the first wait between them
    in seconds (``backoff_s`` is its old, deprecated name); ``options`` Ollama engine options sent with every
    call (``{"num_ctx": 32768}``), under the request's own sampling settings. ``OLLAMA_API_KEY``, when set, is
    sent as a bearer token, as the official client does.
    """

    def __init__(
        self,
        model: str,
        host: str = DEFAULT_HOST,
        *,
        keep_alive: float | str | None = None,
        timeout: float = 300.0,
        retries: int = 3,
        retry_wait: float = 0.5,
        options: Mapping[str, Any] | None = None,
        backoff_s: float | None = None,
    ) -> None:
        retry_wait = renamed_option("OllamaBackend", "backoff_s", "retry_wait", backoff_s, retry_wait, 0.5)
        self._host = server_url(host)
        self._keep_alive = keep_alive
        self._options = dict(options or {})
        key = os.environ.get("OLLAMA_API_KEY")
        headers = {"Accept": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        errors = ServerErrors(
            engine="Ollama",
            backend="ollama",
            url=self._host,
            model=model,
            timeout=timeout,
            owner="OllamaBackend",
            start="start it with `ollama serve` (or set --backend / AGENTKIT_BACKEND)",
            missing_model=_MODEL_NOT_FOUND,
            missing_model_hint=f"Run `ollama pull {model}`, or use a model it has.",
            context=_CONTEXT,
            context_hint="raise the window with options={'num_ctx': 32768}",
            auth_hint="Set OLLAMA_API_KEY to the key it expects.",
            address_hint="is this address an Ollama server?",
            hints=[(_UNSUPPORTED, "agentkit needs a Gemma 4 model with tool support, e.g. `ollama pull gemma4:e4b`")],
        )
        super().__init__(
            model,
            client=LoopClient(self._host, timeout=timeout, headers=headers),
            retry=RetryPolicy(retries, retry_wait),
            errors=errors,
        )

    # -- Backend protocol -----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return "ollama"

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
        opened = await self._open_stream(
            lambda client: client.build_request("POST", "/api/chat", json=body), self._chunks, _ends_waiting
        )
        writer = NativeTextWriter()
        ttft: float | None = None
        streamed = 0
        final: ollama.ChatResponse | None = None
        try:
            with self._errors.mapped(lambda: streamed):
                async with contextlib.aclosing(opened.events()) as chunks:
                    async for chunk in chunks:
                        text = _native(writer, chunk)
                        if text:
                            if ttft is None:
                                ttft = time.perf_counter() - started
                            streamed += len(text)
                            yield RawDelta(text)
                        if chunk.done:
                            final = chunk
                            break
        finally:
            await opened.aclose()  # closing the connection is how Ollama learns to stop generating
        if final is None:
            raise StreamInterrupted(
                f"Ollama at {self._host} ended the response before the model finished (no final 'done' message); "
                "the server may have restarted — try again",
                backend="ollama",
            )
        tail, stop = writer.finish(out_of_tokens=final.done_reason == "length")
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
        try:
            await self._send(lambda client: client.build_request("GET", "/api/version"), stream=False)
            await self._send(
                lambda client: client.build_request("POST", "/api/show", json={"model": self._model}), stream=False
            )
        except ModelNotFound as exc:
            served: list[str] | None
            try:
                served = await self.list_models()
            except Exception:  # the listing is a courtesy; the missing model is the error to report
                served = None
            said = exc.__cause__.message if isinstance(exc.__cause__, ErrorReply) else ""
            raise self._errors.model_not_found(served, said=said) from exc

    async def list_models(self) -> list[str]:
        """The models this Ollama server has pulled (``/api/tags``), sorted by name."""
        response = await self._send(lambda client: client.build_request("GET", "/api/tags"), stream=False)
        with self._errors.mapped():
            listed = ollama.ListResponse.model_validate(self._json(response.content))
        return sorted({m.model for m in listed.models if m.model})

    async def rendered_prompt(self, request: GenerationRequest) -> str:
        """The prompt Ollama's own Gemma 4 renderer makes of ``request``; nothing is generated.

        Ollama renders the conversation itself on this path, so this is how to see what the model is really
        given and compare it with agentkit's rendering (``request.prompt``); it uses the chat endpoint's
        ``_debug_render_only`` switch (``api/types.go:169-171``, ``server/routes.go:2708-2718``).
        """
        body = chat_body(self._model, request, options=self._options, keep_alive=self._keep_alive)
        body = {**body, "stream": False, "_debug_render_only": True}
        response = await self._send(lambda client: client.build_request("POST", "/api/chat", json=body), stream=False)
        with self._errors.mapped():
            return _DebugRender.model_validate(self._json(response.content)).debug_info.rendered_template

    # -- internals ------------------------------------------------------------------------------------

    async def _chunks(self, response: httpx.Response) -> _ChatChunks:
        """The response's chunks, one JSON object a line; an ``{"error": …}`` line is the server's error."""
        async for line in bounded_lines(response, self._errors):
            if not line or line.isspace():
                continue
            # A key "error" is the only way '"error"' can stand in a line: a quote inside a string is escaped.
            if '"error"' in line and self._json(line).get("error"):
                raise ErrorReply(None, line)
            try:
                chunk = ollama.ChatResponse.model_validate_json(line)
            except pydantic.ValidationError as exc:
                if exc.errors()[0]["type"] == "json_invalid":
                    raise self._errors.not_json(line) from None
                raise
            yield chunk


def _native(writer: NativeTextWriter, chunk: ollama.ChatResponse) -> str:
    message = chunk.message
    parts = [writer.thinking(message.thinking or ""), writer.content(message.content or "")]
    for call in message.tool_calls or ():
        parts.append(writer.tool_call(call.function.name, call.function.arguments or {}))
    return "".join(parts)


def _ends_waiting(chunk: ollama.ChatResponse) -> bool:
    """Whether a chunk carries output or ends the answer (until one does, a failure is retried)."""
    message = chunk.message
    return chunk.done or bool(message.content or message.thinking or message.tool_calls)
