"""What each slash command does; the table, parsing and completion are in :mod:`agentkit.tui.commands`.

Kept apart from the app so that the app stays about running turns and sessions; the handlers reach the
app's agent, store and screen through the one object they are given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from agentkit.backends import ListsModels
from agentkit.errors import AgentkitError

from .commands import SlashCommand, help_text
from .export import export_markdown
from .text import visible
from .widgets import AgentTurn, UserMessage

if TYPE_CHECKING:
    from .app import AgentkitApp

__all__ = ["KEYS", "SlashCommands", "with_model"]

KEYS = [
    ("Enter", "send (a line ending in \\ continues instead)"),
    ("Ctrl+J, Shift+Enter", "new line (Shift+Enter where the terminal reports it)"),
    ("Up / Down", "earlier messages, on the first / last line"),
    ("PageUp / PageDown", "scroll the conversation; Ctrl+Home / Ctrl+End: top / end"),
    ("Esc, Ctrl+C", "stop the answer being generated"),
    ("Ctrl+N", "new chat"),
    ("Ctrl+S", "sessions sidebar"),
    ("Ctrl+T", "thinking on/off"),
    ("Ctrl+L", "backend and model"),
    ("F2", "rename this chat"),
    ("Ctrl+P", "command palette (theme, light/dark, ...)"),
    ("Ctrl+Q", "quit"),
]


def with_model(url: str, model: str) -> str:
    """The backend URL ``url`` pointing at ``model`` on the same server."""
    scheme, _, rest = url.partition(":")
    if rest.startswith("//"):
        host = rest[2:].split("/", 1)[0]
        return f"{scheme}://{host}/{model}"
    return f"{scheme}:{model}"


class SlashCommands:
    """The handlers, one method per command (``/name`` runs ``_name``)."""

    def __init__(self, app: AgentkitApp) -> None:
        self.app = app

    async def run(self, command: SlashCommand, argument: str) -> None:
        handler: Callable[[str], Awaitable[None]] = getattr(self, f"_{command.name}")
        await handler(argument)

    async def _help(self, argument: str) -> None:
        await self.app.say(help_text(KEYS))

    async def _tools(self, argument: str) -> None:
        try:
            await self.app.agent.refresh_tools()  # MCP servers start here if no request has started them yet
        except AgentkitError as exc:
            self.app.notify(str(exc), title="MCP", severity="error", markup=False)
        tools = list(self.app.agent.tools.values())
        if not tools:
            await self.app.say("No tools: the model can only answer in text. Start agentkit with --tools to add some.")
            return
        lines = [f"{len(tools)} tool{'' if len(tools) == 1 else 's'} (⚠ asks before it runs: it has side effects):"]
        for t in tools:
            summary = t.description.strip().split("\n", 1)[0]
            lines.append(f"  {'⚠' if t.side_effects else ' '} {t.name}  {summary}")
        await self.app.say("\n".join(lines))

    async def _think(self, argument: str) -> None:
        choice = argument.lower()
        if choice not in ("", "on", "off"):
            self.app.notify(f"/think takes on or off, not {visible(argument)!r}", severity="warning", markup=False)
            return
        self.app.thinking = not self.app.thinking if not choice else choice == "on"
        self.app.notify(f"Thinking {'on' if self.app.thinking else 'off'} from the next message.", timeout=3)

    async def _clear(self, argument: str) -> None:
        await self.app.action_new_session()

    async def _system(self, argument: str) -> None:
        messages = self.app.agent.session.messages
        current = messages[0].get("content") if messages and messages[0].get("role") == "system" else None
        if not argument:
            await self.app.say(
                f"System prompt:\n{current}" if current else "No system prompt. Set one with /system TEXT."
            )
            return
        if self.app.running:
            self.app.notify("Cancel the running answer (Esc) before changing the system prompt.", severity="warning")
            return
        self.app.agents = self.app.agents.with_options(system=argument)  # new chats get it too
        if current is not None:
            messages[0] = {**messages[0], "content": argument}
        else:
            messages.insert(0, {"role": "system", "content": argument})
        self.app.agent.session.messages = messages  # a copy was read: the change is made by assigning it
        saved = self.app._session_saved()
        if saved:
            self.app.store.save(self.app.agent.session)
        # A new agent renders the changed history from scratch (the old one caches the rendered prefix).
        self.app.agent = self.app._make_agent(self.app.agent.session_id if saved else None)
        await self.app.say(f"System prompt set for this chat and new ones:\n{argument}")

    async def _model(self, argument: str) -> None:
        if self.app.running:
            self.app.notify("Cancel the running answer (Esc) before switching the model.", severity="warning")
            return
        if argument:
            error = await self.app.switch_backend(with_model(self.app.backend_url, argument))
            if error:
                self.app.notify(visible(error), severity="error", timeout=8, markup=False)
            return
        if not isinstance(self.app.backend, ListsModels):
            self.app.notify(f"The {self.app.backend.name} backend cannot list models; type a backend URL instead.")
            self.app.action_pick_backend()
            return
        try:
            models = await self.app.backend.list_models()
        except AgentkitError as exc:
            self.app.notify(visible(str(exc)), title="Cannot list models", severity="error", timeout=8, markup=False)
            return
        if not models:
            self.app.notify("The server lists no models; type a backend URL instead.", severity="warning")
            self.app.action_pick_backend()
            return
        choices = [with_model(self.app.backend_url, m) for m in models]
        title = f"{len(models)} model{'' if len(models) == 1 else 's'} on this server"
        self.app.run_worker(
            self.app._pick_backend(self.app.backend_url, choices, title),
            group="dialogs",
            exclusive=True,
        )

    async def _retry(self, argument: str) -> None:
        app = self.app
        if app.running:
            app.notify("Cancel the running answer (Esc) before retrying.", severity="warning")
            return
        bubbles = app.query(UserMessage)
        session = app.agent.session
        messages = session.messages
        users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        last_saved = messages[users[-1]].get("content") if users else None
        if bubbles and bubbles.last().text != last_saved:
            # The last message failed before anything was saved (the agent drops a turn that produced
            # nothing): there is no answer to replace, so send that message again as it was.
            text = bubbles.last().text
        elif isinstance(last_saved, str):
            text = last_saved
            turn = len(users) - 1
            session.conversation = session.conversation[: users[-1]]
            session.thinking[:] = [t for t in session.thinking if t.get("turn", -1) < turn]
            session.tool_calls[:] = [c for c in session.tool_calls if c.get("turn", -1) < turn]
            app.store.save(session)
        else:
            app.notify("There is no message to retry yet.", severity="warning")
            return
        # A new agent on the trimmed session (the old one caches the rendered history) and a redrawn screen.
        await app.switch_session(session.id if app.store.exists(session.id) else None)
        await app.send(text)

    async def _export(self, argument: str) -> None:
        session = self.app.agent.session
        if not any(m.get("role") == "user" for m in session.messages):
            self.app.notify("Nothing to export yet: this chat is empty.", severity="warning")
            return
        try:
            path = export_markdown(session, argument)
        except OSError as exc:
            reason = f"{exc.strerror} ({exc.filename})" if exc.strerror and exc.filename else str(exc)
            self.app.notify(f"Cannot export: {reason}", severity="error", timeout=8, markup=False)
            return
        self.app.notify(f"Exported to {path}", timeout=5, markup=False)

    async def _copy(self, argument: str) -> None:
        answers = [t.text for t in self.app.query(AgentTurn) if t.text.strip()]
        if not answers:
            self.app.notify("There is no answer to copy yet.", severity="warning")
            return
        self.app.copy_to_clipboard(answers[-1])
        self.app.notify(
            f"Copied the last answer ({len(answers[-1])} characters). Terminals without OSC 52 ignore this; "
            "use /export then.",
            timeout=4,
        )
