"""Images, audio and video in OpenAI chat messages, for engines that take them on ``/v1/chat/completions``.

An OpenAI-compatible server reads exactly three media forms (vLLM's ``chat_utils``: ``image_url``,
``input_audio``, ``video_url``), and bytes cannot travel in JSON, so :func:`openai_part` writes a typed part
(:mod:`agentkit.messages`) as one of them: always a data URL built from the part's bytes, never an http(s) URL
(the server would fetch it from its own network, wherever a session file or a tool pointed it), audio as base64
with its format. The vLLM backend hands it to ``request.chat_messages(media=...)``,
so user images and the images a tool returned (a tool message's parts, which vLLM gives the model's template
as it gives a user's) are written the same way. :func:`chat_messages` does the same for message dicts.
Reading the forms people write is :func:`agentkit.messages.media_part`'s job, not this module's.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from agentkit.errors import UserError
from agentkit.messages import (
    MEDIA_PART_TYPES,
    AudioPart,
    ImagePart,
    VideoPart,
    media_bytes,
    media_part,
    media_type,
)

__all__ = ["chat_messages", "openai_part"]

_AUDIO_FORMATS = {"audio/wav": "wav", "audio/mpeg": "mp3", "audio/flac": "flac", "audio/ogg": "ogg"}


def openai_part(part: ImagePart | AudioPart | VideoPart) -> dict[str, Any]:
    """One media part in the form an OpenAI-compatible server reads."""
    if isinstance(part, AudioPart):
        data = media_bytes(part)
        fmt = part.format or _AUDIO_FORMATS.get(media_type(data))
        if fmt is None:
            raise UserError("cannot tell the audio format (wav, mp3, flac or ogg expected); give it as format")
        return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode("ascii"), "format": fmt}}
    # Always a data URL made from checked bytes: an http(s) URL would have the server fetch it from its own
    # network (SSRF, when a session file or a tool chose it), and a data URL is decoded here first so only
    # base64 of known media types goes out. media_bytes refuses remote URLs.
    data = media_bytes(part)
    url = f"data:{media_type(data, part.type)};base64,{base64.b64encode(data).decode('ascii')}"
    key = "image_url" if isinstance(part, ImagePart) else "video_url"
    return {"type": key, key: {"url": url}}


def chat_messages(messages: Sequence[Mapping[str, Any]], media: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The message dicts with every media part in the OpenAI form; parts without data take ``media`` in order."""
    pending = iter(media)
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(_is_media(p) for p in content):
            message = {**message, "content": [_written(p, pending) if _is_media(p) else p for p in content]}
        out.append(dict(message))
    return out


def _is_media(part: Any) -> bool:
    return isinstance(part, Mapping) and part.get("type") in MEDIA_PART_TYPES


def _written(part: Mapping[str, Any], pending: Any) -> dict[str, Any]:
    typed = media_part(part)
    if typed.data is None and typed.url is None and typed.path is None:
        entry = next(pending, None)
        if entry is not None:
            filled = media_part(entry, typed.type)
            fmt = typed.format if isinstance(typed, AudioPart) else None
            typed = AudioPart(filled.data, filled.url, filled.path, fmt) if typed.type == "audio" else filled
    return openai_part(typed)
