"""What a server may ask of agentkit's MCP client: sampling, elicitation and roots, each mapped and bounded.

- ``sampling/createMessage``: the server's system prompt and messages become a conversation for the agent's
  own model (:class:`~agentkit.toolsets.ToolsetHost`, handed over by the agent), with the server's
  ``maxTokens`` capped by the client's limit and its temperature and stop sequences kept. Images go to a
  model that reads them and are described to one that does not; audio is described. One request at a time
  per server, each within a timeout; a refusal (denied, no one to ask, a timeout, a backend error) is a
  JSON-RPC error whose message says why, so the server's tool fails with that reason instead of hanging.
- ``elicitation/create``: the person is asked through the agent's ``ask`` channel; the answer is checked
  against the server's schema before it is sent. No one to ask is a clear error, never a wait.
- ``roots/list``: the folders the client offers (the agent's workspace), as ``file://`` URIs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mcp.types as mt

from agentkit._jsonschema import errors_of, local_validator
from agentkit.errors import AgentkitError
from agentkit.messages import AssistantMessage, ImagePart, Message, SystemMessage, TextPart, UserMessage
from agentkit.toolsets import InputRequest, SamplingRequest, ToolsetHost

__all__ = ["Sampler", "elicit", "roots_result", "sampling_conversation"]

MAX_SAMPLING_MESSAGES = 200  # of one request; a conversation longer than that is not a sub-task
MAX_SAMPLING_CHARS = 400_000  # of text in one request, about 100k tokens


class RequestRefused(Exception):
    """A server's request that is refused; the message is what the server is told."""


def sampling_conversation(params: mt.CreateMessageRequestParams, *, takes_media: bool) -> tuple[Message, ...]:
    """The server's system prompt and messages as a conversation for the agent's model."""
    if len(params.messages) > MAX_SAMPLING_MESSAGES:
        raise RequestRefused(f"the request has {len(params.messages)} messages; at most {MAX_SAMPLING_MESSAGES}")
    out: list[Message] = []
    if params.system_prompt:
        out.append(SystemMessage(params.system_prompt))
    size = len(params.system_prompt or "")
    for message in params.messages:
        blocks = message.content if isinstance(message.content, list) else [message.content]
        parts: list[TextPart | ImagePart] = []
        for block in blocks:
            if isinstance(block, mt.TextContent):
                parts.append(TextPart(block.text))
                size += len(block.text)
            elif isinstance(block, mt.ImageContent) and takes_media and message.role == "user":
                parts.append(ImagePart(_decoded(block.data)))
            elif isinstance(block, mt.ImageContent | mt.AudioContent):
                kind = "image" if isinstance(block, mt.ImageContent) else "audio"
                parts.append(TextPart(f"[{kind} ({block.mime_type}) left out: this model does not take it here]"))
            else:  # tool use and tool results (sampling with tools) are not offered: the capability says so
                raise RequestRefused(f"agentkit does not take {getattr(block, 'type', type(block).__name__)} content")
        if size > MAX_SAMPLING_CHARS:
            raise RequestRefused(f"the request has more than {MAX_SAMPLING_CHARS:,} characters of text")
        if message.role == "assistant":
            out.append(AssistantMessage(tuple(p for p in parts if isinstance(p, TextPart))))
        elif all(isinstance(p, TextPart) for p in parts):
            out.append(UserMessage("".join(p.text for p in parts if isinstance(p, TextPart))))
        else:
            out.append(UserMessage(tuple(parts)))
    if not any(isinstance(m, UserMessage) for m in out):
        raise RequestRefused("the request has no user message for the model to answer")
    return tuple(out)


class Sampler:
    """Answers one server's ``sampling/createMessage`` through the agent's model: one at a time, bounded."""

    def __init__(self, source: str, max_tokens: int, timeout_s: float | None) -> None:
        self.source = source
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.host: ToolsetHost | None = None
        self._one = asyncio.Lock()  # one generation per server: a server looping on requests waits its turn

    async def __call__(
        self, context: Any, params: mt.CreateMessageRequestParams
    ) -> mt.CreateMessageResult | mt.ErrorData:
        host = self.host
        if host is None:
            return _error("no model is attached to this MCP client (the server is not run by an agent)")
        try:
            conversation = sampling_conversation(params, takes_media=host.takes_media)
            request = SamplingRequest(
                source=self.source,
                conversation=conversation,
                max_tokens=max(1, min(params.max_tokens, self.max_tokens)),
                temperature=params.temperature,
                stop=tuple(params.stop_sequences or ()),
                timeout_s=self.timeout_s,
            )
            async with self._one:
                answer = await host.sample(request)
        except RequestRefused as exc:
            return _error(f"sampling refused: {exc}")
        except AgentkitError as exc:
            return _error(f"sampling refused: {exc}")
        return mt.CreateMessageResult(
            role="assistant",
            content=mt.TextContent(type="text", text=answer.text),
            model=answer.model,
            stop_reason="maxTokens" if answer.truncated else "endTurn",
        )


async def elicit(
    host: ToolsetHost | None, source: str, params: mt.ElicitRequestParams, timeout_s: float | None
) -> mt.ElicitResult | mt.ErrorData:
    """Ask the person for what the server wants; their answer checked against its schema."""
    if not isinstance(params, mt.ElicitRequestFormParams):
        return _error("agentkit answers form elicitation only (no URL mode): open the server's page yourself")
    if host is None:
        return _error("no one can be asked: this MCP client is not run by an agent")
    schema = params.requested_schema
    try:
        answer = await asyncio.wait_for(host.elicit(InputRequest(source, params.message, schema)), timeout_s)
    except TimeoutError:
        return mt.ElicitResult(action="cancel")
    except AgentkitError as exc:
        return _error(str(exc))
    if answer is None:
        return mt.ElicitResult(action="decline")
    problems = errors_of(local_validator(dict(schema)), answer)
    if problems:
        reasons = "; ".join(f"{'.'.join(map(str, e.absolute_path)) or 'answer'}: {e.message}" for e in problems)
        return _error(f"the answer does not fit the server's form: {reasons}")
    return mt.ElicitResult(action="accept", content=answer)


def roots_result(roots: Sequence[Path]) -> mt.ListRootsResult:
    return mt.ListRootsResult(roots=[mt.Root(uri=p.as_uri(), name=p.name or str(p)) for p in roots])  # type: ignore[arg-type]


def _error(message: str) -> mt.ErrorData:
    return mt.ErrorData(code=mt.INVALID_REQUEST, message=message)


def _decoded(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestRefused(f"an image is not base64: {exc}") from exc
