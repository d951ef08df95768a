"""Text from outside (model output, tool results, web pages, files, server errors) made safe to show on a terminal.

A terminal obeys some characters rather than drawing them: ESC starts sequences that write the clipboard
(OSC 52), set the window title, move the cursor over an approval question or clear the screen; U+009B is a
one-character CSI on many terminals; a lone carriage return lets text overwrite its own line; bidirectional
overrides and isolates make a line display in another order than it reads ("Trojan Source"); line and
paragraph separators and the interlinear annotation marks break lines the layout does not know about.

:func:`terminal_safe` is the one rule for all of them, used by the command line and the terminal assistant
alike. It shows each such character instead of dropping it, because a person approving a tool call must see
exactly what will run: as a backslash escape (``\\x1b``, ``\\u202e``) for the command line, whose output may
be copied or piped, or as a symbol (``␛``, ``<U+202E>``) for the full-screen assistant. Tab and newline
stay, so text still reads as text; ``\\r\\n`` becomes ``\\n``.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["terminal_safe"]

# C0 controls but tab and newline, DEL, C1 controls, the bidirectional marks (LRM, RLM, ALM: an RLM next to a path's
# "/" or a command's digits moves them on the line shown) and embeddings/overrides/isolates, the line
# and paragraph separators, the interlinear annotation marks, and lone surrogates (bytes of a file name that are
# not UTF-8, a server's "\ud800"): a UTF-8 terminal cannot take them, and printing one raised UnicodeEncodeError.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufff9-\ufffb\ud800-\udfff]"
)

_ONE_LINE = re.compile(f"[\t\n{_UNSAFE.pattern[1:-1]}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _symbol(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode "control picture": ␛ for ESC, ␇ for BEL, ␍ for CR
    if code == 0x7F:
        return "␡"
    return f"<U+{code:04X}>"


def terminal_safe(text: str, *, shown_as: Literal["escapes", "symbols"] = "escapes", one_line: bool = False) -> str:
    """``text`` with every character that could act on the terminal or reorder the line shown, not obeyed.

    ``one_line``: newlines and tabs are shown too, for a field that must stay on its line (a model's name in a
    list of names, where a newline would show a name the server does not have).
    """
    if text.isascii() and text.isprintable():
        return text  # the common case, at once
    unsafe = _ONE_LINE if one_line else _UNSAFE
    return unsafe.sub(_escape if shown_as == "escapes" else _symbol, text.replace("\r\n", "\n"))
