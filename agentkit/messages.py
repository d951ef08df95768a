"""The conversation, typed: frozen messages made of typed parts, in the style of pydantic-ai's messages.

Why typed: the loop, the session file and every engine read the same conversation, and an untyped one
(OpenAI-style dicts) had to be re-derived and kept in step by hand in each of them. Here a conversation is a
``tuple`` of frozen messages, so:

- the agent's cached rendering of earlier turns is valid exactly while the conversation is the *same tuple*
  (an identity check, O(1)): any change makes a new tuple, and nothing in one can be edited in place;
- the session file is read and written by one pydantic ``TypeAdapter`` (:func:`session_file_adapter`), discriminated
  on ``role`` and on each part's ``type``; bytes travel as base64.

Dicts exist only at the edges: :func:`from_dicts` / :func:`to_dicts` convert the OpenAI-style messages users
pass to ``Agent.run`` and read from ``Agent.messages``; :func:`to_chat` is the one place the chat-API message
list is made for an engine that renders the prompt itself (every string neutralized); :func:`render_dicts` is
what the native renderer (:func:`agentkit.gemma4.render`) reads.

Messages: :class:`SystemMessage` (also ``developer``), :class:`UserMessage` (text, images, audio, video),
:class:`AssistantMessage` (text, thinking, tool calls) and :class:`ToolResult` (one call's result). Values
inside (call arguments, tool results) are plain JSON-like data: treat them as read-only, as the conversion
functions hand out copies.

Media parts and their one reader live in :mod:`agentkit.media` (re-exported here). A tool returns pictures
as :func:`~agentkit.media.Image` / :func:`~agentkit.media.Audio` values; they travel as :attr:`ToolResult.media`
and are rendered after the response, as Gemma 4's template renders a tool message's media parts
(``<|tool_response>…<tool_response|><|image|>``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict

from agentkit.errors import UserError
from agentkit.gemma4.prompt import Prompt
from agentkit.gemma4.render import Declarations, render
from agentkit.gemma4.sanitize import neutralize_messages
from agentkit.media import (
    MEDIA_KINDS as _MEDIA_TYPES,
)
from agentkit.media import (
    MEDIA_PART_TYPES,
    Audio,
    AudioPart,
    Image,
    ImagePart,
    MediaPart,
    VideoPart,
    is_remote,
    media_bytes,
    media_part,
    media_type,
)

__all__ = [
    "MEDIA_PART_TYPES",
    "AssistantMessage",
    "AssistantPart",
    "Audio",
    "AudioPart",
    "Conversation",
    "Image",
    "ImagePart",
    "MediaPart",
    "Message",
    "SystemMessage",
    "TextPart",
    "ThinkingPart",
    "ToolCallPart",
    "ToolResult",
    "UserMessage",
    "UserPart",
    "VideoPart",
    "describe_media",
    "fill_media",
    "from_dict",
    "from_dicts",
    "has_media",
    "is_remote",
    "map_media",
    "media_bytes",
    "media_part",
    "media_type",
    "native_prompt",
    "render_dicts",
    "session_file_adapter",
    "to_chat",
    "to_dict",
    "to_dicts",
]


# -- parts ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ThinkingPart:
    """The model's thinking: kept within its turn, never sent back in a later one."""

    text: str
    type: Literal["thinking"] = "thinking"


@dataclass(frozen=True, slots=True)
class ToolCallPart:
    """One call the model made. ``arguments`` is a mapping, or the raw text a client sent that was not JSON."""

    name: str
    arguments: dict[str, Any] | str
    id: str | None = None
    type: Literal["tool_call"] = "tool_call"


UserPart: TypeAlias = TextPart | ImagePart | AudioPart | VideoPart
AssistantPart: TypeAlias = TextPart | ThinkingPart | ToolCallPart
if TYPE_CHECKING:
    # The fields' annotations name these; at run time they are defined, as discriminated unions (pydantic's
    # Field), when the TypeAdapter is first built (see session_file_adapter): importing this module loads no
    # pydantic.
    _UserParts: TypeAlias = UserPart
    _AssistantParts: TypeAlias = AssistantPart
    _MediaParts: TypeAlias = MediaPart


# -- messages ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SystemMessage:
    """Instructions; a list of text parts renders each part trimmed and followed by a space (as the template)."""

    content: str | tuple[TextPart, ...]
    role: Literal["system", "developer"] = "system"


