"""``agentkit sessions``: everything a run did stays inspectable afterwards (list, show, export, rename, delete)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agentkit import Session, SessionStore
from agentkit.errors import SessionCorrupt, UserError

from .common import (
    EXIT_OK,
    format_arguments,
    preview,
    require_utf8,
    resolve_session_id,
    safe_json,
    terminal_safe,
    to_jsonable,
)

__all__ = ["format_time", "message_text", "sessions_command"]


_LIST_COLUMNS = ("id", "title", "updated", "model", "messages")


def format_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def message_text(message: dict[str, Any]) -> str:
    """The text of an OpenAI-style message whose content may be a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    if content is None:
        return ""
    return json.dumps(to_jsonable(content), ensure_ascii=False)


def _show(console: Console, session: Session, *, with_thinking: bool) -> None:
    """The conversation for a person; every text in it came from outside, so all of it is terminal-safe."""
    console.print(Text(terminal_safe(session.title) or "(untitled)", style="bold"))
    console.print(
        Text(
            terminal_safe(
                # As the TUI's status line says it: "backend/model" read "vllm//home/me/gemma" for a local path.
                f"{session.id} · {session.model} ({session.backend}) · updated {format_time(session.updated_at)}"
            ),
            style="dim",
        )
    )
    thinking = {t.get("turn"): t.get("text", "") for t in session.thinking}
    turn = -1
    for msg in session.messages:
        role = msg.get("role")
        if role in ("system", "developer"):
            console.print(Panel(Text(_safe_text(msg)), title="system", title_align="left", border_style="dim"))
        elif role == "user":
            turn += 1
            # Text, not a string: a string is read as Rich markup, and "list[int]" or "[b]" vanished from it.
            said = Text("\n".join(filter(None, [*_attachments(msg), _safe_text(msg)])))
            console.print(Panel(said, title="you", title_align="left", border_style="blue"))
            if with_thinking and thinking.get(turn):
                console.print(Text(terminal_safe(str(thinking[turn])), style="dim italic"))
        elif role == "assistant":
            for call in msg.get("tool_calls", ()):
                fn = call.get("function", {})
                args = fn.get("arguments", {})
                console.print(
                    Text.assemble(
                        ("⚙ ", "cyan"),
                        (terminal_safe(str(fn.get("name", "?"))), "bold cyan"),
                        f"({format_arguments(args) if isinstance(args, dict) else terminal_safe(str(args))})",
                    )
                )
            text = _safe_text(msg)
            if text.strip():
                # No hyperlinks: a terminal link shows its text and hides where it goes ("[your bank](https://
                # evil.example)"), and the answer is the model's, steerable by any page it read; the URL is printed.
                answer = Markdown(text, hyperlinks=False)
                console.print(Panel(answer, title="agent", title_align="left", border_style="green"))
        elif role == "tool":
            content = msg.get("content")
            failed = isinstance(content, dict) and set(content) == {"error"}
            style = "red" if failed else "dim"
            name = terminal_safe(str(msg.get("name", "tool")))
            console.print(Text(f"  ↳ {name}: {preview(content, 160)}", style=style))


def _attachments(message: dict[str, Any]) -> list[str]:
    """One line per picture or clip of a message (``agentkit run --image`` keeps the path): shown with only its
    text, the question ("What is this?") read as if nothing had come with it."""
    content = message.get("content")
    lines = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and part.get("type") in ("image", "audio", "video"):
            where = part.get("path") or part.get("url")
            what = where if isinstance(where, str) else "embedded in the session"
            lines.append(terminal_safe(f"[{part['type']}: {what}]"))
    return lines


def _safe_text(message: dict[str, Any]) -> str:
    return terminal_safe(message_text(message))


