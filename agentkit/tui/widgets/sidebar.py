"""The sessions sidebar: every saved conversation, newest first; choosing one asks the app to switch.

The sidebar only posts :class:`SessionsSidebar.Chosen`; loading, renaming and deleting stay in the app,
which owns the store and the agent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, ListItem, ListView

from agentkit import SessionInfo

from ..text import literal

__all__ = ["SessionItem", "SessionsSidebar", "when"]

NEW_ID = "__new__"
clock: Callable[[], float] = time.time  # what "now" is for relative dates (tests pin it)


def when(timestamp: float, now: float) -> str:
    """A session's last activity as people say it: a time today, a weekday this week, a date before."""
    then, today = time.localtime(timestamp), time.localtime(now)
    days = (
        time.mktime((today.tm_year, today.tm_mon, today.tm_mday, 0, 0, 0, 0, 0, -1))
        - time.mktime((then.tm_year, then.tm_mon, then.tm_mday, 0, 0, 0, 0, 0, -1))
    ) // 86400
    if days <= 0:
        return time.strftime("today %H:%M", then)
    if days == 1:
        return time.strftime("yesterday %H:%M", then)
    if days < 7:
        return time.strftime("%a %H:%M", then)
    if then.tm_year == today.tm_year:
        return time.strftime("%b %d", then)
    return time.strftime("%Y-%m-%d", then)


class SessionItem(ListItem):
    def __init__(self, session_id: str, title: str, *, current: bool = False, date: str = "") -> None:
        labels = [Label(literal(title), classes="session-title")]
        if date:
            labels.append(Label(date, classes="session-date"))
        super().__init__(*labels, classes="-current" if current else "")
        self.session_id = session_id
        self.title = title
        self.date = date


class SessionsSidebar(Vertical):
    """A list of sessions with a "new chat" entry at the top."""

    DEFAULT_CSS = """
    SessionsSidebar {
        width: 26;
        height: 100%;
        background: $panel;
        border-right: vkey $foreground 20%;
    }
    SessionsSidebar > .sidebar-title {
        width: 100%;
        padding: 0 1;
        text-style: bold;
        color: $text-accent;
    }
    SessionsSidebar ListView { background: transparent; height: 1fr; }
    SessionsSidebar ListItem { padding: 0 1; background: transparent; }
    SessionsSidebar ListItem Label { width: 100%; text-wrap: nowrap; text-overflow: ellipsis; }
    SessionsSidebar ListItem.-current Label { text-style: bold; color: $text-success; }
    SessionsSidebar ListItem.-new Label { color: $text-muted; }
    SessionsSidebar ListItem .session-date { color: $text-muted; text-style: dim; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "rename", "Rename"),
        Binding("d,delete", "delete", "Delete"),
    ]

    class Chosen(Message):
        """The person picked a session (``session_id`` is None for a new chat)."""

        def __init__(self, session_id: str | None) -> None:
            super().__init__()
            self.session_id = session_id

    class RenameRequested(Message):
        def __init__(self, session_id: str) -> None:
            super().__init__()
            self.session_id = session_id

    class DeleteRequested(Message):
        def __init__(self, session_id: str) -> None:
            super().__init__()
            self.session_id = session_id

    def compose(self) -> ComposeResult:
        yield Label("Sessions", classes="sidebar-title")
        yield ListView()

    async def show_sessions(self, sessions: Sequence[SessionInfo], current: str | None) -> None:
        view = self.query_one(ListView)
        await view.clear()
        new = SessionItem(NEW_ID, "+ New chat", current=False)
        new.add_class("-new")
        items = [new]
        now = clock()
        for info in sessions:
            date = when(info.updated_at, now)
            items.append(SessionItem(info.id, info.title or "(untitled)", current=info.id == current, date=date))
        await view.extend(items)
        view.index = 0
        for index, item in enumerate(items):
            if item.session_id == current:
                view.index = index

    @on(ListView.Selected)
    def _selected(self, event: ListView.Selected) -> None:
        event.stop()
        item = event.item
        if isinstance(item, SessionItem):
            self.post_message(self.Chosen(None if item.session_id == NEW_ID else item.session_id))

    def _highlighted_id(self) -> str | None:
        item = self.query_one(ListView).highlighted_child
        if isinstance(item, SessionItem) and item.session_id != NEW_ID:
            return item.session_id
        return None

    def action_rename(self) -> None:
        session_id = self._highlighted_id()
        if session_id:
            self.post_message(self.RenameRequested(session_id))

    def action_delete(self) -> None:
        session_id = self._highlighted_id()
        if session_id:
            self.post_message(self.DeleteRequested(session_id))
