"""Text from outside the app (model output, tool results, server errors, session files) made safe to draw.

Textual writes a widget's characters to the terminal as they are: an ESC in a model's answer would reach the
terminal as an escape sequence (set the window title, clear the screen, write the clipboard with OSC 52),
and a string handed to a markup-parsing widget (a ``Collapsible`` title, a notification) can add styles,
links or ``@click`` actions. So every piece of outside text goes through :func:`visible` (control
characters become visible symbols) and reaches widgets as :func:`literal` content, never as markup.

Control characters are shown, not dropped, because a person approving a tool call must see exactly what
will run; bidirectional overrides are shown by name for the same reason (a "Trojan Source" line reads in
another order than it runs).
"""

from __future__ import annotations

import re

from textual.content import Content

__all__ = ["literal", "one_line", "visible"]

# C0 controls except tab and newline, DEL, C1 controls; bidi embeddings/overrides/isolates; line and
# paragraph separators (which some terminals treat as line breaks the layout does not know about).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufff9-\ufffb]")


def _show(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode "control picture": ␛ for ESC, ␇ for BEL, ␍ for CR
    if code == 0x7F:
        return "␡"
    return f"<U+{code:04X}>"


def visible(text: str) -> str:
    """``text`` with every character that could act on the terminal or reorder the line shown as a symbol."""
    return _UNSAFE.sub(_show, text)


def one_line(text: str, limit: int) -> str:
    """Whitespace runs (newlines included) as one space, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(visible(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def literal(text: str) -> Content:
    """Outside text as widget content that is never parsed as markup."""
    return Content(visible(text))
