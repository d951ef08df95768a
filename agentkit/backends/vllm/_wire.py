"""What vLLM's OpenAI-compatible server says on the wire, turned into agentkit's terms.

Kept apart from :mod:`agentkit.backends.vllm` so the HTTP client reads as a short story: this module knows the
server's error messages, its server-sent events, and how the chat API's parsed deltas feed the shared native-text
writer (:mod:`agentkit.backends._native_text`). Everything here is pure (no I/O), so tests can feed it recorded
server output directly; how an error answer becomes an agentkit error is the shared table's
(:mod:`agentkit.backends._http`), given the patterns below.

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

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .._native_text import NativeTextWriter

__all__ = ["CONTEXT_ERROR", "MISSING_MODEL", "has_output", "native_delta", "parse_sse_data", "stop_from_completion"]

# "The model `x` does not exist." (404, serve/engine/protocol.py).
MISSING_MODEL = re.compile(r"model\b.*\bdoes not exist", re.IGNORECASE | re.DOTALL)
# An over-long prompt or a max_tokens above the context (400, renderers/params.py).
CONTEXT_ERROR = re.compile(
    r"maximum context length|max_model_len|context length|max_tokens must be at least 1, got 0|too long",
    re.IGNORECASE,
)


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


def has_output(chunk: Mapping[str, Any]) -> bool:
    """Whether an event carries output or ends the answer (a role-only first delta or a usage event does not)."""
    for choice in chunk.get("choices") or ():
        if choice.get("text") or choice.get("finish_reason"):
            return True
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning") or delta.get("reasoning_content") or delta.get("tool_calls"):
            return True
    return False


def native_delta(writer: NativeTextWriter, delta: Mapping[str, Any]) -> str:
    """Native text for one chat ``choices[0].delta``: reasoning, content and call fragments, in that order."""
    out: list[str] = []
    # vLLM renamed reasoning_content to reasoning; accept both so older servers work too.
    reasoning = delta.get("reasoning") or delta.get("reasoning_content")
    if isinstance(reasoning, str):
        out.append(writer.thinking(reasoning))
    content = delta.get("content")
    if isinstance(content, str):
        out.append(writer.content(content))
    for call in delta.get("tool_calls") or ():
        function = call.get("function") or {}
        index = call.get("index")
        out.append(
            writer.tool_call_delta(
                index if isinstance(index, int) else None, function.get("name") or "", function.get("arguments") or ""
            )
        )
    return "".join(out)
