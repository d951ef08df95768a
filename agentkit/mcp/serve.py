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
from mcp.server.mcpserver.exceptions import ToolError as MCPToolError
from mcp.server.mcpserver.tools import Tool as ServedTool
from mcp.types import (
    AudioContent,
    BlobResourceContents,
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
    async def run(**arguments: Any) -> str | list[ContentBlock]:
        try:
            value, media = to_response(await t.acall(arguments))
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            if not media:
                return text
            # Images and audio a tool returned go back as MCP image/audio blocks, after its text.
            return [*([TextContent(type="text", text=text)] if text else []), *map(_block, media)]
        except AgentkitError as exc:
            raise MCPToolError(str(exc)) from exc

    run.__annotations__ = {**getattr(t.fn, "__annotations__", {}), "return": str | list[ContentBlock]}
    return run


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
