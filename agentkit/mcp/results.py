"""MCP tool results as native Gemma 4 tool responses.

A ``CallToolResult`` holds a list of content blocks (text, image, audio, embedded resource, resource link)
and optionally ``structuredContent``. Gemma's tool response is one value (a string or a mapping), so:

- a result that is only text stays a string (what the model reads best);
- otherwise a mapping with ``text``, ``structured``, ``resources``, ``links``, ``images``, ``audio`` — only the
  keys that have something. Text that merely repeats ``structuredContent`` as JSON (the SDK writes both) is
  dropped, so the model does not read the same data twice;
- images and audio come back as typed media parts beside that value (``[value, ImagePart(...), ...]``): the
  agent sends them to the model after the response, where Gemma 4's template puts a tool message's media
  (:class:`~agentkit.messages.ToolResult`), or, on a backend that takes no media, tells the model what came
  back (type, size);
- ``isError`` results raise :class:`~agentkit.errors.ToolError`, which the loop sends back as any tool error.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import mcp.types as mt

from agentkit.errors import ToolError
from agentkit.messages import AudioPart, ImagePart

__all__ = ["result_value"]

_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
}


def result_value(tool_name: str, result: mt.CallToolResult) -> Any:
    """The response value for ``result`` (with its images and audio: ``[value, *media]``), or ``ToolError``
    when the server flagged it as an error."""
    texts: list[str] = []
    out: dict[str, Any] = {}
    media: list[ImagePart | AudioPart] = []
    for block in result.content:
        if isinstance(block, mt.TextContent):
            texts.append(block.text)
        elif isinstance(block, mt.ImageContent):
            media.append(ImagePart(_decoded(block.data)))
        elif isinstance(block, mt.AudioContent):
            media.append(AudioPart(_decoded(block.data), format=_AUDIO_FORMATS.get(block.mime_type)))
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
            for key, field in (("mime_type", block.mime_type), ("description", block.description)):
                if field:
                    link[key] = field
            out.setdefault("links", []).append(link)
    structured = result.structured_content
    if structured is not None and _mirrors(structured, result.content, texts):
        structured = None
    elif structured is not None and texts and _repeats(texts, structured):
        texts = []
    if result.is_error:
        message = "\n".join(texts) or json.dumps(structured or {}) or "the tool reported an error"
        raise ToolError(f"{tool_name} reported an error: {message}")
    if structured is not None:
        out = {"structured": structured, **out}
    value: Any
    if texts:
        value = "\n".join(texts) if not out else {"text": "\n".join(texts), **out}
    else:
        value = out or ("" if media else "done (no content)")
    return [value, *media] if media else value


def _mirrors(structured: Any, blocks: list[mt.ContentBlock], texts: list[str]) -> bool:
    """Whether ``structured`` only restates the content blocks: their text under one key (the Python SDK's
    ``{"result": text}``, the filesystem server's ``{"content": text}``), or the blocks themselves (the
    filesystem server's ``{"content": [{"type": "image", "data": ...}]}``, whose base64 would otherwise
    reach the model as text, beside the image it already gets)."""
    inner = next(iter(structured.values())) if isinstance(structured, dict) and len(structured) == 1 else None
    if texts and inner == "\n".join(texts):
        return True
    dumped = [b.model_dump(by_alias=True, exclude_none=True, mode="json") for b in blocks]
    return bool(dumped) and any(_same_blocks(c, dumped) for c in (structured, inner))


def _same_blocks(candidate: Any, dumped: list[dict[str, Any]]) -> bool:
    if not isinstance(candidate, list) or len(candidate) != len(dumped):
        return False
    keys = ("type", "text", "data", "uri", "resource")
    return all(
        isinstance(item, dict) and all(item.get(k) == block.get(k) for k in keys)
        for item, block in zip(candidate, dumped, strict=True)
    )


def _repeats(texts: list[str], structured: Any) -> bool:
    """Whether the text blocks say nothing ``structured`` does not: ``structured`` written as JSON (what the
    spec asks servers to add), the value inside a one-key wrapper written as JSON (the memory server's
    ``{"entities": [...]}`` beside the bare list), or one of its top-level strings (``{"success": true,
    "message": text}``)."""
    joined = "\n".join(texts)
    if isinstance(structured, dict) and joined in structured.values():
        return True
    try:
        decoded = [json.loads(t) for t in texts]
    except ValueError:
        return False
    candidates = [structured]
    if isinstance(structured, dict) and len(structured) == 1:
        candidates.append(next(iter(structured.values())))
    value = decoded[0] if len(decoded) == 1 else decoded
    return value in candidates


def _decoded(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ToolError(f"the MCP server sent media that is not base64: {exc}") from exc


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return len(data)
