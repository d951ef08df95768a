"""The Gemma 4 chat and function-calling format: render prompts, parse output. Pure: no I/O."""

from __future__ import annotations

from .prompt import Prompt, Segment
from .sanitize import sanitize
from .tokens import CONTROL_TOKENS, STOP_MARKERS

__all__ = ["CONTROL_TOKENS", "STOP_MARKERS", "Prompt", "Segment", "sanitize"]