@dataclass(frozen=True, slots=True)
class UserMessage:
    content: str | tuple[_UserParts, ...]
    role: Literal["user"] = "user"

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(frozen=True, slots=True)
class AssistantMessage:
    """One piece of the model's turn: its thinking, its text and its tool calls, in the order written."""

    parts: tuple[_AssistantParts, ...] = ()
    role: Literal["assistant"] = "assistant"

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def thinking(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, ThinkingPart))

    @property
    def tool_calls(self) -> tuple[ToolCallPart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ToolCallPart))

    def without_thinking(self) -> AssistantMessage:
        """The message as history keeps it once its turn has ended (itself when it has no thinking)."""
        for p in self.parts:
            if type(p) is ThinkingPart:
                return AssistantMessage(tuple(p for p in self.parts if type(p) is not ThinkingPart))
        return self


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What one tool call returned (any JSON-like value; ``{"error": ...}`` for a failure), by call id or name.

    ``media``: images or audio the tool returned (an MCP image block, a Python tool's :func:`Image`). The
    native format renders them right after the response, as the official template does with a tool
    message's media parts; only these typed parts ever become media, never data inside ``content``.
    """

    content: Any
    call_id: str | None = None
    name: str | None = None
    role: Literal["tool"] = "tool"
    media: tuple[_MediaParts, ...] = ()


Message: TypeAlias = SystemMessage | UserMessage | AssistantMessage | ToolResult
Conversation: TypeAlias = tuple[Message, ...]


class SessionFile(TypedDict, total=False):
    """The session file, as :class:`agentkit.sessions.SessionStore` writes it (format version 2)."""

    format: str
    version: int
    revision: int
    id: str
    title: str
    created_at: float
    updated_at: float
    backend: str
    model: str
    thinking_enabled: bool
    messages: list[Message]
    thinking: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    steps: list[dict[str, Any]]


if TYPE_CHECKING:
    from pydantic import TypeAdapter


@cache
def session_file_adapter() -> TypeAdapter[SessionFile]:
    """The one TypeAdapter for session files: messages discriminated on ``role``, parts on ``type``.

    Built on first use, so that importing the conversation types costs no pydantic import (the command line's
    start-up stays light).
    """
    from typing import Annotated

    from pydantic import ConfigDict, Field, TypeAdapter, with_config
    from typing_extensions import TypedDict as PydanticTypedDict  # what pydantic reads on Python < 3.12

    namespace = globals()
    namespace["_UserParts"] = Annotated[UserPart, Field(discriminator="type")]
    namespace["_AssistantParts"] = Annotated[AssistantPart, Field(discriminator="type")]
    namespace["_MediaParts"] = Annotated[MediaPart, Field(discriminator="type")]
    message = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolResult, Field(discriminator="role")]
    config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
    fields = {**SessionFile.__annotations__, "messages": list[message]}
    schema = with_config(config)(PydanticTypedDict("SessionFile", fields, total=False))  # type: ignore[operator]
    return TypeAdapter(schema)


# -- from the dicts people write ---------------------------------------------------------------------------

_PART_TYPES = MEDIA_PART_TYPES | {"text"}
_ROLES = ("system", "developer", "user", "assistant", "tool")


def from_dicts(messages: Iterable[Any]) -> Conversation:
    """The typed conversation for OpenAI/Hugging Face-style message dicts (what ``Agent.run`` accepts).

    Also reads the forms the renderer always took: content as a list of parts or one part, call arguments as
    JSON text, ``reasoning``/``thinking`` for ``reasoning_content``, and Hugging Face's ``tool_responses`` (as
    the tool results they are). Keys that mean nothing to a Gemma 4 prompt are not kept.
    """
    out: list[Message] = []
    for index, message in enumerate(messages):
        if isinstance(message, SystemMessage | UserMessage | AssistantMessage | ToolResult):
            out.append(message)
            continue
        out.append(from_dict(message, index=index))
        if isinstance(message, Mapping) and message.get("role") == "assistant":
            for legacy in message.get("tool_responses") or ():
                if isinstance(legacy, Mapping):
                    name = legacy.get("name")
                    out.append(ToolResult(_detach(legacy.get("response")), None, str(name) if name else None))
    return tuple(out)


def from_dict(message: Any, *, index: int = 0) -> Message:
    """One typed message for one message dict; a clear error for what cannot be one."""
    if not isinstance(message, Mapping):
        raise UserError(f"message {index} must be a mapping with a 'role', not {type(message).__name__}")
    role = message.get("role")
    content = message.get("content")
    if role == "user":
        return UserMessage(_user_content(content, index))
    if role == "assistant":
        parts: list[TextPart | ThinkingPart | ToolCallPart] = []
        thinking = message.get("reasoning_content") or message.get("reasoning") or message.get("thinking")
        if thinking:
            parts.append(ThinkingPart(str(thinking)))
        text = _joined_text(content)
        if text:
            parts.append(TextPart(text))
        calls = message.get("tool_calls") or ()
        if not isinstance(calls, list | tuple):
            raise UserError(f"message {index}: tool_calls must be a list of calls, not {type(calls).__name__}")
        parts.extend(_call(c, index) for c in calls)
        return AssistantMessage(tuple(parts))
    if role == "tool":
        call_id, name = message.get("tool_call_id"), message.get("name") or message.get("tool_name")
        call_id, name = str(call_id) if call_id is not None else None, str(name) if name else None
        if _has_media_parts(content):  # OpenAI's form of a result with images: text and media parts
            given = _user_content(content, index)
            assert not isinstance(given, str)  # a list of parts stays parts
            text = "".join(p.text for p in given if isinstance(p, TextPart))
            return ToolResult(text, call_id, name, media=tuple(p for p in given if not isinstance(p, TextPart)))
        return ToolResult(_detach(content), call_id, name)
    if role in ("system", "developer"):
        if isinstance(content, str) or content is None:
            return SystemMessage(content or "", role)
        texts = [p for p in _user_content(content, index) if isinstance(p, TextPart)]
        return SystemMessage(tuple(texts), role)
    raise UserError(f"message {index}: role must be one of {', '.join(_ROLES)}, not {role!r}")


def _has_media_parts(content: Any) -> bool:
    """Whether ``content`` is a list of content parts (text and media only) with media among them."""
    return (
        isinstance(content, list | tuple)
        and all(isinstance(p, Mapping) and p.get("type") in _PART_TYPES for p in content)
        and any(p["type"] in _MEDIA_TYPES for p in content)
    )


def _joined_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = [content] if isinstance(content, Mapping) else content
    if not isinstance(parts, list | tuple):
        return str(content)
    return "".join(
        str(p.get("text") or "") if isinstance(p, Mapping) else str(p)
        for p in parts
        if not isinstance(p, Mapping) or p.get("type", "text") == "text"
    )


def _user_content(content: Any, index: int) -> str | tuple[TextPart | ImagePart | AudioPart | VideoPart, ...]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = [content] if isinstance(content, Mapping) else content
    if not isinstance(parts, list | tuple):
        raise UserError(f"message {index}: content must be text or a list of parts, not {type(content).__name__}")
    out: list[TextPart | ImagePart | AudioPart | VideoPart] = []
    for part in parts:
        if isinstance(part, TextPart | ImagePart | AudioPart | VideoPart):
            out.append(part)
        elif not isinstance(part, Mapping):
            out.append(TextPart(str(part)))
        elif part.get("type", "text") == "text":
            out.append(TextPart(str(part.get("text") or "")))
        elif part.get("type") in _MEDIA_TYPES:
            out.append(media_part(part))
        else:
            raise UserError(
                f"message {index} has a content part of type {part.get('type')!r}; the types are text, image, "
                "image_url, audio, input_audio and video"
            )
    return tuple(out)


def fill_media(conversation: Conversation, entries: Sequence[Any]) -> Conversation:
    """The conversation with each media part that carries nothing given the next of ``entries``, in order.

    The older way to pass media: a part without data in the message, the bytes in the request's ``media``.
    Parts left over once ``entries`` run out stay empty (the engine says so when it needs them).
    """
    pending = iter(entries)
    out: list[Message] = []
    changed = False
    for message in conversation:
        if type(message) is UserMessage and type(message.content) is tuple:
            parts: list[Any] = []
            for p in message.content:
                if not isinstance(p, TextPart) and p.data is None and p.url is None and p.path is None:
                    entry = next(pending, None)
                    if entry is not None:
                        filled = media_part(entry, p.type)
                        if isinstance(p, AudioPart):
                            p = AudioPart(
                                filled.data, filled.url, filled.path, p.format or getattr(filled, "format", None)
                            )
                        else:
                            p = type(p)(filled.data, filled.url, filled.path)
                        changed = True
                parts.append(p)
            message = UserMessage(tuple(parts))
        out.append(message)
    return tuple(out) if changed else conversation


def map_media(conversation: Conversation, change: Callable[[MediaPart], MediaPart]) -> Conversation:
    """The conversation with ``change`` applied to every media part (of user messages and tool results)."""
    out: list[Message] = []
    for message in conversation:
        if type(message) is UserMessage and type(message.content) is tuple:
            parts = tuple(p if isinstance(p, TextPart) else change(p) for p in message.content)
            message = message if parts == message.content else UserMessage(parts)
        elif type(message) is ToolResult and message.media:
            media = tuple(change(p) for p in message.media)
            message = message if media == message.media else dataclasses.replace(message, media=media)
        out.append(message)
    return tuple(out)


def describe_media(result: ToolResult, why: str) -> ToolResult:
    """``result`` with its media told in words instead (kind, MIME type, size), for a model that cannot see them."""
    if not result.media:
        return result
    told: dict[str, list[dict[str, Any]]] = {}
    for part in result.media:
        key: str = "images" if part.type == "image" else part.type
        entry: dict[str, Any] = {"note": f"{part.type} received; {why}"}
        if is_remote(part):
            entry["url"] = part.url
        else:
            try:
                data = media_bytes(part)
                entry.update(mime_type=media_type(data, part.type), bytes=len(data))
            except UserError as exc:
                entry["error"] = str(exc)
        told.setdefault(key, []).append(entry)
    value = result.content
    if isinstance(value, Mapping):
        merged = dict(value)
        for key, entries in told.items():
            merged[key] = [*merged[key], *entries] if isinstance(merged.get(key), list) else entries
        value = merged
    elif value in ("", None):
        value = told
    else:
        value = {"text" if isinstance(value, str) else "value": value, **told}
    return ToolResult(value, result.call_id, result.name)


def _call(call: Any, index: int) -> ToolCallPart:
    if isinstance(call, ToolCallPart):
        return call
    if not isinstance(call, Mapping):
        raise UserError(f"message {index}: a tool call must be a mapping, not {type(call).__name__}")
    fn = call.get("function", call)
    if not isinstance(fn, Mapping):
        raise UserError(f"message {index}: a tool call's function must be a mapping, not {type(fn).__name__}")
    raw = fn.get("arguments")
    arguments: dict[str, Any] | str
    if isinstance(raw, str):
        try:
            decoded = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            decoded = raw  # kept as text: the renderer writes it inert inside the braces
        arguments = decoded if isinstance(decoded, dict) else raw
    elif isinstance(raw, Mapping):
        arguments = _detach(dict(raw))
    elif raw is None:
        arguments = {}
    else:
        arguments = str(raw)
    call_id = call.get("id")
    return ToolCallPart(str(fn.get("name") or "unknown"), arguments, str(call_id) if call_id is not None else None)


def _detach(value: Any) -> Any:
    """A copy of a JSON-like value that shares no list or dict with the caller's."""
    kind = type(value)
    if kind is str or value is None or kind is int or kind is float or kind is bool:
        return value
    if isinstance(value, Mapping):
        return {k: _detach(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_detach(v) for v in value]
    return value


# -- back to dicts -----------------------------------------------------------------------------------------


def to_dicts(conversation: Iterable[Message]) -> list[dict[str, Any]]:
    """The conversation as OpenAI-style message dicts (new objects: changing them changes nothing here)."""
    return [to_dict(m) for m in conversation]


def to_dict(message: Message) -> dict[str, Any]:
    if isinstance(message, AssistantMessage):
        out: dict[str, Any] = {"role": "assistant", "content": message.text}
        calls = message.tool_calls
        if calls:
            out["tool_calls"] = [_call_dict(c, _detach(c.arguments)) for c in calls]
        thinking = message.thinking
        if thinking:
            out["reasoning_content"] = thinking
        return out
    if isinstance(message, ToolResult):
        out = {"role": "tool"}
        if message.call_id is not None:
            out["tool_call_id"] = message.call_id
        if message.name is not None:
            out["name"] = message.name
        out["content"] = _tool_content(message, _part_dict)
        return out
    if isinstance(message, UserMessage):
        return {"role": "user", "content": _content_dicts(message.content)}
    return {"role": message.role, "content": _content_dicts(message.content)}


def _tool_content(message: ToolResult, write: Callable[[Any], dict[str, Any]]) -> Any:
    """A result's content as a tool message carries it: with media, OpenAI's text and media parts.

    A result *value* that merely looks like media parts (a tool's data) is sent as JSON text, so that no
    engine, and no later reading of these dicts, takes it for media.
    """
    value = message.content
    if message.media:
        text = value if isinstance(value, str) else _json_text(value)
        return [*([{"type": "text", "text": text}] if text else []), *(write(p) for p in message.media)]
    if isinstance(value, list | tuple) and any(isinstance(p, Mapping) and p.get("type") in _MEDIA_TYPES for p in value):
        return _json_text(value)
    return _detach(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _call_dict(call: ToolCallPart, arguments: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "function", "function": {"name": call.name, "arguments": arguments}}
    return out if call.id is None else {"id": call.id, **out}


def _content_dicts(content: str | tuple[Any, ...]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    return [_part_dict(p) for p in content]


def _part_dict(part: TextPart | ImagePart | AudioPart | VideoPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    value: Any = part.data if part.data is not None else part.url
    if isinstance(part, AudioPart) and part.format is not None:
        inner: dict[str, Any] = {"format": part.format}
        if value is not None:
            inner["data"] = value
        elif part.path is not None:
            pin = {"sha256": part.sha256} if part.sha256 is not None else {}
            return {"type": "audio", "path": part.path, "format": part.format, **pin}
        return {"type": "input_audio", "input_audio": inner}
    if value is not None:
        return {"type": part.type, part.type: value}
    if part.path is not None:
        return {"type": part.type, "path": part.path, **({"sha256": part.sha256} if part.sha256 is not None else {})}
    return {"type": part.type}


def render_dicts(conversation: Sequence[Message]) -> list[dict[str, Any]]:
    """What :func:`agentkit.gemma4.render` reads, sharing values with the messages (it only reads them)."""
    out: list[dict[str, Any]] = []
    for m in conversation:
        if type(m) is AssistantMessage:
            parts = m.parts
            if len(parts) == 1 and type(parts[0]) is TextPart:  # a plain answer: most of any history
                out.append({"role": "assistant", "content": parts[0].text})
                continue
            d: dict[str, Any] = {"role": "assistant", "content": m.text}
            calls = m.tool_calls
            if calls:
                d["tool_calls"] = [_call_dict(c, c.arguments) for c in calls]
            if m.thinking:
                d["reasoning_content"] = m.thinking
            out.append(d)
        elif type(m) is UserMessage and type(m.content) is str:
            out.append({"role": "user", "content": m.content})
        elif type(m) is ToolResult:
            content = m.content
            if m.media or isinstance(content, list):
                content = _tool_content(m, _kind_dict)
            out.append({"role": "tool", "tool_call_id": m.call_id, "name": m.name, "content": content})
        else:
            out.append(to_dict(m))
    return out


def _kind_dict(part: ImagePart | AudioPart | VideoPart) -> dict[str, Any]:
    return {"type": part.type}


def native_prompt(
    conversation: Sequence[Message],
    tools: Sequence[Any] | Declarations | None = None,
    *,
    thinking: bool = False,
    add_generation_prompt: bool = True,
) -> Prompt:
    """The conversation as the native Gemma 4 prompt: the one way a typed conversation is rendered whole."""
    dicts = render_dicts(conversation)
    return render(dicts, tools or None, enable_thinking=thinking, add_generation_prompt=add_generation_prompt)


def to_chat(
    conversation: Sequence[Message], media: Callable[[ImagePart | AudioPart | VideoPart], dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The chat-API message list for an engine that renders the prompt itself: every string neutralized.

    The one place such dicts are made. ``media`` writes each image/audio/video part (of a user message or a
    tool result) as the engine's API reads it; without it they stay in agentkit's form (``{"type": "image",
    "image": ...}``).
    """
    if media is None:
        return neutralize_messages(to_dicts(conversation))
    out: list[dict[str, Any]] = []
    for m in conversation:
        if type(m) is UserMessage and type(m.content) is tuple:
            out.append(
                {"role": "user", "content": [_part_dict(p) if isinstance(p, TextPart) else media(p) for p in m.content]}
            )
        elif type(m) is ToolResult and m.media:
            d = to_dict(m)
            d["content"] = _tool_content(m, media)
            out.append(d)
        else:
            out.append(to_dict(m))
    return neutralize_messages(out)


def has_media(conversation: Iterable[Message]) -> bool:
    """Whether any message carries an image, audio or video (a tool result given as content parts counts)."""
    for m in conversation:
        if type(m) is UserMessage and type(m.content) is tuple:
            if any(type(p) is not TextPart for p in m.content):
                return True
        elif type(m) is ToolResult and m.media:
            return True
    return False
