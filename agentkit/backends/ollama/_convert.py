"""Translation between agentkit's request/stream shapes and Ollama's ``/api/chat`` JSON.

Pure, kept apart from the HTTP code in :mod:`agentkit.backends.ollama` so it can be read and tested alone:
:func:`chat_body` turns a :class:`~agentkit.backends.base.GenerationRequest` (OpenAI-style messages, tool
declarations, sampling) into the request body Ollama's ``ChatHandler`` decodes (``api.ChatRequest`` /
``api.Message`` in ollama/ollama ``api/types.go``). The way back — the parsed pieces Ollama streams, written as
native Gemma 4 text — is the writer every chat-API engine shares (:mod:`agentkit.backends._native_text`).

Untrusted text: Ollama renders the prompt as *text* and tokenizes it with special tokens recognized (its
renderer writes ``<bos>`` and ``<|turn>`` as text for the tokenizer to turn into tokens,
``model/renderers/gemma4.go:34,49``), so a literal ``<|tool_call>`` in a tool result or web page would become
the real token and forge a call. The messages and tools are therefore passed through
:func:`agentkit.gemma4.sanitize.neutralize_messages` / :func:`~agentkit.gemma4.sanitize.neutralize_tools`,
the one neutralization every engine that renders for itself gets (the vLLM chat path too), and text joined
here from several parts is sanitized again as a whole.

Ollama's message model is narrower than the native format in two places, and both are handled here:
tool results are strings only (its Gemma 4 renderer always writes ``response:NAME{value:<|"|>…<|"|>}``,
``model/renderers/gemma4.go`` ``formatToolResponseBlock``), so mapping results are sent as JSON text; and
images/audio travel as base64 in the message's ``images`` list (Ollama sniffs the bytes to tell audio from
images, ``llm/media.go`` ``DetectMediaKind``). That holds for a tool message too: the images a tool returned go
in its ``images``, and Ollama's Gemma 4 renderer writes them into that tool's response as ``[img-N]`` tags
(``model/renderers/gemma4.go`` ``renderToolResponseContent``) that the runner swaps for the image.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from agentkit.errors import UserError
from agentkit.gemma4.sanitize import neutralize, neutralize_messages, neutralize_tools, sanitize
from agentkit.messages import is_remote, media_bytes, media_part

from ..base import GenerationRequest

__all__ = ["chat_body", "media_base64", "neutralize", "ollama_messages", "sampling_options"]

_MEDIA_PART_TYPES = frozenset({"image", "image_url", "audio", "input_audio"})


def sampling_options(request: GenerationRequest, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Ollama ``options`` for a request: engine settings from ``extra`` (``num_ctx``…), then sampling on top.

    The request's sampling wins over ``extra`` for the same key because it is the per-call setting. The stop
    markers are sent too: an explicit ``stop`` option replaces the model's own list in Ollama, so sending the
    full set keeps the control-token stops while adding any the caller asked for.
    """
    s = request.sampling
    options: dict[str, Any] = dict(extra or {})
    options.update(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, num_predict=s.max_tokens)
    if s.seed is not None:
        options["seed"] = s.seed
    if request.stop:
        options["stop"] = list(request.stop)
    return options


def chat_body(
    model: str,
    request: GenerationRequest,
    *,
    options: Mapping[str, Any] | None = None,
    keep_alive: float | str | None = None,
) -> dict[str, Any]:
    """The JSON body of a streaming ``POST /api/chat`` for ``request``.

    ``think`` is always sent: when it is absent Ollama turns thinking *on* for models that can think
    (``server/routes.go`` ``ChatHandler``: ``if req.Think == nil { req.Think = &api.ThinkValue{Value: true} }``).
    """
    if not request.conversation:
        # Ollama renders the conversation itself; with no messages it only loads the model (done_reason "load").
        raise UserError(
            "OllamaBackend needs request.messages: Ollama renders the Gemma 4 prompt itself from the conversation "
            "(the Agent fills them in; direct callers must pass OpenAI-style messages)"
        )
    body: dict[str, Any] = {
        "model": model,
        # request.media is already in the conversation's parts (GenerationRequest fills them in).
        "messages": ollama_messages(request.chat_messages()),
        "stream": True,
        "think": bool(request.enable_thinking),
        "options": sampling_options(request, options),
    }
    if request.tools:
        body["tools"] = [_tool(t) for t in request.tools]
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    return body


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    # Sent as given (a JSON round trip makes a plain, detached copy): Ollama's api.ToolProperty keeps nested
    # properties/required/anyOf, which the ollama-python Tool model would drop.
    copy: dict[str, Any] = neutralize_tools([json.loads(json.dumps(tool, default=str))])[0]
    if "function" not in copy and "name" in copy:
        copy = {"type": "function", "function": copy}
    copy.setdefault("type", "function")
    return copy


