"""agentkit: agents on Gemma 4 with native function calling.

The public surface is this module's ``__all__``; everything else is reached through the subpackages
``agentkit.gemma4`` (the protocol), ``agentkit.backends``, ``agentkit.tools``, ``agentkit.events`` and
``agentkit.testing``.

Names are imported on first use (PEP 562): ``import agentkit`` alone loads nothing heavy, so the command line
(``agentkit --help``) and programs that need one corner of the package do not pay for httpx, pydantic and
every built-in tool.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentkit.agent import Agent, Approval, ToolCallRequest, allow_all, default_policy
    from agentkit.backends.base import Backend, SamplingParams, Usage
    from agentkit.backends.registry import backend_from_url, register_backend
    from agentkit.errors import AgentkitError
    from agentkit.events import RunResult, RunTimings, ToolCallCounts
    from agentkit.messages import Audio, Image
    from agentkit.options import AgentOptions
    from agentkit.sessions import Session, SessionInfo, SessionStore
    from agentkit.tools.runtime import Tool, tool
    from agentkit.toolsets import Toolset

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "Agent": "agentkit.agent",
    "Approval": "agentkit.agent",
    "ToolCallRequest": "agentkit.agent",
    "allow_all": "agentkit.agent",
    "default_policy": "agentkit.agent",
    "RunResult": "agentkit.events",
    "RunTimings": "agentkit.events",
    "ToolCallCounts": "agentkit.events",
    "Backend": "agentkit.backends.base",
    "SamplingParams": "agentkit.backends.base",
    "Usage": "agentkit.backends.base",
    "backend_from_url": "agentkit.backends.registry",
    "register_backend": "agentkit.backends.registry",
    "AgentkitError": "agentkit.errors",
    "AgentOptions": "agentkit.options",
    "Audio": "agentkit.messages",
    "Image": "agentkit.messages",
    "Session": "agentkit.sessions",
    "SessionInfo": "agentkit.sessions",
    "SessionStore": "agentkit.sessions",
    "Tool": "agentkit.tools.runtime",
    "tool": "agentkit.tools.runtime",
    "Toolset": "agentkit.toolsets",
}

__all__ = [
    "Agent",
    "AgentOptions",
    "AgentkitError",
    "Approval",
    "Audio",
    "Backend",
    "Image",
    "RunResult",
    "RunTimings",
    "SamplingParams",
    "Session",
    "SessionInfo",
    "SessionStore",
    "Tool",
    "ToolCallCounts",
    "ToolCallRequest",
    "Toolset",
    "Usage",
    "__version__",
    "allow_all",
    "backend_from_url",
    "default_policy",
    "register_backend",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
