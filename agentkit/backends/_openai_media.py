"""Images, audio and video in OpenAI chat messages, for engines that take them on ``/v1/chat/completions``.

A prompt carries media the way people write it — ``{"type": "image", "image": b"..."}``, a file, base64 text,
a data or http(s) URL, or the OpenAI forms ``image_url`` / ``input_audio`` — and may leave a part without
data for the request's ``media`` list to fill, in order. An OpenAI-compatible server reads exactly three
forms (vLLM's ``chat_utils``: ``image_url``, ``input_audio``, ``video_url``), and bytes cannot travel in JSON,
so :func:`chat_messages` rewrites every media part into them: data URLs (or the caller's http(s) URL, which
the server fetches itself), audio as base64 with its format. Everything else in a message is left as it is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentkit.errors import UserError

from .base import MEDIA_PART_TYPES

__all__ = ["chat_messages"]

# Leading bytes of the formats servers decode, and the MIME type each gets in a data URL.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"fLaC", "audio/flac"),
    (b"OggS", "audio/ogg"),
    (b"ID3", "audio/mpeg"),
    (b"\xff\xfb", "audio/mpeg"),
)
_AUDIO_FORMATS = {"audio/wav": "wav", "audio/mpeg": "mp3", "audio/flac": "flac", "audio/ogg": "ogg"}
_KIND = {"image": "image", "image_url": "image", "audio": "audio", "input_audio": "audio", "video": "video"}


def chat_messages(messages: Sequence[Mapping[str, Any]], media: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The messages with every media part in the OpenAI form; parts without data take ``media`` in order."""
    pending = iter(media)
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(_is_media(p) for p in content):
            message = {**message, "content": [_part(p, pending) if _is_media(p) else p for p in content]}
        out.append(dict(message))
    return out


def _is_media(part: Any) -> bool:
    return isinstance(part, Mapping) and part.get("type") in MEDIA_PART_TYPES


def _part(part: Mapping[str, Any], pending: Iterator[Any]) -> dict[str, Any]:
    kind = _KIND[part["type"]]
    value = _value(part)
    if value is None:
        value = _entry(next(pending, None))
        if value is None:
            raise UserError(
                f"a {part['type']!r} part has no data and the request carries no more media; give the bytes in "
                "the part, e.g. {'type': 'image', 'image': b'...'}"
            )
    if kind == "audio":
        data = _bytes(value)
        fmt = (part.get("input_audio") or {}).get("format") if isinstance(part.get("input_audio"), Mapping) else None
        fmt = fmt or _AUDIO_FORMATS.get(_mime(data))
        if fmt is None:
            raise UserError("cannot tell the audio format (wav, mp3, flac or ogg expected); give it as format")
        return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode("ascii"), "format": fmt}}
    url = value if isinstance(value, str) and value.startswith(("http://", "https://", "data:")) else None
    if url is None:
        data = _bytes(value)
        url = f"data:{_mime(data, kind)};base64,{base64.b64encode(data).decode('ascii')}"
    key = "image_url" if kind == "image" else "video_url"
    return {"type": key, key: {"url": url}}


def _value(part: Mapping[str, Any]) -> Any:
    """The data a part carries, in any of the forms people write, or None."""
    nested = part.get(part["type"])
    if isinstance(nested, Mapping):  # {"image_url": {"url": ...}}, {"input_audio": {"data": ..., "format": ...}}
        nested = nested.get("url", nested.get("data"))
    for value in (nested, part.get("data"), part.get("url"), part.get("base64")):
        if value is not None:
            return value
    return Path(str(part["path"])) if part.get("path") is not None else None


def _entry(value: Any) -> Any:
    """The data of one ``request.media`` entry: the value itself, a content part, or a mapping's data/url/path."""
    if not isinstance(value, Mapping):
        return value
    if value.get("type") in MEDIA_PART_TYPES:  # given as a part: {"type": "image_url", "image_url": {...}}
        return _value(value)
    found = next((value[k] for k in ("data", "base64", "url", "image", "audio") if value.get(k) is not None), None)
    if found is None and value.get("path") is not None:
        found = Path(str(value["path"]))
    if found is None:
        raise UserError(f"media entry {sorted(value)} has none of the keys data, base64, url or path")
    return found


def _bytes(value: Any) -> bytes:
    """Bytes from bytes, a Path, base64 text or a base64 data URL; never a file name given as a string."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, Path):
        try:
            return value.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read media file {value}: {exc}") from exc
    if isinstance(value, str):
        text = value.partition(";base64,")[2] if value.startswith("data:") else value
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UserError(
                "media given as a string must be base64, a data: URL or an http(s) URL; pass bytes or a "
                "pathlib.Path for files"
            ) from exc
    raise UserError(f"cannot send media of type {type(value).__name__}; pass bytes or a pathlib.Path")


def _mime(data: bytes, kind: str = "audio") -> str:
    if data[:4] == b"RIFF" and data[8:12] in (b"WAVE", b"WEBP"):
        return "audio/wav" if data[8:12] == b"WAVE" else "image/webp"
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    # Servers decode images and video by their content; the type only has to name the kind.
    return {"image": "image/png", "video": "video/mp4"}.get(kind, "application/octet-stream")
