"""Widgets of the agentkit TUI, one concern a module."""

from __future__ import annotations

from .chat import AgentTurn, InfoMessage, ThinkingBlock, UserMessage
from .dialogs import ApprovalScreen, ConfirmScreen, PromptScreen
from .prompt import CommandMenu, PromptArea
from .sidebar import SessionItem, SessionsSidebar
from .status import StatusLine
from .tool_card import ToolCard

__all__ = [
    "AgentTurn",
    "ApprovalScreen",
    "CommandMenu",
    "ConfirmScreen",
    "InfoMessage",
    "PromptArea",
    "PromptScreen",
    "SessionItem",
    "SessionsSidebar",
    "StatusLine",
    "ThinkingBlock",
    "ToolCard",
    "UserMessage",
]
