"""An engine that answers every request by echoing the last user message (a third party's agentkit backend).

It is written only against agentkit's public backend API: the ``from_url`` factory its entry point names,
``split_server_url`` for its URL, ``RawDelta``/``GenerationDone`` for its stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agentkit.backends import (
    BackendEvent,
    Capabilities,
    GenerationDone,
    GenerationRequest,
    RawDelta,
    Usage,
    split_server_url,
)


class EchoBackend:
    def __init__(self, model: str, host: str) -> None:
        self._model = model
        self.host = host

    @property
    def name(self) -> str:
        return "echo"

    @property
    def model(self) -> str:
        return self._model

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[BackendEvent]:
        users = [m for m in request.messages if m.get("role") == "user"]
        heard = users[-1]["content"] if users else ""
        for piece in (f"echo from {self.host} ({self._model}): ", str(heard), "<turn|>"):
            yield RawDelta(piece)
        yield GenerationDone(stop="<turn|>", usage=Usage(prompt_tokens=1, completion_tokens=3))

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def from_url(url: str, **options: Any) -> EchoBackend:
    host, model = split_server_url(url, default_port=9999)
    return EchoBackend(model, host, **options)
