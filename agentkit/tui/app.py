"""The agentkit terminal assistant: a Textual app over one :class:`~agentkit.Agent`.

The app talks to the agent only through ``run_stream`` events, run in a Textual worker so the screen stays
live; Esc cancels that worker, and the agent saves the conversation as it unwinds. Approvals for
side-effecting calls come through the agent's ``ask`` callback, which opens a modal and awaits the answer.
Sessions live in a :class:`~agentkit.SessionStore`; switching one builds a new agent that resumes it.

This module composes the screen and holds its state, bindings, actions and sessions; running a request is
:mod:`agentkit.tui.turns`, drawing a saved conversation again :mod:`agentkit.tui.replay`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import Worker

from agentkit import Agent, AgentOptions, Backend, SessionStore
from agentkit.assemble import AgentFactory, build_backend
from agentkit.backends import ListsModels, is_server_address
from agentkit.errors import AgentkitError, SessionError

from .commands import SlashCommand, as_message, parse
from .history import InputHistory
from .replay import replay
from .slash import SlashCommands
from .text import visible
from .turns import Asker, TurnRunner
from .turns import turn_stats as turn_stats  # importable here as before
from .widgets import (
    CommandMenu,
    ConfirmScreen,
    InfoMessage,
    PromptArea,
    PromptScreen,
    SessionsSidebar,
    StatusLine,
)

__all__ = ["AgentkitApp"]

SIDEBAR_MIN_WIDTH = 100  # columns: below this the conversation needs the room more than the session list

WELCOME = Text.assemble(
    ("◆ agentkit\n\n", "bold"),
    "Chat with Gemma 4. It uses the tools you enabled and asks before anything with side effects.\n\n",
    ("Enter sends · Ctrl+J new line · ↑ history · / commands · Esc cancels", "dim"),
)


class AgentkitApp(TurnRunner, App[None]):
    """Chat with a Gemma 4 agent; sessions on the left, the conversation in the middle."""

    TITLE = "agentkit"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", tooltip="Stop the answer being generated"),
        Binding("ctrl+n", "new_session", "New"),
        Binding("ctrl+s", "toggle_sidebar", "Sessions"),
        Binding("ctrl+t", "toggle_thinking", "Thinking"),
        Binding("ctrl+l", "pick_backend", "Model"),
        Binding("f2", "rename_session", "Rename"),
    ]

    running: reactive[bool] = reactive(False, bindings=True)
    thinking: reactive[bool] = reactive(False, init=False)

    def __init__(
        self,
        backend: Backend,
        *,
        options: AgentOptions | None = None,
        store: SessionStore | None = None,
        session_id: str | None = None,
        backend_url: str | None = None,
        backend_choices: Sequence[str] = (),
        backend_factory: Callable[[str], Backend] = build_backend,
        show_sidebar: bool | None = None,
        history_path: Path | None = None,
        welcome: Text | None = None,
        prompt: str = "",
    ) -> None:
        """``options`` are the settings of every agent the app makes (tools, toolsets, system prompt, ...); the
        app sets ``store``, ``session_id``, ``ask`` and ``thinking`` itself. ``backend_factory`` builds the
        backend a URL typed in the model picker names. ``history_path`` is where sent messages are kept for
        Up/Down: by default ``input_history.json`` next to the sessions folder (agentkit's data directory, or
        ``AGENTKIT_HOME``). ``welcome`` replaces the card an empty chat shows (``agentkit demo --tui`` says there
        that it is a demo), and ``prompt`` is put in the message box at start, ready to send."""
        super().__init__()
        self._welcome = welcome if welcome is not None else WELCOME
        self._initial_prompt = prompt
        options = options if options is not None else AgentOptions()
        # The backend and settings every agent of this app is made from; its toolsets are stopped when it closes.
        self.agents = AgentFactory(backend, options)
        self.backend_url = backend_url or f"{backend.name}:{backend.model}"
        self.backend_choices = [c for c in dict.fromkeys([self.backend_url, *backend_choices]) if c]
        self.backend_factory = backend_factory
        self.store = store if store is not None else options.store if options.store is not None else SessionStore()
        self._initial_session = session_id
        self._show_sidebar = show_sidebar
        self._worker: Worker[None] | None = None
        self._follow_pending = False  # anchor the chat to its end once it overflows (see _follow_answer)
        self.history = InputHistory(history_path or self.store.root.parent / "input_history.json")
        # Calls whose approval dialog is open, so a card made after the dialog opened shows it is waiting.
        self._asking: dict[str, float] = {}  # call id -> when its approval dialog opened
        self.slash = SlashCommands(self)
        self.set_reactive(AgentkitApp.thinking, options.thinking)
        self.agent = self._make_agent(None)

    @property
    def backend(self) -> Backend:
        return self.agents.backend

    # -- layout ---------------------------------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A notice, its text shown as written: notices carry outside text (session titles, server errors), and
        as markup a title such as ``[/b]`` ended the app (MarkupError) while one with ``[@click=...]`` added an
        action; escapes in it reached the terminal. Markup is off unless asked for, and control characters are
        always shown as symbols."""
        super().notify(visible(message), title=visible(title), severity=severity, timeout=timeout, markup=markup)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        with Horizontal(id="body"):
            yield SessionsSidebar(id="sidebar")
            with Vertical(id="main"):
                yield VerticalScroll(Static(self._welcome, id="welcome"), id="chat")
                yield StatusLine(id="status")
                menu = CommandMenu()
                yield menu
                yield PromptArea(self.history, menu, placeholder="Message Gemma… (/ for commands)", id="prompt")
        yield Footer(compact=True)

    async def on_mount(self) -> None:
        self._fit_sidebar(self.size.width)
        self.watch(self.query_one("#chat", VerticalScroll), "virtual_size", self._follow_answer, init=False)
        if self._initial_session:
            await self.switch_session(self._initial_session)
        else:
            await self.refresh_sessions()
        self._update_status()
        prompt = self.query_one("#prompt", PromptArea)
        if self._initial_prompt:
            prompt.load_text(self._initial_prompt)
            prompt.move_cursor(prompt.document.end)
        prompt.focus()
        self.run_worker(self._check_backend(), group="check", exit_on_error=False)
        if self.history.problem:
            self.notify(self.history.problem, title="History", severity="warning", markup=False)

    async def _check_backend(self) -> None:
        """Say at once when the backend cannot answer (a server not started, a model not pulled): found only at
        the first message, a person typed it for nothing and did not know Ctrl+L could pick another."""
        backend = self.backend
        try:
            await backend.check()
        except AgentkitError as exc:
            if backend is self.backend:  # not replaced in the picker meanwhile
                message = visible(f"{exc}\nCtrl+L picks another backend.")
                self.notify(message, title=type(exc).__name__, severity="error", timeout=20, markup=False)

    async def on_unmount(self) -> None:
        await self.agents.aclose()

    # -- agent and sessions ---------------------------------------------------------------------------

    def _make_agent(self, session_id: str | None) -> Agent:
        return self.agents.agent(thinking=self.thinking, ask=Asker(self), store=self.store, session_id=session_id)

    @property
    def session_id(self) -> str:
        return self.agent.session_id

    def _session_saved(self) -> bool:
        return self.store.exists(self.agent.session_id)

    async def refresh_sessions(self) -> None:
        try:
            infos = self.store.list()
        except SessionError as exc:
            self.notify(str(exc), title="Sessions", severity="error", markup=False)
            infos = []
        await self.query_one(SessionsSidebar).show_sessions(infos, self.agent.session_id)
        self.sub_title = visible(self.agent.session.title) or "new chat"

    async def switch_session(self, session_id: str | None) -> None:
        """Open a saved session (or a new one) in place of the current conversation."""
        if self.running:
            self.notify("An answer is being generated; press Esc to cancel it first.", severity="warning")
            return
        try:
            agent = self._make_agent(session_id)
        except AgentkitError as exc:
            self.notify(str(exc), title="Cannot open session", severity="error", timeout=8, markup=False)
            return
        self.agent = agent
        chat = self.query_one("#chat", VerticalScroll)
        chat.anchor(False)
        self._follow_pending = False
        await chat.remove_children()
        if session_id is None:
            await chat.mount(Static(self._welcome, id="welcome"))
        else:
            await replay(agent.session, chat)
        chat.scroll_end(animate=False)
        await self.refresh_sessions()
        self._update_status()

    # -- running a turn -------------------------------------------------------------------------------

    @on(PromptArea.Submitted)
    async def _submitted(self, event: PromptArea.Submitted) -> None:
        parsed = parse(event.text)
        if isinstance(parsed, str):  # an unknown command: say so and leave the text to be fixed
            self.notify(parsed, severity="warning", markup=False)
            return
        if parsed is None and self.running:  # the text stays in the box, to be sent when the answer is done
            self.notify("Still answering; press Esc to cancel first.", severity="warning")
            return
        self.history.add(event.text.strip("\r\n").rstrip())
        if self.history.problem:
            self.notify(self.history.problem, title="History", severity="warning", markup=False)
            self.history.problem = None
        if parsed is None:
            event.prompt.set_text("")
            await self.send(as_message(event.text))
        else:
            event.prompt.set_text("")
            await self.run_command(*parsed)

    def _update_status(self) -> None:
        n = len(self.agents.options.tools)
        tools = f"{n} tool{'' if n == 1 else 's'}" if n else "no tools"
        state = "generating…" if self.running else "ready"
        thinking = "on" if self.thinking else "off"
        for status in self.query("#status").results(StatusLine):
            compiling = getattr(self.backend, "compile_status", "")  # in-process engines compile in the background
            busy = isinstance(compiling, str) and compiling.startswith("compiling")
            extra = " │ compiling in the background" if busy else ""
            engine = visible(self.backend.name)
            status.show(state, visible(self.backend.model), f" ({engine}) │ thinking {thinking} │ {tools}{extra}")

    # -- actions --------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.running  # Esc shows in the footer only while there is something to cancel
        return True

    def action_cancel(self) -> None:
        if self._worker is not None and self.running:
            self._worker.cancel()

    def action_help_quit(self) -> None:
        """Ctrl+C: while an answer streams it stops it, as Ctrl-C does in ``agentkit run``, ``llm`` or aider (Esc
        too); otherwise Textual's hint that Ctrl+Q quits. A selection in the message box is copied first."""
        if self.running:
            self.action_cancel()
            self.notify("Stopped. (Esc stops an answer too; Ctrl+Q quits.)", timeout=3)
            return
        super().action_help_quit()

    async def action_new_session(self) -> None:
        await self.switch_session(None)
        self.query_one("#prompt", PromptArea).focus()

    def _fit_sidebar(self, width: int) -> None:
        """The sidebar shows where there is room for it (100 columns) unless the person or the caller chose."""
        show = self._show_sidebar if self._show_sidebar is not None else width >= SIDEBAR_MIN_WIDTH
        self.query_one(SessionsSidebar).display = show

    def on_resize(self, event: events.Resize) -> None:
        # Decided at start only, a sidebar opened at 120 columns kept 25 of 60 after the terminal shrank.
        self._fit_sidebar(event.size.width)

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one(SessionsSidebar)
        sidebar.display = not sidebar.display
        self._show_sidebar = sidebar.display  # the person's choice holds at any width from now on
        if sidebar.display:
            sidebar.query_one("ListView").focus()
        else:
            self.query_one("#prompt", PromptArea).focus()

    def action_toggle_thinking(self) -> None:
        self.thinking = not self.thinking

    def watch_thinking(self, value: bool) -> None:
        self.agent.thinking = value  # applies from the next request on; the current one keeps its mode
        self._update_status()

    @work(group="dialogs")
    async def action_rename_session(self, session_id: str | None = None) -> None:
        target = session_id or self.agent.session_id
        if not self.store.exists(target):
            self.notify("Send a first message: empty chats are not saved yet.", severity="warning")
            return
        current = self.store.load(target).title
        title = await self.push_screen_wait(PromptScreen("Rename session", current, placeholder="a short title"))
        if not title:
            return
        self.store.rename(target, title)
        if target == self.agent.session_id:
            self.agent.session.title = title  # the agent saves its own copy after every step
        await self.refresh_sessions()

    @work(group="dialogs")
    async def action_delete_session(self, session_id: str | None = None) -> None:
        target = session_id or self.agent.session_id
        if not self.store.exists(target):
            self.notify("This chat is not saved, so there is nothing to delete.", severity="warning")
            return
        title = self.store.load(target).title or target
        if not await self.push_screen_wait(ConfirmScreen(f"Delete “{title}”? This cannot be undone.")):
            return
        if target == self.agent.session_id and self.running:
            self.notify("Cancel the running answer (Esc) before deleting its session.", severity="warning")
            return
        self.store.delete(target)
        if target == self.agent.session_id:
            await self.switch_session(None)
        else:
            await self.refresh_sessions()
        self.notify(f"Deleted “{title}”.", timeout=3, markup=False)

    @work(group="dialogs", exclusive=True)
    async def action_pick_backend(self) -> None:
        await self._pick_backend(self.backend_url, self.backend_choices, "Backend and model")

    async def _pick_backend(self, value: str, choices: list[str], title: str) -> None:
        """Ask for a backend URL until one works or the person gives up (Esc)."""
        if self.running:
            self.notify("Cancel the running answer (Esc) before switching the model.", severity="warning")
            return
        error = ""
        while True:
            url = await self.push_screen_wait(
                PromptScreen(
                    title,
                    value,
                    choices=choices,
                    hint="ollama://HOST:11434/MODEL · vllm://HOST:8000/MODEL · transformers:MODEL",
                    error=error,
                )
            )
            if not url or url == self.backend_url:
                return
            if is_server_address(url):
                # A server without a model (vllm://HOST:8000): offer what it serves rather than an error.
                listed = await self._server_models(url)
                if isinstance(listed, str):
                    error, value = listed, url
                    continue
                choices = [f"{url.rstrip('/')}/{model}" for model in listed]
                title = f"{len(listed)} model{'' if len(listed) == 1 else 's'} on {url.rstrip('/')}"
                error, value = "", choices[0]
                continue
            # On failure ask again with the typed URL kept and the reason in view: closing the dialog would
            # send the person's next attempt to the model as a chat message.
            error = await self.switch_backend(url) or ""
            if not error:
                return
            value = url

    async def _server_models(self, url: str) -> list[str] | str:
        """The models the server at ``url`` (no model in it) serves, or why they could not be listed."""
        try:
            backend = self.backend_factory(url.rstrip("/") + "/MODEL")  # listing needs only the address
        except (AgentkitError, ImportError) as exc:
            return f"Cannot list models: {exc}"
        try:
            if not isinstance(backend, ListsModels):
                return f"The {backend.name} backend cannot list its models; add the model to the URL"
            models = await backend.list_models()
        except AgentkitError as exc:
            return f"Cannot list models: {exc}"
        finally:
            await backend.aclose()
        return models or f"{url} lists no models; add the model to the URL"

    async def switch_backend(self, url: str) -> str | None:
        """Use the backend at ``url`` from the next message on, keeping the conversation; the error, if any."""
        try:
            backend = self.backend_factory(url)
        except (AgentkitError, ImportError) as exc:
            return f"Backend not changed: {exc}"
        try:
            self.notify(f"Connecting to {visible(url)}…", timeout=2, markup=False)
            await backend.check()
        except AgentkitError as exc:
            await backend.aclose()
            return f"Backend not changed: {exc}"
        old = self.backend
        self.agents, self.backend_url = self.agents.with_backend(backend), url
        self.backend_choices = list(dict.fromkeys([url, *self.backend_choices]))
        await old.aclose()
        # Keep the conversation: resume the saved session on the new backend.
        self.agent = self._make_agent(self.agent.session_id if self._session_saved() else None)
        self._update_status()
        self.notify(visible(f"Now using {backend.name} · {backend.model}"), timeout=3, markup=False)
        return None

    # -- slash commands -------------------------------------------------------------------------------

    async def run_command(self, command: SlashCommand, argument: str) -> None:
        """Run a slash command from the prompt (see :mod:`agentkit.tui.slash`)."""
        await self.slash.run(command, argument)

    async def say(self, text: str) -> None:
        """Show a command's answer in the conversation (not sent to the model, not saved)."""
        chat = self.query_one("#chat", VerticalScroll)
        for welcome in chat.query("#welcome"):
            await welcome.remove()
        await chat.mount(InfoMessage(text))
        chat.scroll_end(animate=False)

    @on(PromptArea.Scroll)
    def _scroll(self, event: PromptArea.Scroll) -> None:
        chat = self.query_one("#chat", VerticalScroll)
        if event.where == "page_up":
            chat.scroll_page_up(animate=False)
        elif event.where == "page_down":
            chat.scroll_page_down(animate=False)
        elif event.where == "home":
            chat.scroll_home(animate=False)
        else:
            chat.scroll_end(animate=False)

    # -- sidebar messages -----------------------------------------------------------------------------

    @on(SessionsSidebar.Chosen)
    async def _chosen(self, event: SessionsSidebar.Chosen) -> None:
        if event.session_id != self.agent.session_id or event.session_id is None:
            await self.switch_session(event.session_id)
        self.query_one("#prompt", PromptArea).focus()

    @on(SessionsSidebar.RenameRequested)
    def _rename_requested(self, event: SessionsSidebar.RenameRequested) -> None:
        self.action_rename_session(event.session_id)

    @on(SessionsSidebar.DeleteRequested)
    def _delete_requested(self, event: SessionsSidebar.DeleteRequested) -> None:
        self.action_delete_session(event.session_id)

    # -- command palette ------------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield SystemCommand("New chat", "Start a new session (Ctrl+N)", self.action_new_session)
        yield SystemCommand("Sessions", "Show or hide the sessions sidebar (Ctrl+S)", self.action_toggle_sidebar)
        yield SystemCommand(
            "Thinking: turn " + ("off" if self.thinking else "on"),
            "Let the model think before it answers (Ctrl+T)",
            self.action_toggle_thinking,
        )
        yield SystemCommand("Backend and model", "Pick the backend URL and model (Ctrl+L)", self.action_pick_backend)
        yield SystemCommand("Rename session", "Give this chat a title (F2)", self.action_rename_session)
        yield SystemCommand("Delete session", "Delete this chat from disk", self.action_delete_session)
        if self.running:
            yield SystemCommand("Cancel", "Stop the answer being generated (Esc)", self.action_cancel)
        yield from super().get_system_commands(screen)
