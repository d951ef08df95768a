"""The agent: its surface (:mod:`.loop`), a turn step by step (:mod:`.turn`), running and approving tool calls
(:mod:`.approval`), and the cached rendering of earlier turns (:mod:`.prompt_cache`).
Everything once importable from ``agentkit.agent`` still is.
"""

from __future__ import annotations

from typing import Any

from agentkit.agent.approval import (
    Approval,
    ApprovalPolicy,
    AskCallback,
    ToolCallRequest,
    ToolExecution,
    allow_all,
    default_policy,
)
from agentkit.agent.loop import Agent
from agentkit.agent.prompt_cache import PromptCache
from agentkit.events import RunResult, RunTimings, ToolCallCounts

__all__ = [
    "Agent",
    "Approval",
    "ApprovalPolicy",
    "AskCallback",
    "PromptCache",
    "RunResult",
    "RunTimings",
    "ToolCallCounts",
    "ToolCallRequest",
    "ToolExecution",
    "allow_all",
    "default_policy",
]


def __getattr__(name: str) -> Any:
    # Names the single-module agent.py had at its top level (its imports, its helpers) stay reachable here.
    from agentkit.agent import approval, loop, turn

    for module in (loop, turn, approval):
        if name in vars(module):
            return vars(module)[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
