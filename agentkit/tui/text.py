"""Text from outside the app (model output, tool results, server errors, session files) made safe to draw.

Textual writes a widget's characters to the terminal as they are: an ESC in a model's answer would reach the
terminal as an escape sequence (set the window title, clear the screen, write the clipboard with OSC 52),
and a string handed to a markup-parsing widget (a ``Collapsible`` title, a notification) can add styles,
links or ``@click`` actions. So every piece of outside text goes through :func:`visible` (the command
line's :func:`agentkit.display.terminal_safe`, with control characters shown as symbols) and reaches widgets as
:func:`literal` content, never as markup.
"""

from __future__ import annotations

from textual.content import Content

from agentkit.display import terminal_safe

__all__ = ["literal", "one_line", "visible"]


def visible(text: str) -> str:
    """``text`` with every character that could act on the terminal or reorder the line shown as a symbol."""
    return terminal_safe(text, shown_as="symbols")


def one_line(text: str, limit: int) -> str:
    """Whitespace runs (newlines included) as one space, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(visible(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def literal(text: str) -> Content:
    """Outside text as widget content that is never parsed as markup."""
    return Content(visible(text))
