"""The Gemma 4 chat and function-calling format: render prompts, parse output. Pure: no I/O.

Nothing here imports the rest of agentkit, so backends, the loop and tests can all build on it.
"""

from __future__ import annotations

from . import tokens
from .continuation import MALFORMED_CALL_HINT, hand_over, turn_suffix
from .flatten import flatten_schema
from .grammar import ToolCallGrammar, arguments_grammar, check_tool_choice, tool_call_grammar
from .parse import (
    ContentDelta,
    ParsedResponse,
    ParseErrorEvent,
    StreamEvent,
    StreamParser,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    parse_response,
)
from .prompt import Prompt, Segment
from .render import Declarations, SupportsOpenAITool, generation_prompt, render, render_prompt, render_tool_results
from .repair import DeclaredTools
from .sanitize import sanitize
from .schema import function_schema, model_schema, type_schema
from .tokens import CONTROL_TOKENS, STOP_MARKERS
from .values import ValueSyntaxError, format_tool_call, format_value, parse_value

__all__ = [
    "CONTROL_TOKENS",
    "MALFORMED_CALL_HINT",
    "STOP_MARKERS",
    "ContentDelta",
    "Declarations",
    "DeclaredTools",
    "ParseErrorEvent",
    "ParsedResponse",
    "Prompt",
    "Segment",
    "StreamEvent",
    "StreamParser",
    "SupportsOpenAITool",
    "TextDelta",
    "ThinkingDelta",
    "ToolCall",
    "ToolCallEvent",
    "ToolCallGrammar",
    "ValueSyntaxError",
    "arguments_grammar",
    "check_tool_choice",
    "flatten_schema",
    "format_tool_call",
    "format_value",
    "function_schema",
    "generation_prompt",
    "hand_over",
    "model_schema",
    "parse_response",
    "parse_value",
    "render",
    "render_prompt",
    "render_tool_results",
    "sanitize",
    "tokens",
    "tool_call_grammar",
    "turn_suffix",
    "type_schema",
]
