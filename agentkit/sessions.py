"""Durable conversations: one JSON file per session, written atomically after every agent step.

Layout: ``<root>/<session id>.json``; root defaults to ``platformdirs.user_data_dir("agentkit")/sessions``
and ``AGENTKIT_HOME`` (or an explicit path) overrides it. Each write goes to a temporary file in the same
directory, is fsynced, then renamed over the old file (``os.replace`` is atomic on POSIX), and the directory
is fsynced — so a process killed at any instant leaves either the old or the new version, never a torn one.

Files that are not agentkit sessions (or are corrupt) raise :class:`~agentkit.errors.SessionCorrupt` and are
never overwritten: the user may want them back. Anything in the directory may be hostile or broken (a FIFO
named ``x.json`` that would block a reader forever, a device, a huge or deeply nested file): files are
opened without blocking, only regular files of at most :data:`MAX_SESSION_BYTES` are read, and every
failure is a ``SessionCorrupt`` naming the file, so ``list`` can report it and go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from agentkit.errors import SessionCorrupt, SessionError, SessionNotFound, UserError
from agentkit.messages import (
    AssistantMessage,
    Conversation,
    Message,
    SessionFile,
    from_dicts,
    session_file_adapter,
    to_dicts,
)

if TYPE_CHECKING:
    from agentkit.events import StepFinished, ToolCallFinished

__all__ = ["Session", "SessionInfo", "SessionStore", "atomic_write_text", "default_sessions_dir"]

FORMAT = "agentkit.session"
# 1: messages as OpenAI-style dicts (still read); 2: typed messages (agentkit.messages), bytes as base64.
VERSION = 2
_HEADER = f'{{"format": "{FORMAT}"'
_HEADER_RE = re.compile(re.escape(_HEADER) + r', "version": (\d+), "revision": (\d+)')
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # always fullmatch: "$" would accept "abc\n"
MAX_SESSION_BYTES = 64 * 1024 * 1024  # a session file larger than this is refused rather than read
_NAME_MAX = 255  # bytes in one file name on Linux and macOS file systems


def default_sessions_dir() -> Path:
    home = os.environ.get("AGENTKIT_HOME")
    if home:
        return Path(home).expanduser() / "sessions"
    import platformdirs

    return Path(platformdirs.user_data_dir("agentkit", appauthor=False)) / "sessions"


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def atomic_write_text(path: Path, text: str, *, private: bool = True) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new content, never a mix.

    ``private`` files (conversations, what the person typed) are readable by their owner only; otherwise the
    file keeps the permissions of the one it replaces, or gets the umask's, as a plainly created file would
    (an exported chat, a batch's results). The temporary file's name is short whatever ``path`` is called: a
    name near the 255-byte limit must not fail only because the temporary name is longer.
    """
    size = len(os.fsencode(path.name))
    if size > _NAME_MAX:
        raise UserError(
            f"the file name {path.name[:40]!r}... is {size} bytes long; file systems allow at most {_NAME_MAX}: "
            "pick a shorter name"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
    try:
        if not private:
            os.fchmod(fd, _plain_mode(path))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _plain_mode(path: Path) -> int:
    """The permission bits a rewrite of ``path`` keeps, or those a new file gets under the umask."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def read_regular_file(path: Path, limit: int | None = None) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; never blocks on a FIFO or device.

    Raises ``FileNotFoundError`` when it does not exist and :class:`SessionCorrupt` (naming the file) for
    anything else that is wrong with it. ``limit`` defaults to :data:`MAX_SESSION_BYTES`.
    """
    limit = MAX_SESSION_BYTES if limit is None else limit
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SessionCorrupt(f"cannot open {path}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SessionCorrupt(f"{path} is not a regular file (a pipe, device or folder); it was left untouched")
        if info.st_size > limit:
            raise SessionCorrupt(
                f"{path} is {info.st_size:,} bytes, more than a session may be ({limit:,}); it was left untouched"
            )
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew while we read it
                raise SessionCorrupt(f"{path} is more than {limit:,} bytes; it was left untouched")
        return b"".join(chunks)
    except OSError as exc:
        raise SessionCorrupt(f"cannot read {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


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
_FIELDS = ("id", "title", "created_at", "updated_at", "backend", "model", "thinking_enabled")


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
        self.conversation = (*self.conversation, *_without_thinking(turn))
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
            "messages": list(self.conversation),
            "thinking": self.thinking,
            "tool_calls": self.tool_calls,
            "steps": self.steps,
        }

    @classmethod
    def from_json(cls, text: str, *, source: str = "session") -> Session:
        """A session from a file's text: version 2 through the TypeAdapter, older versions through ``from_dict``."""
        head = _HEADER_RE.match(text[:160])
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
            return cls(**known)
        except UserError as exc:  # a message no conversation can hold
            raise SessionCorrupt(f"{source} is damaged: {exc}; it was left untouched") from None

    @classmethod
    def _of(cls, data: dict[str, Any]) -> Session:
        fields = {k: data[k] for k in (*_FIELDS, "thinking", "tool_calls", "steps", "revision") if k in data}
        return cls(**fields, conversation=data.get("messages", ()))


def _first_error(exc: Any) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"]) or "the file"
    return f"{where}: {error['msg']}"


def _without_thinking(turn: Iterable[Message]) -> list[Message]:
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


@dataclass(frozen=True)
class SessionInfo:
    id: str
    title: str
    created_at: float
    updated_at: float
    backend: str
    model: str
    message_count: int


class SessionStore:
    """Saved conversations in one directory."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.root = Path(path).expanduser() if path is not None else default_sessions_dir()

    def __repr__(self) -> str:
        return f"SessionStore({str(self.root)!r})"

    def _path(self, session_id: str) -> Path:
        if not isinstance(session_id, str) or not _ID_RE.fullmatch(session_id):
            raise UserError(
                f"invalid session id {session_id!r}: use 1 to 128 letters, digits, '-', '_' and '.', "
                "starting with a letter or digit"
            )
        return self.root / f"{session_id}.json"

    def exists(self, session_id: str) -> bool:
        return self._path(session_id).exists()

    def save(self, session: Session) -> None:
        """Write atomically; refuses to replace a file that is not an agentkit session."""
        path = self._path(session.id)
        if path.exists() or path.is_symlink():
            try:
                head = read_regular_file(path)[: len(_HEADER)]
            except FileNotFoundError:
                head = _HEADER.encode()  # removed meanwhile: nothing to protect
            except SessionCorrupt as exc:
                raise SessionCorrupt(f"{exc}. Move it away or pick another session id.") from exc
            if head != _HEADER.encode():
                raise SessionCorrupt(
                    f"{path} exists but is not an agentkit session; it was left untouched. "
                    "Move it away or pick another session id."
                )
        session.updated_at = time.time()
        session.revision += 1
        text = json.dumps(session.to_dict(), ensure_ascii=False)
        try:
            atomic_write_text(path, text)
        except OSError as exc:
            raise SessionError(f"cannot save session {session.id} to {path}: {exc}") from exc

    def record_step(self, session: Session, step: StepFinished, turn: Sequence[Message], *, turn_index: int) -> None:
        """Record a step of a turn still in progress and save, the turn's messages so far included.

        A crash mid-turn then loses at most one step. The turn's thinking is not saved with the messages
        (history never holds it); ``session.conversation`` is left as it was (the turn is not committed).
        """
        session.record_step(step, turn_index=turn_index)
        committed = session.conversation
        session.conversation = (*committed, *_without_thinking(turn))
        try:
            self.save(session)
        finally:
            session.conversation = committed

    def commit_turn(
        self,
        session: Session,
        turn: Sequence[Message],
        *,
        turn_index: int,
        thinking: str = "",
        calls: Iterable[ToolCallFinished] = (),
    ) -> None:
        """Add a finished turn to the session (:meth:`Session.commit_turn`) and save it."""
        session.commit_turn(turn, turn_index=turn_index, thinking=thinking, calls=calls)
        self.save(session)

    def revision(self, session_id: str) -> int | None:
        """The revision saved on disk (read from the file's first bytes), or None when there is no such file."""
        try:
            head = read_regular_file(self._path(session_id))[:128].decode("utf-8", "replace")
        except FileNotFoundError:
            return None
        match = _HEADER_RE.match(head)
        return int(match.group(2)) if match else 0

    @contextlib.asynccontextmanager
    async def lock(self, session_id: str, *, timeout_s: float = 30.0) -> AsyncIterator[None]:
        """Hold the session's lock (an ``flock`` on a lock file) while one run writes to it.

        Two agents continuing the same session — two ``agentkit run -s ID``, or a run while the TUI has it
        open — take turns instead of overwriting each other's turns. The lock goes away with the process,
        even when it is killed. Waits without blocking the event loop; gives up after ``timeout_s``.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f".{self._path(session_id).stem}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise SessionError(
                            f"session {session_id} is busy: another run is writing to it (waited {timeout_s:g} s); "
                            "try again when it finishes"
                        ) from None
                    await asyncio.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def load(self, session_id: str) -> Session:
        path = self._path(session_id)
        try:
            text = read_regular_file(path).decode("utf-8")
        except FileNotFoundError:
            raise SessionNotFound(
                f"no session {session_id!r} in {self.root}; `agentkit sessions list` shows the saved ones"
            ) from None
        except UnicodeDecodeError as exc:
            raise SessionCorrupt(f"session file {path} is not UTF-8 text ({exc}); it was left untouched") from exc
        session = Session.from_json(text, source=f"session file {path}")
        # The file name is the session's identity: a copied file (backup.json) is its own session, and saving
        # it must never overwrite the file it was copied from.
        session.id = session_id
        return session

    def scan(self) -> tuple[list[SessionInfo], dict[str, str]]:
        """Saved sessions, newest first, and the ``*.json`` files that are not readable sessions, with why.

        One bad file never stops the listing: each is read without blocking and within a size limit, and
        whatever is wrong with it is reported against its name.
        """
        infos: list[SessionInfo] = []
        problems: dict[str, str] = {}
        if not self.root.is_dir():
            return infos, problems
        for path in self.root.glob("*.json"):
            try:
                s = self.load(path.stem)
            except (SessionError, UserError) as exc:
                problems[path.name] = str(exc)
                continue
            except RecursionError:  # defensive: a file must never end the listing
                problems[path.name] = "nested too deeply to be a session"
                continue
            infos.append(SessionInfo(s.id, s.title, s.created_at, s.updated_at, s.backend, s.model, len(s.messages)))
        infos.sort(key=lambda i: i.updated_at, reverse=True)
        return infos, dict(sorted(problems.items()))

    def list(self) -> list[SessionInfo]:
        """Saved sessions, newest first. Unreadable files are skipped here (:meth:`scan` names them)."""
        return self.scan()[0]

    def delete(self, session_id: str) -> None:
        self.load(session_id)  # refuse to delete what is not ours, and say so if it does not exist
        self._path(session_id).unlink()

    def rename(self, session_id: str, title: str) -> Session:
        session = self.load(session_id)
        session.title = title.strip()
        self.save(session)
        return session

    def export(self, session_id: str, path: str | Path | None = None) -> dict[str, Any]:
        """Return the session as a dict, and write it as JSON to ``path`` (atomically) when given."""
        data = self.load(session_id).to_dict()
        if path is not None:
            atomic_write_text(Path(path), json.dumps(data, ensure_ascii=False, indent=2))
        return data