def ollama_messages(messages: Sequence[Mapping[str, Any]], media: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Map OpenAI-style messages onto Ollama's ``api.Message`` list.

    - ``developer`` becomes ``system`` (Ollama's Gemma 4 renderer only knows it as a first message).
    - ``reasoning_content`` is kept as ``thinking`` only for assistant messages after the last user message
      (the turn in progress): within a turn the model must see its own thoughts again, across turns it must
      not (the protocol doc, "History: only final visible answers"; Ollama's renderer applies the same rule,
      ``model/renderers/gemma4.go:90-94``).
    - assistant ``tool_calls`` become ``{"id", "function": {"name", "arguments": {...}}}`` with arguments as
      an object (OpenAI sends a JSON string); ``tool`` messages get ``tool_name`` from their ``name`` or from
      the call whose id they answer, which is what Ollama's renderer writes into ``response:NAME{…}``
      (``toolResponseName``, ``model/renderers/gemma4.go:204-219``; it also matches ``tool_call_id``).
    - media parts (``image``, ``image_url``, ``audio``, ``input_audio``) become base64 ``images``; a part
      that carries no data takes the next entry of ``media`` (the request's media, in prompt order).
    """
    messages = neutralize_messages(messages)
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    pending_media: Iterator[Any] = iter(media)
    call_names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = str(message.get("role", "user"))
        if role == "developer":
            role = "system"
        text, images = _content(message.get("content"), pending_media, role=role)
        item: dict[str, Any] = {"role": role, "content": sanitize(text)}
        if images:
            item["images"] = images
        if role == "assistant":
            thinking = message.get("reasoning_content") or message.get("thinking")
            if thinking and index > last_user:
                item["thinking"] = sanitize(str(thinking))
            calls = [_tool_call(c) for c in message.get("tool_calls") or ()]
            if calls:
                item["tool_calls"] = calls
                for call in calls:
                    if "id" in call:
                        call_names[call["id"]] = call["function"]["name"]
        elif role == "tool":
            call_id = message.get("tool_call_id")
            name = message.get("name") or message.get("tool_name") or call_names.get(str(call_id), "")
            if name:
                item["tool_name"] = sanitize(str(name))
            if call_id:
                item["tool_call_id"] = str(call_id)
        out.append(item)
    return out


def _tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function", call)
    name = str(function.get("name", ""))
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise UserError(f"tool call {name!r} has arguments that are not JSON: {arguments[:80]!r}") from exc
    if not isinstance(arguments, Mapping):
        raise UserError(f"tool call {name!r} has arguments of type {type(arguments).__name__}; expected an object")
    converted: dict[str, Any] = {"function": {"name": sanitize(name), "arguments": neutralize(dict(arguments))}}
    if call.get("id"):
        converted["id"] = str(call["id"])
    return converted


def _content(content: Any, pending_media: Iterator[Any], *, role: str) -> tuple[str, list[str]]:
    """Text and base64 media of one message's ``content`` (a string, a mapping result, or a list of parts)."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    # A tool result's mapping is its data, even with a "type" key: only a list of parts (made by
    # agentkit.messages.to_chat from a result's typed media) carries a tool's images.
    parts = [content] if isinstance(content, Mapping) and role != "tool" else content
    if not _is_parts(parts, known_only=role == "tool"):
        # A tool result given as a mapping or list: Ollama carries strings only, so send it as JSON text.
        return json.dumps(content, ensure_ascii=False, sort_keys=True, default=str), []
    texts: list[str] = []
    images: list[str] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        kind = part.get("type", "text")
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind in _MEDIA_PART_TYPES:
            typed = media_part(part)
            if typed.data is None and typed.url is None and typed.path is None:
                entry = next(pending_media, None)
                if entry is None:
                    raise UserError(
                        f"a {kind!r} part of a {role} message has no data and the request carries no more media; "
                        "give the bytes in the part (e.g. {'type': 'image', 'image': b'...'}) or in request.media"
                    )
                typed = media_part(entry, typed.type)
            images.append(media_base64(typed))
        else:
            raise UserError(f"Ollama cannot take a {kind!r} content part; it accepts text, images and audio")
    if role == "system":
        # The reference template writes each system part trimmed and followed by one space.
        return "".join(t.strip() + " " for t in texts), images
    return "".join(texts), images


def _is_parts(value: Any, *, known_only: bool) -> bool:
    """Whether ``value`` is a list of content parts; for tool results only parts of known types count,
    since a result mapping may well have its own ``type`` key."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes | bytearray):
        return False
    known = _MEDIA_PART_TYPES | {"text"}
    return all(
        (isinstance(p, str) and not known_only)
        or (isinstance(p, Mapping) and "type" in p and (not known_only or p["type"] in known))
        for p in value
    )


def media_base64(value: Any) -> str:
    """Base64 text of one image/audio given as bytes, a data URL, base64 text, a Path or a part/entry mapping.

    Read by :func:`agentkit.messages.media_part` and :func:`~agentkit.messages.media_bytes` (the one reader of
    those forms). Strings are never taken as file names (a long base64 string and a path cannot be told apart
    safely); use a :class:`~pathlib.Path` or ``{"path": ...}`` to read a file. Ollama cannot fetch URLs.
    """
    part = media_part(value, "image")
    if is_remote(part):
        raise UserError(
            f"Ollama cannot fetch media from a URL ({(part.url or '')[:60]}); download it and pass the bytes instead"
        )
    return base64.b64encode(media_bytes(part)).decode("ascii")
