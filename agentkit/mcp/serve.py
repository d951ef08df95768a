"""agentkit's tools served over MCP, so any MCP client (an IDE, another agent) can use them.

``agentkit mcp serve --tools python,files --workspace DIR`` runs this over stdio. Each tool keeps its
declaration, its validation and its confinement: the sandboxed Python and the workspace-bound file tools
run exactly as they do for an agentkit agent. Tools with side effects are announced without
``readOnlyHint`` (and with ``destructiveHint`` for writers), so a careful client asks its user first.
Errors a tool reports (bad arguments, a path outside the workspace) go back as ``isError`` results.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError as MCPToolError
from mcp.server.mcpserver.tools import Tool as ServedTool
from mcp.types import ToolAnnotations

from agentkit import __version__
from agentkit.errors import AgentkitError
from agentkit.tools.runtime import Tool, to_response_value

__all__ = ["build_server"]


def build_server(tools: Sequence[Tool], *, name: str = "agentkit") -> MCPServer:
    """An SDK ``MCPServer`` offering ``tools``; ``.run()`` serves it on stdio."""
    served = []
    for t in tools:
        spec = ServedTool.from_function(
            _handler(t),
            name=t.name,
            description=t.description,
            annotations=ToolAnnotations(read_only_hint=not t.side_effects, destructive_hint=t.side_effects),
            structured_output=False,
        )
        # Advertise agentkit's own declaration: it carries the per-parameter descriptions from the docstrings,
        # which the SDK's signature walk does not read. The arguments are still checked by the tool itself.
        served.append(spec.model_copy(update={"parameters": t.parameters}))
    return MCPServer(name, version=__version__, tools=served)


def _handler(t: Tool) -> Any:
    """An async function with ``t``'s signature (the SDK builds the schema from it) that runs ``t`` fully."""

    @functools.wraps(t.fn)
    async def run(**arguments: Any) -> str:
        try:
            value = to_response_value(await t.acall(arguments))
        except AgentkitError as exc:
            raise MCPToolError(str(exc)) from exc
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    run.__annotations__ = {**getattr(t.fn, "__annotations__", {}), "return": str}
    return run
