"""The conversation: a user bubble, and an agent turn that grows as events arrive.

An agent turn is a column of segments in the order they happened — thinking, text, tool cards, more
thinking, more text — because one user request can take several tool rounds, and showing them in order
is what lets a person follow what the agent did.
"""

from __future__ import annotations

import time
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Collapsible, Label, Markdown, Static
from textual.widgets.markdown import MarkdownStream

from ..text import visible
from .tool_card import ToolCard

__all__ = ["AgentTurn", "InfoMessage", "ThinkingBlock", "UserMessage"]


class UserMessage(Static):
    """What the person typed, shown as sent (no markdown: it is not model output)."""

    DEFAULT_CSS = """
    UserMessage {
        margin: 1 0 0 0;
        padding: 0 1;
        background: $primary 15%;
        border-left: outer $primary;
        color: $text;
    }
    """

    def __init__(self, text: str) -> None:
        super().__init__(visible(text), markup=False)
        self.text = text


class Answer(Markdown):
    """The model's text as markdown, whose links are never opened by a click.

    A link's text can hide where it goes (``[your bank](https://evil.example)``), and the answer is the model's,
    steerable by any page or file it read; a click shows the address instead, for the person to copy.
    """

    def __init__(self, markdown: str = "") -> None:
        super().__init__(markdown, open_links=False)

    def on_markdown_link_clicked(self, event: Markdown.LinkClicked) -> None:
        event.stop()
        self.app.notify(f"{visible(event.href)}\n(not opened: copy it to visit)", title="Link", markup=False)


class InfoMessage(Static):
    """What a slash command answers (/help, /tools, /system): part of the screen, never sent to the model."""

    DEFAULT_CSS = """
    InfoMessage {
        margin: 1 0 0 0;
        padding: 0 1;
        color: $text-muted;
        border-left: outer $accent 60%;
    }
    """

    def __init__(self, text: str) -> None:
        super().__init__(visible(text), markup=False)
        self.text = text


class ThinkingBlock(Collapsible):
    """The model's thinking: open and live while it streams, folded away once the answer starts."""

    DEFAULT_CSS = """
    ThinkingBlock {
        border: none;
        padding: 0;
        margin: 0;
        background: transparent;
    }
    ThinkingBlock > Contents {
        padding: 0 0 0 2;
    }
    ThinkingBlock .thinking-text {
        color: $text-muted;
        text-style: italic;
    }
    ThinkingBlock CollapsibleTitle {
        color: $text-muted;
        padding: 0;
    }
    """

    def __init__(self, text: str = "", *, live: bool = True) -> None:
        self._text = text
        self._started = time.monotonic()
        self._body = Static(visible(text), markup=False, classes="thinking-text")
        super().__init__(self._body, title="Thinking…" if live else "Thought", collapsed=not live)

    @property
    def text(self) -> str:
        return self._text

    def append(self, text: str) -> None:
        self._text += text
        self._body.update(visible(self._text))

    def finish(self) -> None:
        """Fold the block and say how long the model thought."""
        if self.title.startswith("Thinking"):
            self.title = f"Thought for {time.monotonic() - self._started:.1f}s"
        self.collapsed = True


class AgentTurn(Vertical):
    """One agent turn: segments appended as events stream in."""

    DEFAULT_CSS = """
    AgentTurn {
        height: auto;
        margin: 1 0 0 0;
        padding: 0 1;
        border-left: outer $success;
    }
    AgentTurn > .turn-label {
        color: $success;
        text-style: bold;
    }
    AgentTurn > Markdown {
        margin: 0;
        padding: 0;
        background: transparent;
    }
    AgentTurn > .turn-status {
        color: $text-muted;
    }
    AgentTurn > .turn-status.-error {
        color: $error;
    }
    AgentTurn > .turn-stats {
        color: $text-muted;
        text-style: dim;
    }
    """

    def __init__(self, label: str = "Gemma") -> None:
        super().__init__()
        self._label = label
        self._thinking: ThinkingBlock | None = None
        self._markdown: Markdown | None = None
        self._stream: MarkdownStream | None = None
        self.cards: dict[str, ToolCard] = {}
        self.text = ""

    def compose(self) -> ComposeResult:
        yield Label(self._label, classes="turn-label")

    async def add_thinking(self, text: str, *, live: bool = True) -> None:
        if self._thinking is None or not live:
            await self._end_text()
            self._thinking = ThinkingBlock(text, live=live)
            await self.mount(self._thinking)
        else:
            self._thinking.append(text)

    def _end_thinking(self) -> None:
        if self._thinking is not None:
            self._thinking.finish()
            self._thinking = None

    async def add_text(self, text: str) -> None:
        self._end_thinking()
        self.text += text
        if self._markdown is None:
            self._markdown = Answer("")
            await self.mount(self._markdown)
            self._stream = Markdown.get_stream(self._markdown)
        assert self._stream is not None
        await self._stream.write(visible(text))

    async def add_markdown(self, text: str) -> None:
        """A whole answer at once (replaying a saved session): no stream to set up."""
        self._end_thinking()
        await self._end_text()
        self.text += text
        await self.mount(Answer(visible(text)))

    async def _end_text(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
        self._stream = None
        self._markdown = None

    async def start_tool(self, call_id: str, name: str, arguments: dict[str, Any]) -> ToolCard:
        self._end_thinking()
        await self._end_text()
        card = ToolCard(name, arguments)
        self.cards[call_id] = card
        await self.mount(card)
        return card

    def finish_tool(self, call_id: str, result: Any, error: str | None, duration_s: float) -> None:
        card = self.cards.get(call_id)
        if card is not None:
            card.finish(result, error, duration_s)

    async def finish(self, status: str | None = None, *, error: bool = False, stats: str = "") -> None:
        """End of the turn: close streams, stop spinners, say why it ended (if not done) and what it took."""
        self._end_thinking()
        await self._end_text()
        for card in self.cards.values():
            if card.running:
                card.finish(None, "cancelled", None)
        if status:
            classes = "turn-status -error" if error else "turn-status"
            await self.mount(Static(visible(status), markup=False, classes=classes))
        if stats:
            await self.mount(Static(stats, markup=False, classes="turn-stats"))
