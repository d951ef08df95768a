"""A session: one conversation's record (what the model sees, and what people look at later) and its file format.

The file is JSON: version 2 holds the conversation as typed messages (:mod:`agentkit.messages`, one
TypeAdapter, bytes as base64); version 1 files (OpenAI-style message dicts) are still read, each field checked
so a hand-edited or foreign file fails on load with its name. Where the files live, and how they are written
and locked, is :mod:`agentkit.sessions`' business; this module knows nothing of the directory.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from agentkit.errors import SessionCorrupt, UserError
from agentkit.media import distrusted, pinned
from agentkit.messages import (
    AssistantMessage,
    Conversation,
    Message,
    SessionFile,
    from_dicts,
    map_media,
    session_file_adapter,
    to_dicts,
)

if TYPE_CHECKING:
    from agentkit.events import StepFinished, ToolCallFinished

__all__ = ["FORMAT", "HEADER", "HEADER_RE", "VERSION", "Session", "new_session_id", "without_thinking"]

FORMAT = "agentkit.session"
# 1: messages as OpenAI-style dicts (still read); 2: typed messages (agentkit.messages), bytes as base64.
VERSION = 2
HEADER = f'{{"format": "{FORMAT}"'
HEADER_RE = re.compile(re.escape(HEADER) + r', "version": (\d+), "revision": (\d+)')


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


# What each saved field must hold in a version-1 file (OpenAI-style message dicts), so a hand-edited or foreign
# file fails on load with its name, not later in whatever displays it (a title that is a number crashed the
# TUI's sidebar). Version 2 files are checked by the session file's TypeAdapter (agentkit.messages).
_FIELD_TYPES: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("id", str, "a string"),
    ("title", str, "a string"),
    ("backend", str, "a string"),
    ("model", str, "a string"),
    ("created_at", (int, float), "a number"),
    ("updated_at", (int, float), "a number"),
    ("thinking_enabled", bool, "true or false"),
    ("messages", list, "a list of message objects"),
    ("thinking", list, "a list"),
    ("tool_calls", list, "a list"),
    ("steps", list, "a list"),
    ("revision", int, "a whole number"),
)
# The file's fields that Session takes by the same name (its "messages" become the conversation): read from the
# file's one declaration (SessionFile), so a field added there is loaded without a second list to update.
_SAVED = tuple(k for k in SessionFile.__annotations__ if k not in ("format", "version", "messages"))


@dataclass(init=False, eq=False)
class Session:
    """Everything a conversation produced; ``conversation`` is what the model sees, the rest is for people.

    ``conversation`` is a tuple of frozen messages (:mod:`agentkit.messages`): replaced, never edited, so the
    agent can tell by identity whether its cached rendering still matches. ``messages`` is the same
    conversation as OpenAI-style dicts — new dicts on every read; assign a list to change the conversation.
    """

    id: str
    title: str
    created_at: float
    updated_at: float
    backend: str
    model: str
    thinking_enabled: bool
    conversation: Conversation
    thinking: list[dict[str, Any]]  # {"turn": n, "text": ...}; never re-sent
    tool_calls: list[dict[str, Any]]  # call records with results and durations
    revision: int  # bumped by every save: tells an agent that another process continued this session

    def __init__(
        self,
        id: str | None = None,
        title: str = "",
        created_at: float | None = None,
        updated_at: float | None = None,
        backend: str = "",
        model: str = "",
        thinking_enabled: bool = False,
        messages: Iterable[Any] = (),
        thinking: list[dict[str, Any]] | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        steps: list[dict[str, Any]] | None = None,
        revision: int = 0,
        *,
        conversation: Iterable[Message] | None = None,
    ) -> None:
        now = time.time()
        self.id = new_session_id() if id is None else id
        self.title = title
        self.created_at = now if created_at is None else created_at
        self.updated_at = now if updated_at is None else updated_at
        self.backend = backend
        self.model = model
        self.thinking_enabled = thinking_enabled
        self.conversation = tuple(conversation) if conversation is not None else from_dicts(messages)
        self.thinking = [] if thinking is None else thinking
        self.tool_calls = [] if tool_calls is None else tool_calls
        self._steps: list[dict[str, Any]] = [] if steps is None else steps
        self._new_steps: list[tuple[int, StepFinished]] = []  # recorded, written into _steps when read
        self.revision = revision

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Session):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation as OpenAI-style dicts (a new list of new dicts on every read)."""
        return to_dicts(self.conversation)

    @messages.setter
    def messages(self, value: Iterable[Any]) -> None:
        self.conversation = from_dicts(value)

    def commit_turn(
        self,
        turn: Sequence[Message],
        *,
        turn_index: int,
        thinking: str = "",
        calls: Iterable[ToolCallFinished] = (),
    ) -> None:
        """Add a finished turn: its messages (without thinking) to the conversation, the rest to the records."""
        self.conversation = (*self.conversation, *without_thinking(turn))
        if thinking:
            self.thinking.append({"turn": turn_index, "text": thinking})
        self.tool_calls.extend(_call_record(turn_index, c) for c in calls)

    @property
    def steps(self) -> list[dict[str, Any]]:
        """Per generation: its turn and step, tool calls asked for, token usage and timings."""
        if self._new_steps:
            self._steps.extend(_step_record(turn, step) for turn, step in self._new_steps)
            self._new_steps.clear()
        return self._steps

    @steps.setter
    def steps(self, value: list[dict[str, Any]]) -> None:
        self._steps, self._new_steps = value, []

    def record_step(self, step: StepFinished, *, turn_index: int) -> None:
        """Keep one generation's usage and timings (:attr:`steps`; made into a record when read or saved)."""
        self._new_steps.append((turn_index, step))

    def to_dict(self) -> dict[str, Any]:
        """The session as the file holds it (JSON-ready: bytes as base64)."""
        return cast(dict[str, Any], session_file_adapter().dump_python(self._file(), mode="json", fallback=str))

    def _file(self) -> SessionFile:
        # "format" first: the store recognises its own files by their first bytes without parsing them.
        # "version" and "revision" next, so a writer can read them from the first bytes too.
        return {
            "format": FORMAT,
            "version": VERSION,
            "revision": self.revision,
            "id": self.id,
            "title": self.title,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "backend": self.backend,
            "model": self.model,
            "thinking_enabled": self.thinking_enabled,
            # A file part keeps its file's fingerprint: read back, the file is sent only if it still has those
            # bytes (agentkit.media.media_bytes), so a session file cannot name a file for agentkit to send.
            "messages": list(map_media(self.conversation, pinned)),
            "thinking": self.thinking,
            "tool_calls": self.tool_calls,
            "steps": self.steps,
        }

    @classmethod
    def from_json(cls, text: str, *, source: str = "session") -> Session:
        """A session from a file's text: version 2 through the TypeAdapter, older versions through ``from_dict``."""
        head = HEADER_RE.match(text[:160])
        if head is not None and int(head.group(1)) == VERSION:
            from pydantic import ValidationError

            try:
                data = session_file_adapter().validate_json(text)
            except ValidationError as exc:
                raise SessionCorrupt(f"{source} is damaged: {_first_error(exc)}; it was left untouched") from None
            return cls._of(cast(dict[str, Any], data))
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SessionCorrupt(f"{source} is not valid JSON ({exc}); it was left untouched") from exc
        except RecursionError:
            raise SessionCorrupt(f"{source} is nested too deeply to be a session; it was left untouched") from None
        return cls.from_dict(parsed, source=source)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "session") -> Session:
        """A session from a parsed file (any version) or from :meth:`to_dict`."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SessionCorrupt(f"{source} is not an agentkit session file (no 'format: {FORMAT}' marker)")
        version = data.get("version", 0)
        if not isinstance(version, int) or version > VERSION:
            raise SessionCorrupt(
                f"{source} was written by a newer agentkit (format version {version}); upgrade agentkit"
            )
        if version == VERSION:
            from pydantic import ValidationError

            try:
                # Through JSON: bytes are base64 text there, and only JSON validation decodes them.
                checked = session_file_adapter().validate_json(json.dumps(data, ensure_ascii=False))
                return cls._of(cast(dict[str, Any], checked))
            except ValidationError as exc:
                raise SessionCorrupt(f"{source} is damaged: {_first_error(exc)}; it was left untouched") from None
        known = {k: data[k] for k, _, _ in _FIELD_TYPES if k in data}
        for name, kind, what in _FIELD_TYPES:
            if name not in known:
                continue  # an older file without this field: the default applies
            value = known[name]
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                raise SessionCorrupt(f"{source} is damaged: {name!r} must be {what}; it was left untouched")
            if isinstance(value, list) and not all(isinstance(item, dict) for item in value):
                raise SessionCorrupt(f"{source} is damaged: {name!r} must be a list of objects; it was left untouched")
        try:
            session = cls(**known)
        except UserError as exc:  # a message no conversation can hold
            raise SessionCorrupt(f"{source} is damaged: {exc}; it was left untouched") from None
        session.conversation = map_media(session.conversation, distrusted)
        return session

    @classmethod
    def _of(cls, data: dict[str, Any]) -> Session:
        """A session from a checked file: a file part without the fingerprint it was saved with is never read."""
        fields = {k: data[k] for k in _SAVED if k in data}
        return cls(**fields, conversation=map_media(tuple(data.get("messages", ())), distrusted))


def _first_error(exc: Any) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"]) or "the file"
    return f"{where}: {error['msg']}"


def without_thinking(turn: Iterable[Message]) -> list[Message]:
    """The turn as history keeps it: thinking is never sent back in a later turn."""
    return [m.without_thinking() if type(m) is AssistantMessage else m for m in turn]


def _step_record(turn_index: int, step: StepFinished) -> dict[str, Any]:
    usage, timings = step.usage, step.timings
    return {
        "turn": turn_index,
        "step": step.step,
        "tool_calls": step.tool_calls,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "ttft_s": timings.ttft_s,
        "total_s": timings.total_s,
    }


def _call_record(turn_index: int, call: ToolCallFinished) -> dict[str, Any]:
    """What the session file keeps of one finished tool call (a ``ToolCallFinished``)."""
    from agentkit.tools.runtime import to_response_value

    record = {
        "turn": turn_index,
        "call_id": call.call_id,
        "name": call.name,
        "arguments": call.arguments,
        "result": to_response_value(call.result) if call.error is None else None,
        "error": call.error,
        "duration_s": round(call.duration_s, 6),
        "step": call.step,
    }
    if call.repair is not None:
        record["repair"] = call.repair
    return record
