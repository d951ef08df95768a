"""The protocol package's promises: the public names others build on, and purity (no rest of agentkit)."""

from __future__ import annotations

import ast
from pathlib import Path

import agentkit.gemma4 as gemma4

REQUIRED = {
    "render", "render_prompt", "render_tool_results", "generation_prompt", "parse_response", "ParsedResponse",
    "ToolCall", "StreamParser", "ThinkingDelta", "ContentDelta", "ToolCallEvent", "ParseErrorEvent",
    "StreamEvent", "format_value", "parse_value", "format_tool_call", "function_schema", "model_schema",
    "sanitize", "Prompt", "Segment", "CONTROL_TOKENS", "STOP_MARKERS", "tokens",
}  # fmt: skip


def test_public_names() -> None:
    assert set(gemma4.__all__) >= REQUIRED
    for name in gemma4.__all__:
        assert hasattr(gemma4, name), name


def test_imports_nothing_from_the_rest_of_agentkit_and_no_io_modules() -> None:
    forbidden_io = {"os", "io", "socket", "subprocess", "shutil", "urllib", "http", "asyncio", "httpx"}
    for path in Path(gemma4.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith("agentkit"), f"{path.name} imports {name}"
                assert name.split(".")[0] not in forbidden_io, f"{path.name} imports {name}"
