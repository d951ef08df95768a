"""What vLLM's OpenAI-compatible server says on the wire, turned into agentkit's terms.

Kept apart from :mod:`agentkit.backends.vllm` so the HTTP client reads as a short story: this module knows the
server's error bodies, its server-sent events, and how the chat API's parsed deltas map back to native
Gemma 4 text. Everything here is pure (no I/O), so tests can feed it recorded server output directly.

Facts relied on (vLLM 0.32, ``vllm/entrypoints``):
- errors are ``{"error": {"message", "type", "param", "code"}}`` (``serve/engine/protocol.py`` ``ErrorResponse``);
  a failure after streaming began arrives as one ``data: {"error": …}`` event followed by ``data: [DONE]``
  (``openai/completion/serving.py``);
- an unknown model is a 404 "The model `x` does not exist."; an over-long prompt or a ``max_tokens`` above the
  context is a 400 naming "maximum context length" / "max_model_len" (``renderers/params.py``);
- a completion chunk carries ``choices[0].text`` and, on the last one, ``finish_reason`` ("stop"/"length")
  and ``stop_reason`` (the matched stop string, a stop token id, or null for the end-of-sequence token).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentkit.errors import BackendError, BackendResponseError, ContextTooLong, ModelNotFound
from agentkit.gemma4.tokens import (
    CHANNEL_END,
    CHANNEL_START,
    TOOL_CALL_END,
    TOOL_CALL_START,
    TOOL_RESPONSE_START,
    TURN_END,
)
from agentkit.gemma4.values import format_tool_call

__all__ = ["ChatToNative", "error_from_response", "parse_sse_data", "server_message", "stop_from_completion"]

_CONTEXT_PATTERNS = re.compile(
    r"maximum context length|max_model_len|context length|max_tokens must be at least 1, got 0|too long",
    re.IGNORECASE,
)


def server_message(body: str) -> str:
    """The human-readable message inside a vLLM (or FastAPI) error body; the raw body when there is none."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:500] or "(empty response body)"
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        for key in ("message", "detail"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return body.strip()[:500]


def error_from_response(
    status: int, body: str, *, base_url: str, model: str, served: Sequence[str] | None = None
) -> BackendError:
    """Translate one error status from the server into the agentkit error a user can act on."""
    message = server_message(body)
    if status == 404 and "does not exist" in message and "model" in message.lower():
        listing = ", ".join(repr(m) for m in served) if served else "(could not list them)"
        return ModelNotFound(
            f"vLLM at {base_url} does not serve model {model!r}; it serves: {listing}. Use one of those names, "
            f"or restart vLLM with `--served-model-name {model}`.",
            backend="vllm",
            status=status,
        )
    if status == 404:
        return BackendResponseError(
            f"{base_url} answered 404 ({message}): is this a vLLM server? Check the base_url "
            "(it should be the server root, without /v1).",
            backend="vllm",
            status=status,
        )
    if status == 400 and _CONTEXT_PATTERNS.search(message):
        return ContextTooLong(
            f"The request does not fit the context window of {model!r} on vLLM at {base_url}: {message} "
            "Shorten the conversation, lower max_tokens, or restart vLLM with a larger --max-model-len.",
            backend="vllm",
            status=status,
        )
    if status in (401, 403):
        return BackendResponseError(
            f"vLLM at {base_url} refused the request ({status}: {message}). Pass the key the server was "
            "started with (`--api-key`) as api_key.",
            backend="vllm",
            status=status,
        )
    return BackendResponseError(f"vLLM at {base_url} answered {status}: {message}", backend="vllm", status=status)


def parse_sse_data(line: str) -> str | None:
    """The payload of one ``data:`` line of a server-sent event stream; None for comments, blanks, other fields."""
    if not line.startswith("data:"):
        return None
    payload = line[5:]
    return payload[1:] if payload.startswith(" ") else payload


def stop_from_completion(finish_reason: str | None, stop_reason: object, text: str, stops: Sequence[str]) -> str | None:
    """Which stop marker ended a completion, or None when the token budget ran out.

    vLLM names a matched stop *string* in ``stop_reason``; when a stop *token* from the model's generation
    config ended it, ``stop_reason`` is that token's id (or null for the primary end-of-sequence token) and
    the marker is only visible at the end of the text, which keeps special tokens here.
    """
    if finish_reason != "stop":
        return None
    if isinstance(stop_reason, str) and stop_reason:
        return stop_reason
    for marker in sorted(stops, key=len, reverse=True):
        if text.endswith(marker):
            return marker
    return None


@dataclass
class _PendingCall:
    name: str = ""
    arguments: str = ""


@dataclass
class ChatToNative:
    """Rebuild native Gemma 4 output text from the chat API's server-parsed stream deltas.

    vLLM's reasoning and tool parsers split the model's output into ``reasoning``, ``content`` and
    ``tool_calls``; the agent loop parses one format, so this writes them back the way the model wrote them:
    thinking in a ``<|channel>thought`` block, calls with :func:`format_tool_call`, then the hand-over marker.
    Calls are written once complete (the arguments arrive as JSON fragments).
    """

    _in_thought: bool = False
    _calls: dict[int, _PendingCall] = field(default_factory=dict)

    def feed(self, delta: Mapping[str, Any]) -> str:
        """Native text for one ``choices[0].delta``."""
        out: list[str] = []
        # vLLM renamed reasoning_content to reasoning; accept both so older servers work too.
        reasoning = delta.get("reasoning") or delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            if not self._in_thought:
                out.append(f"{CHANNEL_START}thought\n")
                self._in_thought = True
            out.append(reasoning)
        content = delta.get("content")
        if isinstance(content, str) and content:
            out.append(self._close_thought())
            out.append(content)
        for call in delta.get("tool_calls") or ():
            out.append(self._close_thought())
            pending = self._calls.setdefault(int(call.get("index", len(self._calls))), _PendingCall())
            function = call.get("function") or {}
            pending.name += function.get("name") or ""
            pending.arguments += function.get("arguments") or ""
        return "".join(out)

    def finish(self, finish_reason: str | None) -> tuple[str, str | None]:
        """The closing native text and the stop marker, given the chat API's ``finish_reason``."""
        out = [self._close_thought()]
        if self._calls:
            out.extend(self._format_call(self._calls[i]) for i in sorted(self._calls))
            if finish_reason == "length":  # the budget ran out inside a call: no hand-over to the runtime
                return "".join(out), None
            out.append(TOOL_RESPONSE_START)
            return "".join(out), TOOL_RESPONSE_START
        if finish_reason == "stop":
            out.append(TURN_END)
            return "".join(out), TURN_END
        return "".join(out), None

    def _close_thought(self) -> str:
        if not self._in_thought:
            return ""
        self._in_thought = False
        return CHANNEL_END

    @staticmethod
    def _format_call(call: _PendingCall) -> str:
        try:
            arguments = json.loads(call.arguments) if call.arguments.strip() else {}
            if not isinstance(arguments, dict):
                raise ValueError("arguments are not a JSON object")
            return format_tool_call(call.name, arguments)
        except ValueError:
            # Never invent a call: hand the loop's parser the server's text so it reports it to the model.
            return f"{TOOL_CALL_START}call:{call.name}{call.arguments}{TOOL_CALL_END}"
