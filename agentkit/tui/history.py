"""What the person sent before, for Up/Down in the prompt; kept across sessions in one JSON file.

The file is a JSON list of strings (a message may span lines, so one entry a line would not do), oldest
first, at most :data:`MAX_ENTRIES`. Each :meth:`InputHistory.add` re-reads the file before writing, so two
chats open at once both keep what they sent, and writes are atomic (temporary file, fsync, rename), so a
crash leaves the old list or the new one. A damaged file is not overwritten: history is a convenience, and
the person may want the file back, so the app says so once and keeps history in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

from agentkit.sessions import atomic_write_text

__all__ = ["MAX_ENTRIES", "InputHistory"]

MAX_ENTRIES = 1000


class InputHistory:
    """Sent messages, and a cursor that Up/Down move through them (``None``: not browsing)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.problem: str | None = None  # why the file cannot be used; the app tells the person once
        self.entries: list[str] = self._read()
        self._cursor: int | None = None
        self._draft = ""  # what was in the prompt before browsing started, given back past the newest entry

    def _read(self) -> list[str]:
        if self.path is None:
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.problem = f"input history {self.path} cannot be read ({exc}); it is kept in memory only"
            self.path = None
            return []
        if not isinstance(data, list) or not all(isinstance(e, str) for e in data):
            self.problem = f"input history {self.path} is not a list of strings; it is kept in memory only"
            self.path = None
            return []
        return data[-MAX_ENTRIES:]

    def add(self, text: str) -> None:
        """Remember a sent message (not twice in a row) and stop browsing."""
        self._cursor = None
        if self.path is not None:
            latest = self._read()  # what another chat window added meanwhile
            if self.path is not None:
                self.entries = latest
        if not text.strip() or (self.entries and self.entries[-1] == text):
            return
        self.entries = [*self.entries, text][-MAX_ENTRIES:]
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)  # agentkit's data folder on a first run
                atomic_write_text(self.path, json.dumps(self.entries, ensure_ascii=False), private=True)
            except OSError as exc:
                self.problem = f"cannot save input history to {self.path} ({exc}); it is kept in memory only"
                self.path = None

    @property
    def browsing(self) -> bool:
        return self._cursor is not None

    def previous(self, current: str) -> str | None:
        """The entry before the one shown (the newest when not browsing yet); None at the oldest."""
        if not self.entries:
            return None
        if self._cursor is None:
            self._draft = current
            self._cursor = len(self.entries)
        if self._cursor == 0:
            return None
        self._cursor -= 1
        return self.entries[self._cursor]

    def next(self) -> str | None:
        """The entry after the one shown; past the newest, the draft typed before browsing. None if not browsing."""
        if self._cursor is None:
            return None
        self._cursor += 1
        if self._cursor >= len(self.entries):
            self._cursor = None
            return self._draft
        return self.entries[self._cursor]

    def stop(self) -> None:
        """The person edited the recalled text: Up starts from the newest entry again."""
        self._cursor = None