def _warn_unreadable(store: SessionStore, problems: dict[str, str]) -> None:
    """Name the files ``list`` skipped (corrupt, foreign, not a file) and why, so none silently disappears."""
    if not problems:
        return
    print(f"{len(problems)} file(s) in {terminal_safe(str(store.root))} are not readable sessions:", file=sys.stderr)
    for name, why in problems.items():
        print(f"  {terminal_safe(name)}: {terminal_safe(why)}", file=sys.stderr)


def _field(text: str) -> str:
    """One tab-separated field: terminal-safe, and a tab or newline in it cannot split the line."""
    return terminal_safe(text).replace("\t", "\\t").replace("\n", "\\n")


class PipeConsole(Console):
    """Rich ends a broken pipe (``show ID | head``) with exit 1; raise it so ``main`` exits 0 as for ``run``."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def sessions_command(args: argparse.Namespace, store: SessionStore | None = None) -> int:
    store = store or SessionStore()
    console = PipeConsole(highlight=False, soft_wrap=False)
    if getattr(args, "id", None):
        args.id = resolve_session_id(store, args.id)  # a unique start of an id names the session too
    if args.action == "list":
        infos, problems = store.scan()
        _warn_unreadable(store, problems)
        if args.json:
            print(safe_json([to_jsonable(i) for i in infos], indent=2))
            return EXIT_OK
        if not infos:
            print(f"no saved sessions in {terminal_safe(str(store.root))}", file=sys.stderr)
            return EXIT_OK
        if not sys.stdout.isatty():
            # Piped: one tab-separated line per session, never wrapped, for cut/awk/grep.
            for i in infos:
                fields = [i.id, i.title, format_time(i.updated_at), i.model, str(i.message_count)]
                print("\t".join(_field(f) for f in fields))
            return EXIT_OK
        table = Table(box=None, header_style="bold", pad_edge=False)
        # One line per session even at 80 columns: the title takes the room left and is cut with an ellipsis
        # (the model column is left out below 100 columns); the id, which people copy, is cut last.
        cols = [c for c in _LIST_COLUMNS if c != "model" or console.width >= 100]
        rows = [
            {
                "id": i.id,
                "title": terminal_safe(" ".join(i.title.split())) or "(untitled)",
                "updated": format_time(i.updated_at),
                "model": terminal_safe(i.model),
                "messages": str(i.message_count),
            }
            for i in infos
        ]
        widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
        if "model" in widths:
            widths["model"] = min(widths["model"], 24)
        others = sum(w for c, w in widths.items() if c != "title") + 2 * (len(cols) - 1)
        widths["title"] = max(10, min(widths["title"], console.width - others))
        for col in cols:
            table.add_column(col, no_wrap=True, overflow="ellipsis", width=widths[col])
        for row in rows:
            table.add_row(*(Text(row[c]) for c in cols))  # Text: a title's "[b]" is not markup
        console.print(table)
    elif args.action == "show":
        _show(console, store.load(args.id), with_thinking=args.thinking)
    elif args.action == "delete":
        try:
            store.delete(args.id)
        except SessionCorrupt as exc:
            path = store.root / f"{args.id}.json"
            hint = f"Only agentkit's own session files are deleted; to remove it: rm {path}"
            raise SessionCorrupt(f"{exc}. {hint}") from exc
        print(f"deleted session {args.id}", file=sys.stderr)
    elif args.action == "export":
        if args.output and Path(args.output).is_dir():
            raise UserError(f"{args.output} is a folder; give a file name, e.g. -o {Path(args.output) / 'chat.json'}")
        try:
            data = store.export(args.id, args.output)
        except OSError as exc:
            raise UserError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        if args.output:
            print(f"wrote {args.output}", file=sys.stderr)
        else:
            print(safe_json(data, indent=2, default=str))
    elif args.action == "rename":
        require_utf8(args.title, "the new title")
        if not args.title.strip():
            raise UserError('the new title is empty: agentkit sessions rename ID "a title"')
        session = store.rename(args.id, args.title)
        print(f"renamed {session.id} to {terminal_safe(repr(session.title))}", file=sys.stderr)
    return EXIT_OK
