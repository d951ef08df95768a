"""agentkit: agents on Gemma 4 with native function calling.

The public surface is this module's ``__all__``; everything else is reached through the subpackages
``agentkit.gemma4`` (the protocol), ``agentkit.backends``, ``agentkit.tools``, ``agentkit.events`` and
``agentkit.testing``.
"""

from __future__ import annotations

from agentkit.agent import Agent, Approval, RunResult, RunTimings, ToolCallRequest, allow_all, default_policy
from agentkit.backends.base import Backend, SamplingParams, Usage
from agentkit.backends.registry import backend_from_url
from agentkit.errors import AgentkitError
from agentkit.sessions import Session, SessionInfo, SessionStore
from agentkit.tools.runtime import Tool, tool
from agentkit.toolsets import Toolset

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentkitError",
    "Approval",
    "Backend",
    "RunResult",
    "RunTimings",
    "SamplingParams",
    "Session",
    "SessionInfo",
    "SessionStore",
    "Tool",
    "ToolCallRequest",
    "Toolset",
    "Usage",
    "__version__",
    "allow_all",
    "backend_from_url",
    "default_policy",
    "tool",
]
