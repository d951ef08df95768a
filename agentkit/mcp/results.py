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
import re
from typing import Any

import mcp.types as mt

from agentkit.errors import ToolError
from agentkit.messages import AudioPart, ImagePart

__all__ = ["resource_value", "result_value", "template_pattern"]

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


def resource_value(result: mt.ReadResourceResult, max_chars: int) -> Any:
    """A ``resources/read`` result as a tool response value: its text (cut at ``max_chars`` in all, saying so),
    its images as media parts, other binary contents by type and size (the model cannot read raw bytes)."""
    entries: list[dict[str, Any]] = []
    media: list[ImagePart | AudioPart] = []
    budget = max_chars
    for item in result.contents:
        entry: dict[str, Any] = {"uri": str(item.uri)}
        if item.mime_type:
            entry["mime_type"] = item.mime_type
        if isinstance(item, mt.TextResourceContents):
            text = item.text
            if len(text) > budget:
                text = text[:budget] + f"\n[... cut: {len(item.text):,} characters in all, {max_chars:,} are shown]"
            budget = max(0, budget - len(item.text))
            entry["text"] = text
        elif (item.mime_type or "").startswith("text/") and (decoded := _utf8(item.blob)) is not None:
            entry["text"] = decoded[:budget]
            budget = max(0, budget - len(decoded))
        elif (item.mime_type or "").startswith("image/"):
            media.append(ImagePart(_decoded(item.blob)))
            entry["image"] = "attached"
        elif item.mime_type in _AUDIO_FORMATS:
            media.append(AudioPart(_decoded(item.blob), format=_AUDIO_FORMATS[item.mime_type]))
            entry["audio"] = "attached"
        else:
            entry["bytes"] = _decoded_size(item.blob)
            entry["note"] = "binary content; not shown"
        entries.append(entry)
    value: Any = (
        entries[0]["text"]
        if len(entries) == 1 and set(entries[0]) <= {"uri", "mime_type", "text"}
        else {"contents": entries}
    )
    if not entries:
        value = "the resource is empty"
    return [value, *media] if media else value


_TEMPLATE_VAR = re.compile(r"\{([+#./;?&]?)([^}]*)\}")


def template_pattern(template: str) -> re.Pattern[str] | None:
    """A regular expression for the URIs an RFC 6570 template makes (a ``{name}`` is one path segment's worth,
    ``{+name}``/``{/name*}`` any text); None for a template that is not one, or allows any URI at all."""
    if len(template) > 1000:
        return None
    out, pos = [], 0
    for match in _TEMPLATE_VAR.finditer(template):
        out.append(re.escape(template[pos : match.start()]))
        op, names = match.group(1), match.group(2)
        if op == "?" or op == "&":
            out.append(r"(?:[?&][^#]*)?")
        elif op in ("+", "#") or names.endswith("*"):
            out.append(r"[^?#]*" if op != "#" else r"(?:#.*)?")
        elif op == "/":
            out.append(r"(?:/[^/?#]+)*")
        else:
            out.append(r"[^/?#]+")
        pos = match.end()
    out.append(re.escape(template[pos:]))
    if "{" in template and not template[: template.index("{")].strip():
        return None  # "{uri}" would match everything: no listing limits what the model may ask for
    try:
        return re.compile("".join(out))
    except re.error:
        return None


def _utf8(data: str) -> str | None:
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
