"""A tool call's arguments as a person reads them: code highlighted, text as text, values pretty-printed.

The model sends arguments as JSON values; shown as one JSON object, a program becomes a single line full
of ``\\n`` escapes, which is exactly what a person approving it cannot read. Here each argument is shown on
its own: a multi-line string as a block, highlighted when its language can be told (a ``code`` argument
of ``run_python``, a file's ``content`` next to its ``path``, a shell ``command``), other strings as they
are, other values as indented JSON. Everything passes through :func:`~agentkit.tui.text.visible` first.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any

from pygments.lexers import get_lexer_for_filename
from pygments.util import ClassNotFound
from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text

from ..text import one_line, visible

__all__ = ["argument_lexer", "arguments_view", "block_arguments", "short_arguments"]

# Words in a tool's name that say which language its code arguments are in (run_python, exec_sql, ...).
_NAME_LANGUAGES = {
    "python": "python",
    "py": "python",
    "bash": "bash",
    "shell": "bash",
    "sh": "bash",
    "sql": "sql",
    "javascript": "javascript",
    "js": "javascript",
    "node": "javascript",
    "r": "r",
}
_CODE_KEYS = {"code", "program", "script", "source", "snippet"}
_SHELL_KEYS = {"command", "cmd", "shell"}
_PATH_KEYS = ("path", "file", "filename", "file_path", "filepath")
_TEXT_KEYS = {"content", "text", "new_text", "old_text", "new_string", "old_string", "body", "data", "code"}


def _is_block(value: Any) -> bool:
    return isinstance(value, str) and ("\n" in value.strip("\n") or len(value) > 80)


def argument_lexer(tool_name: str, key: str, arguments: dict[str, Any]) -> str | None:
    """The Pygments lexer for one string argument, or None to show it as plain text."""
    if key in _TEXT_KEYS:
        for path_key in _PATH_KEYS:
            path = arguments.get(path_key)
            if isinstance(path, str) and PurePosixPath(path).suffix:
                try:
                    return str(get_lexer_for_filename(PurePosixPath(path).name).aliases[0])
                except (ClassNotFound, IndexError):
                    break
    if key in _CODE_KEYS:
        for word in re.split(r"[_\W]+", tool_name.lower()):
            if word in _NAME_LANGUAGES:
                return _NAME_LANGUAGES[word]
        return "python"  # what a bare "code" argument holds in practice
    if key in _SHELL_KEYS:
        return "bash"
    return None


def short_arguments(arguments: dict[str, Any], limit: int = 80) -> str:
    """One line for a card header: short values in full, blocks as their size."""
    parts = []
    for key, value in arguments.items():
        if _is_block(value):
            lines = value.strip("\n").count("\n") + 1
            shown = f"‹{lines} lines›" if lines > 1 else f"‹{len(value)} chars›"
        elif isinstance(value, str):
            shown = json.dumps(one_line(value, 60), ensure_ascii=False)
        else:
            shown = one_line(json.dumps(value, ensure_ascii=False, default=str), 60)
        parts.append(f"{visible(key)}={shown}")
    return one_line(", ".join(parts), limit)


def block_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments a card shows under its header: multi-line strings and nested values."""
    return {k: v for k, v in arguments.items() if _is_block(v) or isinstance(v, dict | list)}


def _cut(text: str, max_lines: int | None) -> tuple[str, int]:
    lines = text.split("\n")
    if max_lines is None or len(lines) <= max_lines:
        return text, 0
    return "\n".join(lines[:max_lines]), len(lines) - max_lines


def arguments_view(
    tool_name: str,
    arguments: dict[str, Any],
    *,
    dark: bool = True,
    max_lines: int | None = None,
    only: dict[str, Any] | None = None,
) -> RenderableType:
    """Each argument (or each of ``only``) as a labelled block; blocks cut to ``max_lines`` when given."""
    theme = "ansi_dark" if dark else "ansi_light"
    shown = arguments if only is None else only
    items: list[RenderableType] = []
    for key, value in shown.items():
        label = Text(visible(str(key)), style="bold")
        if isinstance(value, str) and not _is_block(value):
            items.append(Text.assemble(label, ": ", visible(value)))
            continue
        if not isinstance(value, str | dict | list):
            items.append(Text.assemble(label, ": ", visible(json.dumps(value, default=str))))
            continue
        if isinstance(value, str):
            text, more = _cut(visible(value.strip("\n")), max_lines)
            lexer = argument_lexer(tool_name, key, arguments)
        else:
            pretty = json.dumps(value, ensure_ascii=False, indent=2, default=str)
            text, more = _cut(visible(pretty), max_lines)
            lexer = "json"
        items.append(label)
        if lexer is None:
            items.append(Text(text))
        else:
            items.append(Syntax(text, lexer, theme=theme, word_wrap=True))
        if more:
            items.append(Text(f"… {more} more line{'s' if more != 1 else ''}", style="dim"))
    return Group(*items)
