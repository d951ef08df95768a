"""A saved conversation as a Markdown document (``/export``): readable on its own, pasteable anywhere.

Tool calls come out as their arguments and results in fenced blocks, so the reader sees what the agent
did; thinking goes into a folded ``<details>`` block. The fences are longer than any run of backticks in
the text they hold, so a result that itself contains a fence cannot end the block early.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from agentkit import Session
from agentkit.sessions import atomic_write_text

__all__ = ["export_markdown", "fence", "session_markdown"]


def fence(text: str, info: str = "") -> str:
    """``text`` in a fenced code block whose fence no backtick run inside it can close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{text}\n{ticks}"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts: keep the text, name the rest
        return "\n".join(
            str(p.get("text", "")) if p.get("type") == "text" else f"[{p.get('type', 'attachment')}]"
            for p in content
            if isinstance(p, dict)
        )
    return "" if content is None else json.dumps(content, ensure_ascii=False, indent=2, default=str)


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2, default=str)


def session_markdown(session: Session) -> str:
    """The conversation in ``session`` as Markdown, turn by turn."""
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(session.created_at))
    model = f"{session.model} ({session.backend})" if session.model else session.backend or "unknown model"
    parts = [f"# {session.title or 'Chat'}", f"*{created} · {model} · session `{session.id}`*"]
    thinking = {t.get("turn"): str(t.get("text", "")) for t in session.thinking}
    turn = -1
    for message in session.messages:
        role = message.get("role")
        if role == "user":
            turn += 1
            parts.append("## You\n\n" + _text(message.get("content")))
        elif role == "assistant":
            if turn in thinking:
                body = thinking.pop(turn)
                parts.append(f"<details><summary>Thinking</summary>\n\n{fence(body)}\n\n</details>")
            text = _text(message.get("content")).strip()
            if text:
                parts.append("## Gemma\n\n" + text)
            for call in message.get("tool_calls") or ():
                fn = call.get("function", {})
                arguments = fn.get("arguments", {})
                parts.append(f"**Tool call** `{fn.get('name', '?')}`\n\n" + fence(_value(arguments), "json"))
        elif role == "tool":
            content = message.get("content")
            if isinstance(content, dict) and set(content) == {"error"}:
                parts.append(f"**Tool error** ({message.get('name', 'tool')})\n\n" + fence(str(content["error"])))
            else:
                parts.append(f"**Result** ({message.get('name', 'tool')})\n\n" + fence(_value(content)))
    return "\n\n".join(parts) + "\n"


def export_markdown(session: Session, target: str = "") -> Path:
    """Write the session as Markdown (atomically) to ``target``, a file or a folder; the path written.

    With no target, or a folder, the file is named after the title and the session id, so exporting two
    chats never overwrites one with the other; a named file is replaced, as the person asked.
    """
    slug = re.sub(r"[^A-Za-z0-9]+", "-", session.title).strip("-").lower()[:40]
    name = f"{slug or 'chat'}-{session.id}.md"
    path = Path(target).expanduser() if target else Path(name)
    if path.is_dir():
        path = path / name
    if not path.parent.is_dir():
        raise NotADirectoryError(f"the folder {path.parent} does not exist; create it or give another path")
    atomic_write_text(path, session_markdown(session), private=False)
    return path.resolve()
