"""A saved conversation drawn again: the chat's widgets rebuilt from a session's messages and records.

Its own module because it reads the session file's shape (messages, thinking by turn, call records with their
durations) and nothing of the live app: opening a session draws the same cards a live turn drew, from data.
"""

from __future__ import annotations

from typing import Any

from textual.containers import VerticalScroll

from agentkit import Session

from .widgets import AgentTurn, UserMessage

__all__ = ["replay"]


def _tool_error(content: Any) -> str | None:
    if isinstance(content, dict) and set(content) == {"error"}:
        return str(content["error"])
    return None


async def replay(session: Session, chat: VerticalScroll) -> None:
    """Rebuild the screen of a saved conversation from its messages, thinking and call records."""
    results = {m.get("tool_call_id"): m.get("content") for m in session.messages if m.get("role") == "tool"}
    durations = {r.get("call_id"): r.get("duration_s") for r in session.tool_calls}
    thinking = {t.get("turn"): str(t.get("text", "")) for t in session.thinking}
    turn_index, turn = -1, None
    turns: list[AgentTurn] = []
    for message in session.messages:
        role = message.get("role")
        content = message.get("content")
        if role == "user":
            turn_index += 1
            turn = None
            text = (
                content
                if isinstance(content, str)
                else "\n".join(str(p.get("text", "")) for p in content or [] if isinstance(p, dict))
            )
            await chat.mount(UserMessage(text))
        elif role == "assistant":
            if turn is None:
                turn = AgentTurn()
                turns.append(turn)
                await chat.mount(turn)
                if thinking.get(turn_index):
                    await turn.add_thinking(thinking[turn_index], live=False)
            if isinstance(content, str) and content.strip():
                await turn.add_markdown(content)
            for call in message.get("tool_calls", ()):
                fn = call.get("function", {})
                args = fn.get("arguments", {})
                card = await turn.start_tool(
                    call.get("id", ""), fn.get("name", "?"), args if isinstance(args, dict) else {}
                )
                result = results.get(call.get("id"))
                error = _tool_error(result)
                card.finish(None if error else result, error, durations.get(call.get("id")))
    for t in turns:
        await t.finish()
