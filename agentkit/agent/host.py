"""The agent as host of its toolsets: its model for their sampling requests, its person for their questions.

An MCP server may ask the client's model to write a message (``sampling/createMessage``) or ask the user
for values (``elicitation/create``). Both are the agent's to grant, not the toolset's: the model is the
agent's backend, and making it say things on a server's behalf is a side effect, so each request passes the
agent's approval policy — and its ``ask`` callback — like a tool call with side effects. The toolset gets
this object through ``bind_host`` (:class:`~agentkit.toolsets.ToolsetHost`) and never the backend itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, cast

from agentkit import gemma4
from agentkit.agent.approval import ToolCallRequest
from agentkit.backends.base import BackendEvent, GenerationDone, GenerationRequest, RawDelta
from agentkit.errors import ToolError
from agentkit.messages import AssistantMessage, SystemMessage, TextPart, UserMessage
from agentkit.toolsets import InputRequest, SampledText, SamplingRequest

if TYPE_CHECKING:
    from agentkit.agent.loop import Agent

__all__ = ["AgentHost"]

_IDS = itertools.count(1)


class AgentHost:
    """:class:`~agentkit.toolsets.ToolsetHost` for one :class:`~agentkit.agent.Agent` (read live: a changed
    ``approval`` or ``ask`` applies to the next request)."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    @property
    def takes_media(self) -> bool:
        return bool(getattr(self._agent.backend.capabilities, "media", False))

    async def sample(self, request: SamplingRequest) -> SampledText:
        agent = self._agent
        name = f"{request.source}.sampling"
        await self._approve(
            name,
            {
                "messages": [_shown(m) for m in request.conversation],
                "max_tokens": request.max_tokens,
                **({"temperature": request.temperature} if request.temperature is not None else {}),
            },
            f"MCP server {request.source!r} asks the model ({agent.backend.model}) to write a message for it; "
            "what the model writes goes to the server",
        )
        sampling = agent.sampling.with_overrides(max_tokens=request.max_tokens, temperature=request.temperature)
        generation = GenerationRequest(sampling=sampling, conversation=request.conversation, enable_thinking=False)
        parser = gemma4.StreamParser(None)
        done: GenerationDone | None = None
        stream = cast(AsyncGenerator[BackendEvent, None], agent.backend.stream(generation))
        try:
            async with asyncio.timeout(request.timeout_s), contextlib.aclosing(stream) as events:
                async for ev in events:
                    if isinstance(ev, RawDelta):
                        parser.feed(ev.text)
                    else:
                        done = ev
        except TimeoutError:
            raise ToolError(f"the model did not finish the message within {request.timeout_s:g} s") from None
        parsed = parser.finish()
        text = parsed.content
        for stop in request.stop:
            if stop and stop in text:
                text = text[: text.index(stop)]
        truncated = done is not None and done.stop is None
        return SampledText(text=text.strip(), model=agent.backend.model, truncated=truncated)

    async def elicit(self, request: InputRequest) -> dict[str, Any] | None:
        ask = getattr(self._agent.ask, "elicit", None)
        if ask is None:
            raise ToolError(
                f"MCP server {request.source!r} asked the user for input ({request.message[:200]!r}), and no one "
                "can be asked here (no terminal or dialog: a batch run, or stdin is not a terminal)"
            )
        answer = ask(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return None if answer is None else dict(answer)

    async def _approve(self, name: str, arguments: dict[str, Any], description: str) -> None:
        """The agent's policy, then its person, as for a call with side effects; ToolError unless allowed."""
        request = ToolCallRequest(f"host-{next(_IDS)}", name, arguments, True, description)
        await self._agent._authorize(
            request,
            cannot_ask=f"{name} needs a person's approval (it makes the model write) and none can be asked",
            denied=f"the user denied {name}",
        )


def _shown(message: Any) -> dict[str, str]:
    """One message of a sampling request as the approval question shows it."""
    if isinstance(message, SystemMessage):
        content = message.content if isinstance(message.content, str) else "".join(p.text for p in message.content)
        return {"system": content}
    if isinstance(message, UserMessage):
        parts = message.content if not isinstance(message.content, str) else (TextPart(message.content),)
        text = "".join(p.text if isinstance(p, TextPart) else f"[{p.type}]" for p in parts)
        return {"user": text}
    if isinstance(message, AssistantMessage):
        return {"assistant": message.text}
    return {"other": str(message)}
