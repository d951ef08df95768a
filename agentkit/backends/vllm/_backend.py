"""The vLLM backend: Gemma 4 on vLLM's OpenAI-compatible server, over one pooled httpx client.

Two paths, one output format:

- **native** (default): ``/v1/completions`` with agentkit's own prompt. When the model's tokenizer is on this
  machine the prompt goes as token ids, so untrusted text can never become a control token; otherwise as text,
  with untrusted text neutralized. The server is asked to keep special tokens (``skip_special_tokens: false``)
  and the matched stop marker (``include_stop_str_in_output``), so the stream *is* the model's native output.
- **chat** (``mode="chat"``, and any request that carries images or audio): ``/v1/chat/completions`` with the
  OpenAI-style messages and tools; vLLM renders with the model's chat template and parses with
  ``--reasoning-parser gemma4 --tool-call-parser gemma4``. The shared writer
  (:class:`~agentkit.backends._native_text.NativeTextWriter`, Ollama's too) writes the parsed pieces back
  as native Gemma 4 text, so the agent loop parses one format either way. vLLM tokenizes the rendered
  template with special tokens recognized, so every string of the messages and tools is neutralized first
  (:func:`agentkit.gemma4.sanitize.neutralize_messages`), exactly as the text prompt of the native path is.

A request that carries a tool-call grammar (:mod:`agentkit.gemma4.grammar`) sends it in native mode as
``structured_outputs: {"structural_tag": …}``: vLLM's xgrammar then masks every token that would break a call. The
chat path sends none (vLLM renders and parses there), so ``capabilities.grammar`` is off in chat mode; a request
with media takes the chat path unconstrained.

Connection errors and 5xx answers (an error event included) are retried with backoff until the first text
arrives, on the shared plumbing of :mod:`agentkit.backends._http` (retry policy, one client per event loop,
the error table); 4xx answers never are. ``max_tokens`` is capped to what the server's context can hold (vLLM rejects a
``max_tokens`` larger than ``--max-model-len`` outright, and the default budget often is).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, Literal

import httpx

from agentkit.errors import BackendResponseError, ContextTooLong, StreamInterrupted, UserError
from agentkit.gemma4.prompt import SupportsEncode
from agentkit.gemma4.sanitize import neutralize_tools

from .._http import (
    ErrorReply,
    HTTPBackend,
    LoopClient,
    OpenStream,
    RetryPolicy,
    ServerErrors,
    bounded_lines,
    server_url,
)
from .._native_text import NativeTextWriter
from .._openai_media import openai_part
from ..base import BackendEvent, Capabilities, GenerationDone, GenerationRequest, RawDelta, Timings, Usage
from ._tokenizer import load_tokenizer
from ._wire import CONTEXT_ERROR, MISSING_MODEL, has_output, native_delta, parse_sse_data, stop_from_completion

__all__ = ["VLLMBackend"]

Mode = Literal["native", "chat"]


class VLLMBackend(HTTPBackend):
    """Streams native Gemma 4 text from a vLLM server.

    ``tokenizer``: a local model directory, a ``tokenizer.json`` path, a Hugging Face repo id already in the
    local cache, or an object with ``encode`` (a transformers tokenizer); ``None`` looks for the served
    model's own tokenizer locally; ``False`` always sends text prompts. ``extra_body`` is merged into every
    request (vLLM sampling extensions such as ``repetition_penalty`` or ``logit_bias``). ``timeout`` bounds
    each wait for the server (connect, and the gap between streamed chunks), not the whole generation.
    ``retries`` and ``retry_wait`` (seconds before the first retry) set the shared retry policy.
    """

    def __init__(
        self,
        model: str,
        base_url: str = "http://localhost:8000",
        *,
        api_key: str | None = None,
        tokenizer: str | os.PathLike[str] | SupportsEncode | Literal[False] | None = None,
        mode: Mode = "native",
        max_concurrency: int = 64,
        timeout: float = 300.0,
        retries: int = 3,
        retry_wait: float = 0.5,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if mode not in ("native", "chat"):
            raise UserError(f"VLLMBackend mode must be 'native' or 'chat', not {mode!r}")
        self._base_url = server_url(base_url, strip_suffix="/v1")
        self._mode: Mode = mode
        self._extra_body = dict(extra_body or {})
        key = api_key if api_key is not None else os.environ.get("VLLM_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._tokenizer: SupportsEncode | None = (
            None if tokenizer is False else load_tokenizer(tokenizer or model, required=tokenizer is not None)
        )
        self._max_model_len: int | None = None
        self._served: list[str] | None = None
        errors = ServerErrors(
            engine="vLLM",
            backend="vllm",
            url=self._base_url,
            model=model,
            timeout=timeout,
            owner="VLLMBackend",
            start=f"start it with `vllm serve {model} --enable-auto-tool-choice --tool-call-parser gemma4 "
            "--reasoning-parser gemma4`, or pass the right base_url.",
            missing_model=MISSING_MODEL,
            missing_model_hint=f"Use a name it serves, or restart vLLM with `--served-model-name {model}`.",
            context=CONTEXT_ERROR,
            context_hint="lower max_tokens, or restart vLLM with a larger --max-model-len.",
            auth_hint="Pass the key the server was started with (`--api-key`) as api_key.",
            address_hint="is this a vLLM server? Check the base_url (the server root, without /v1).",
        )
        client = LoopClient(self._base_url, timeout=timeout, headers=headers, max_concurrency=max_concurrency)
        super().__init__(model, client=client, retry=RetryPolicy(retries, retry_wait), errors=errors)

    @property
    def name(self) -> str:
        return "vllm"

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            token_ids=self._tokenizer is not None and self._mode == "native",
            media=True,
            server_tool_parsing=self._mode == "chat",
            prefix_cache=True,
            grammar=self._mode == "native",
            grammar_note="" if self._mode == "native" else "chat mode lets vLLM render and parse; use mode='native'",
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[BackendEvent]:
        chat = self._mode == "chat" or request.has_media  # native prompts carry no pixels or samples
        async with self._http.slot():
            start = time.perf_counter()
            await self._load_served_models()
            if chat:
                path, body = "/v1/chat/completions", self._chat_body(request)
            else:
                path, body = "/v1/completions", self._completion_body(request)
            opened = await self._open_stream(
                lambda client: client.build_request("POST", path, json=body),
                self._events,
                has_output,
                served=self._served,
            )
            try:
                async for event in self._read(opened, request, NativeTextWriter() if chat else None, start):
                    yield event
            finally:
                await opened.aclose()

    async def check(self) -> None:
        self._served = None
        await self._load_served_models()
        # An empty listing means the server has no vLLM model list (another OpenAI-compatible server).
        if self._served and self._model not in self._served:
            raise self._errors.model_not_found(self._served)

    async def list_models(self) -> list[str]:
        """The model names this server accepts (``/v1/models``), asked again on every call, sorted.

        Empty when the server has no such listing (an OpenAI-compatible server that is not vLLM).
        """
        self._served = None
        await self._load_served_models()
        return sorted(self._served or [])

    # -- requests ------------------------------------------------------------------------------------

    def _completion_body(self, request: GenerationRequest) -> dict[str, Any]:
        prompt: str | list[int]
        if self._tokenizer is not None:
            prompt = request.prompt.token_ids(self._tokenizer)
            if self._max_model_len is not None and len(prompt) >= self._max_model_len:
                raise ContextTooLong(
                    f"The prompt is {len(prompt)} tokens but {self._model!r} on vLLM at {self._errors.url} has a "
                    f"context of {self._max_model_len} tokens. Shorten the conversation, or restart vLLM with "
                    "a larger --max-model-len.",
                    backend="vllm",
                )
        else:
            prompt = request.prompt.text
        body = {
            "model": self._model,
            "prompt": prompt,
            # agentkit's prompt already starts with <bos>: the server must not add another.
            "add_special_tokens": False,
            "stop": list(request.stop),
            "include_stop_str_in_output": True,
            "skip_special_tokens": False,
            "spaces_between_special_tokens": False,
            **self._sampling(request),
        }
        if self._tokenizer is not None:
            # The generated ids, so the loop continues with them instead of re-tokenizing the text.
            body["return_token_ids"] = True
        if request.grammar is not None and "structured_outputs" not in self._extra_body:
            # vLLM hands this to xgrammar: the output must follow it, token by token (extra_body may override).
            body["structured_outputs"] = {"structural_tag": request.grammar.structural_tag}
        return body

    def _chat_body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            # Media parts (a user's, or those a tool returned) in the forms vLLM reads, strings sanitized, then
            # its wire shape. A tool message keeps its image parts: vLLM passes them to the model's template,
            # which writes <|image|> after that tool's response (vllm/renderers/chat_utils.py, role "tool").
            "messages": _chat_wire(request.chat_messages(media=openai_part)),
            "chat_template_kwargs": {"enable_thinking": request.enable_thinking},
            # The gemma4 parsers need the control tokens. No stop *strings* here: vLLM holds back text that
            # might start one, and its gemma4 parser then misreads calls as content (seen with vLLM 0.32).
            # Stop token ids have no hold-back; without a tokenizer the checkpoint's generation config decides.
            "skip_special_tokens": False,
            **self._sampling(request),
        }
        stop_ids = self._stop_token_ids(request.stop)
        if stop_ids:
            body["stop_token_ids"] = stop_ids
        if request.tools:
            tools = neutralize_tools(request.tools)
            body["tools"] = [t if "type" in t else {"type": "function", "function": t} for t in tools]
        return body

    def _stop_token_ids(self, stops: tuple[str, ...]) -> list[int]:
        """Ids of the stop markers that are single tokens in the local tokenizer (all Gemma 4 markers are)."""
        if self._tokenizer is None:
            return []
        ids = []
        for marker in stops:
            encoded = self._tokenizer.encode(marker, add_special_tokens=False)
            if len(encoded) == 1:
                ids.append(encoded[0])
        return ids

    def _sampling(self, request: GenerationRequest) -> dict[str, Any]:
        sampling = request.sampling
        max_tokens = sampling.max_tokens
        if self._max_model_len is not None:
            # vLLM shortens max_tokens to the room the prompt leaves, but rejects one above the whole context.
            max_tokens = min(max_tokens, self._max_model_len)
        body: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        body.update(self._extra_body)
        return body

    # -- HTTP ----------------------------------------------------------------------------------------

    async def _load_served_models(self) -> None:
        """Learn the served model names and the context length once (``/v1/models``)."""
        if self._served is not None:
            return
        try:
            response = await self._send(lambda client: client.build_request("GET", "/v1/models"), stream=False)
        except BackendResponseError as exc:
            if exc.status is None or exc.status >= 500 or exc.status in (401, 403):
                raise
            # Not vLLM's model listing (another OpenAI-compatible server, or a proxy): go on without it.
            self._served = []
            return
        try:
            entries = response.json().get("data") or []
        except (ValueError, AttributeError):
            self._served = []
            return
        self._served = [str(e.get("id")) for e in entries if isinstance(e, Mapping)]
        for entry in entries:
            if isinstance(entry, Mapping) and entry.get("id") == self._model:
                length = entry.get("max_model_len")
                self._max_model_len = length if isinstance(length, int) and length > 0 else None

    async def _read(
        self,
        opened: OpenStream[Mapping[str, Any]],
        request: GenerationRequest,
        chat: NativeTextWriter | None,
        start: float,
    ) -> AsyncIterator[BackendEvent]:
        """Turn the server's events into text deltas and one closing ``GenerationDone``."""
        first: float | None = None
        tail = ""  # the end of the output, to tell which stop marker ended it
        streamed = 0
        finish: str | None = None
        stop_reason: object = None
        usage = Usage()
        generated: list[int] | None = None if chat else []
        async with contextlib.aclosing(opened.events()) as chunks:
            with self._errors.mapped(lambda: streamed, self._served):
                async for chunk in chunks:
                    if chunk.get("usage"):
                        usage = _usage(chunk["usage"])
                    for choice in chunk.get("choices") or ():
                        piece = native_delta(chat, choice.get("delta") or {}) if chat else choice.get("text") or ""
                        if generated is not None:
                            ids = choice.get("token_ids")
                            if isinstance(ids, list):
                                generated.extend(ids)
                        if piece:
                            if first is None:
                                first = time.perf_counter()
                            streamed += len(piece)
                            tail = (tail + piece)[-64:]
                            yield RawDelta(piece)
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
                            stop_reason = choice.get("stop_reason")
        if finish not in ("stop", "length", "tool_calls"):
            what = f"finish_reason {finish!r}" if finish else "no finish_reason"
            raise StreamInterrupted(
                f"vLLM at {self._errors.url} ended the stream with {what} after {streamed} characters: the "
                "request was aborted or the server went away. Run the request again.",
                backend="vllm",
            )
        if chat is not None:
            closing, stop = chat.finish(out_of_tokens=finish == "length")
            if closing:
                first = first or time.perf_counter()
                yield RawDelta(closing)
        else:
            stop = stop_from_completion(finish, stop_reason, tail, request.stop)
        token_ids = self._vouched_ids(generated, stop, usage) if generated else None
        end = time.perf_counter()
        ttft = (first or end) - start
        decode_s = end - (first or end)
        rate = (usage.completion_tokens - 1) / decode_s if usage.completion_tokens > 1 and decode_s > 0 else 0.0
        yield GenerationDone(stop=stop, usage=usage, timings=Timings(ttft, end - start, rate), token_ids=token_ids)

    async def _events(self, response: httpx.Response) -> AsyncGenerator[Mapping[str, Any], None]:
        """The JSON events of a server-sent event stream, up to ``[DONE]``; an ``{"error": …}`` event is raised."""
        async for line in bounded_lines(response, self._errors):
            data = parse_sse_data(line)
            if data is None:
                continue
            if data.strip() == "[DONE]":
                return
            chunk = self._json(data)
            if not isinstance(chunk, Mapping):
                raise self._errors.not_json(data)  # JSON, but not an event object
            if "error" in chunk:
                error = chunk["error"]
                code = error.get("code") if isinstance(error, Mapping) else None
                raise ErrorReply(code if isinstance(code, int) else None, json.dumps(chunk))
            yield chunk

    def _vouched_ids(self, ids: list[int], stop: str | None, usage: Usage) -> tuple[int, ...] | None:
        """The generated ids if they are exactly the streamed text, else None (the loop then tokenizes the text).

        vLLM matches stop *strings* on the text, so a model that spelled ``<turn|>`` out of plain pieces ends
        with text that reads like the marker but ids that are not its control token: those must not be kept,
        or the next prompt would lack the real hand-over token. A count that disagrees with the usage means
        the server did not send every chunk's ids.
        """
        if usage.completion_tokens and usage.completion_tokens != len(ids):
            return None
        if stop is not None:
            marker = self._stop_token_ids((stop,))
            if not marker or ids[-1] != marker[0]:
                return None
        return tuple(ids)


def _chat_wire(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages in the shape vLLM's chat API validates: call arguments as JSON text, typed calls, text results.

    The agent keeps arguments and tool results as mappings (as the native renderer takes them); vLLM rejects
    a call whose ``arguments`` is not a string or that has no ``type``, and a content that is not text or parts.
    """
    for message in messages:
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            message["content"] = json.dumps(content, ensure_ascii=False, sort_keys=True, default=str)
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                continue
            call.setdefault("type", "function")
            arguments = function.get("arguments")
            if not isinstance(arguments, str):
                function["arguments"] = json.dumps(arguments or {}, ensure_ascii=False, default=str)
    return messages


def _usage(data: Mapping[str, Any]) -> Usage:
    details = data.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, Mapping) else 0,
    )
