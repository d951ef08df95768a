"""MCP tool results as native Gemma 4 tool responses.

A ``CallToolResult`` holds a list of content blocks (text, image, audio, embedded resource, resource link)
and optionally ``structuredContent``. Gemma's tool response is one value (a string or a mapping), so:

- a result that is only text stays a string (what the model reads best);
- otherwise a mapping with ``text``, ``structured``, ``resources``, ``links``, ``images``, ``audio`` — only the
  keys that have something. Text that merely repeats ``structuredContent`` as JSON (the SDK writes both) is
  dropped, so the model does not read the same data twice;
- images and audio cannot ride in a native tool response (Gemma 4's media placeholders belong to user
  turns), so the model is told what came back (type, size) instead of receiving bytes it cannot read;
- ``isError`` results raise :class:`~agentkit.errors.ToolError`, which the loop sends back as any tool error.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import mcp.types as mt

from agentkit.errors import ToolError

__all__ = ["result_value"]


def result_value(tool_name: str, result: mt.CallToolResult) -> Any:
    """The response value for ``result``, or ``ToolError`` when the server flagged it as an error."""
    texts: list[str] = []
    out: dict[str, Any] = {}
    for block in result.content:
        if isinstance(block, mt.TextContent):
            texts.append(block.text)
        elif isinstance(block, mt.ImageContent | mt.AudioContent):
            kind = "images" if isinstance(block, mt.ImageContent) else "audio"
            out.setdefault(kind, []).append(
                {
                    "mime_type": block.mime_type,
                    "bytes": _decoded_size(block.data),
                    "note": f"{kind.rstrip('s')} received; it cannot be shown to you in a tool response",
                }
            )
        elif isinstance(block, mt.EmbeddedResource):
            res = block.resource
            entry: dict[str, Any] = {"uri": str(res.uri)}
            if res.mime_type:
                entry["mime_type"] = res.mime_type
            if isinstance(res, mt.TextResourceContents):
                entry["text"] = res.text
            else:
                entry["bytes"] = _decoded_size(res.blob)
            out.setdefault("resources", []).append(entry)
        elif isinstance(block, mt.ResourceLink):
            link: dict[str, Any] = {"uri": str(block.uri), "name": block.name}
            for key, value in (("mime_type", block.mime_type), ("description", block.description)):
                if value:
                    link[key] = value
            out.setdefault("links", []).append(link)
    structured = result.structured_content
    if structured is not None and texts:
        if isinstance(structured, dict) and set(structured) == {"result"} and structured["result"] == "\n".join(texts):
            structured = None  # a plain string the SDK also wrapped as {"result": ...}
        elif _repeats(texts, structured):
            texts = []
    if result.is_error:
        message = "\n".join(texts) or json.dumps(structured or {}) or "the tool reported an error"
        raise ToolError(f"{tool_name} reported an error: {message}")
    if structured is not None:
        out = {"structured": structured, **out}
    if texts:
        if not out:
            return "\n".join(texts)
        out = {"text": "\n".join(texts), **out}
    return out or "done (no content)"


def _repeats(texts: list[str], structured: Any) -> bool:
    """Whether the text blocks are just ``structured`` (or its ``result`` wrapper) written as JSON."""
    try:
        decoded = [json.loads(t) for t in texts]
    except ValueError:
        return False
    candidates = [structured]
    if isinstance(structured, dict) and set(structured) == {"result"}:
        candidates.append(structured["result"])
    value = decoded[0] if len(decoded) == 1 else decoded
    return value in candidates


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return len(data)
