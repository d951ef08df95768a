"""The Gemma 4 chat and function-calling format: render prompts, parse output. Pure: no I/O.

Nothing here imports the rest of agentkit, so backends, the loop and tests can all build on it.
"""

from __future__ import annotations

from . import tokens
from .prompt import Prompt, Segment
from .render import SupportsOpenAITool, generation_prompt, render, render_prompt, render_tool_results
from .sanitize import sanitize
from .schema import function_schema, model_schema
from .tokens import CONTROL_TOKENS, STOP_MARKERS
from .values import ValueSyntaxError, format_tool_call, format_value, parse_value

__all__ = [
    "CONTROL_TOKENS",
    "STOP_MARKERS",
    "Prompt",
    "Segment",
    "SupportsOpenAITool",
    "ValueSyntaxError",
    "format_tool_call",
    "format_value",
    "function_schema",
    "generation_prompt",
    "model_schema",
    "parse_value",
    "render",
    "render_prompt",
    "render_tool_results",
    "sanitize",
    "tokens",
]
