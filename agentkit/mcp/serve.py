"""agentkit's tools served over MCP, so any MCP client (an IDE, another agent) can use them.

``agentkit mcp serve --tools python,files --workspace DIR`` runs this over stdio. Each tool keeps its
declaration, its validation and its confinement: the sandboxed Python and the workspace-bound file tools
run exactly as they do for an agentkit agent. Tools with side effects are announced without
``readOnlyHint`` (and with ``destructiveHint`` for writers), so a careful client asks its user first.
Errors a tool reports (bad arguments, a path outside the workspace) go back as ``isError`` results, and the
images and audio a tool returns (:func:`agentkit.Image`) as MCP image and audio blocks.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Sequence
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import UnexpectedToolError
from mcp.server.mcpserver.tools import Tool as ServedTool
from mcp.types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    TextContent,
    ToolAnnotations,
)

from agentkit import __version__
from agentkit.errors import AgentkitError
from agentkit.messages import AudioPart, ImagePart, VideoPart, media_bytes, media_type
from agentkit.tools.runtime import Tool, to_response

__all__ = ["build_server"]


class _ServedTool(ServedTool):
    """An agentkit tool as the SDK serves it, except that the arguments go to the tool as they came.

    The SDK would first check them against a pydantic model of the handler's signature and answer a
    mistake with pydantic's raw report (its internal model name, a link to pydantic's docs); the client's
    model is better served by the tool's own message, the one an agentkit agent gets for the same mistake.
    """

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> CallToolResult:
        try:
            result: CallToolResult = await self.fn(arguments)
        except Exception as exc:  # a crash, not a reported error: its text stays here, as the SDK does
            raise UnexpectedToolError(f"Error executing tool {self.name}") from exc
        return result


def build_server(tools: Sequence[Tool], *, name: str = "agentkit") -> MCPServer:
    """An SDK ``MCPServer`` offering ``tools``; ``.run()`` serves it on stdio."""
    served: list[ServedTool] = []
    for t in tools:
        spec = _ServedTool.from_function(
            _signature_of(t),
            name=t.name,
            description=t.description,
            annotations=ToolAnnotations(read_only_hint=not t.side_effects, destructive_hint=t.side_effects),
            structured_output=False,
        )
        # Advertise agentkit's own declaration: it carries the per-parameter descriptions from the docstrings,
        # which the SDK's signature walk does not read. The arguments are checked by the tool itself.
        served.append(spec.model_copy(update={"fn": functools.partial(_run, t), "parameters": t.parameters}))
    return MCPServer(name, version=__version__, tools=served)


def _signature_of(t: Tool) -> Any:
    """A function with ``t``'s signature, for the SDK's registration (it is never called)."""

    @functools.wraps(t.fn)
    async def run(**arguments: Any) -> str:
        raise NotImplementedError

    run.__annotations__ = {**getattr(t.fn, "__annotations__", {}), "return": str}
    return run


async def _run(t: Tool, arguments: dict[str, Any]) -> CallToolResult:
    """Validate and run ``t`` fully; its errors (bad arguments, a path outside the workspace) as ``isError``."""
    try:
        value, media = to_response(await t.acall(arguments))
    except AgentkitError as exc:
        return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    # Images and audio a tool returned go back as MCP image/audio blocks, after its text.
    blocks: list[ContentBlock] = [TextContent(type="text", text=text)] if text or not media else []
    return CallToolResult(content=[*blocks, *map(_block, media)])


def _block(part: ImagePart | AudioPart | VideoPart) -> ContentBlock:
    """One media part as the MCP block a client reads (MCP has no video block: it goes as an embedded blob)."""
    data = media_bytes(part)
    encoded = base64.b64encode(data).decode("ascii")
    mime = media_type(data, part.type)
    if isinstance(part, ImagePart):
        return ImageContent(type="image", data=encoded, mime_type=mime)
    if isinstance(part, AudioPart):
        return AudioContent(type="audio", data=encoded, mime_type=mime)
    blob = BlobResourceContents(uri="agentkit://video", mime_type=mime, blob=encoded)
    return EmbeddedResource(type="resource", resource=blob)
