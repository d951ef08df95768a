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

This module is the directory (paths, safe reading, atomic writing, locking, listing); a session itself and its
file format are :mod:`agentkit._session`'s (:class:`Session` is importable from here, as before).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkit._session import HEADER, HEADER_RE, Session, without_thinking
from agentkit.errors import SessionCorrupt, SessionError, SessionNotFound, UserError
from agentkit.messages import Message

if TYPE_CHECKING:
    from agentkit.events import StepFinished, ToolCallFinished

__all__ = ["Session", "SessionInfo", "SessionStore", "atomic_write_text", "default_sessions_dir", "json_text"]

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # always fullmatch: "$" would accept "abc\n"
MAX_SESSION_BYTES = 64 * 1024 * 1024  # a session file larger than this is refused rather than read
_NAME_MAX = 255  # bytes in one file name on Linux and macOS file systems


def default_sessions_dir() -> Path:
    home = os.environ.get("AGENTKIT_HOME")
    if home:
        return Path(home).expanduser() / "sessions"
    import platformdirs

    return Path(platformdirs.user_data_dir("agentkit", appauthor=False)) / "sessions"


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(value: Any, **options: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)``, with any lone surrogate written as U+FFFD.

    Text from outside can hold lone surrogates (a JSON ``"\\ud800"`` from a server, a file name that is not
    UTF-8); ``ensure_ascii=False`` leaves them raw and no UTF-8 file takes them, so saving the session raised
    ``UnicodeEncodeError`` and ended the run. Not their ``\\u`` escape: the session loader (pydantic's JSON
    parser) refuses a lone surrogate escape, and would then refuse the whole session.
    """
    text = json.dumps(value, ensure_ascii=False, **options)
    if text.isascii() or not _LONE_SURROGATE.search(text):
        return text
    return _LONE_SURROGATE.sub("\ufffd", text)


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
    if not text.isascii():
        text = _LONE_SURROGATE.sub("\ufffd", text)  # no UTF-8 file takes them (JSON writers escape them first)
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

    def _make_root(self) -> None:
        """The sessions folder, made the owner's only when made here (its files are; their names and the
        lock files need not be seen by others either). A folder that exists keeps its mode."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            self.root.mkdir(mode=0o700)

    def exists(self, session_id: str) -> bool:
        return self._path(session_id).exists()

    def save(self, session: Session) -> None:
        """Write atomically; refuses to replace a file that is not an agentkit session."""
        path = self._path(session.id)
        if path.exists() or path.is_symlink():
            try:
                head = read_regular_file(path)[: len(HEADER)]
            except FileNotFoundError:
                head = HEADER.encode()  # removed meanwhile: nothing to protect
            except SessionCorrupt as exc:
                raise SessionCorrupt(f"{exc}. Move it away or pick another session id.") from exc
            if head != HEADER.encode():
                raise SessionCorrupt(
                    f"{path} exists but is not an agentkit session; it was left untouched. "
                    "Move it away or pick another session id."
                )
        session.updated_at = time.time()
        session.revision += 1
        text = json_text(session.to_dict())
        try:
            self._make_root()
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
        session.conversation = (*committed, *without_thinking(turn))
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
        match = HEADER_RE.match(head)
        return int(match.group(2)) if match else 0

    @contextlib.asynccontextmanager
    async def lock(self, session_id: str, *, timeout_s: float = 30.0) -> AsyncIterator[None]:
        """Hold the session's lock (an ``flock`` on a lock file) while one run writes to it.

        Two agents continuing the same session — two ``agentkit run -s ID``, or a run while the TUI has it
        open — take turns instead of overwriting each other's turns. The lock goes away with the process,
        even when it is killed. Waits without blocking the event loop; gives up after ``timeout_s``.
        """
        self._make_root()
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
            infos.append(
                SessionInfo(s.id, s.title, s.created_at, s.updated_at, s.backend, s.model, len(s.conversation))
            )
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
            atomic_write_text(Path(path), json_text(data, indent=2))
        return data
