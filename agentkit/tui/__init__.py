"""The agentkit terminal assistant (``agentkit chat``), built with Textual."""

from __future__ import annotations

from .app import AgentkitApp

__all__ = ["AgentkitApp"]
