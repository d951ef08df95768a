"""Running a turn in the terminal assistant: the message sent, the agent's events drawn as they stream, approvals.

Apart from the app's composition (:mod:`agentkit.tui.app`) because this is the one place the app and the agent
meet while a request runs: ``run_stream`` events become widgets and status lines, and the agent's ``ask``
callback becomes a modal. :class:`TurnRunner` is a mixin of :class:`~agentkit.tui.AgentkitApp`, which owns
the state it reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any, TypeVar

from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.worker import Worker

from agentkit import Agent, Approval, RunResult, ToolCallRequest, events
from agentkit.assemble import AgentFactory
from agentkit.errors import AgentkitError
from agentkit.toolsets import InputRequest, field_hint, field_value

from .text import visible
from .widgets import AgentTurn, ApprovalScreen, ConfirmScreen, PromptScreen, StatusLine, ToolCard, UserMessage

T = TypeVar("T")

if TYPE_CHECKING:
    from textual.app import App

    _AppBase = App[None]
else:
    _AppBase = object

__all__ = ["TurnRunner", "turn_stats"]

_STOP_MESSAGES = {
    "max_steps": "Stopped: the step limit was reached before a final answer.",
    "repeated_call": "Stopped: the model kept repeating the same tool call.",
    "max_tokens": "Stopped: the answer hit the token limit.",
    "max_output": "Stopped: the output budget is used up.",
}


def turn_stats(result: RunResult, waited_s: float) -> str:
    """What a turn took: time without approval waits, tokens generated, decode rate, tool calls."""
    took = max(0.0, result.timings.total_s - waited_s)
    tokens = result.usage.completion_tokens
    parts = [f"{took:.1f}s", f"{tokens} token{'' if tokens == 1 else 's'}"]
    if tokens and result.timings.generation_s > 0:
        parts.append(f"{tokens / result.timings.generation_s:.0f} tok/s")
    if result.tool_calls:
        n = len(result.tool_calls)
        parts.append(f"{n} tool call{'' if n == 1 else 's'}")
    if waited_s >= 0.05:
        parts.append(f"+{waited_s:.1f}s awaiting approval")
    return " · ".join(parts)


class TurnRunner(_AppBase):
    """The app's side that runs a request (a mixin of :class:`~agentkit.tui.AgentkitApp`)."""

    if TYPE_CHECKING:
        running: bool
        agent: Agent
        agents: AgentFactory
        _worker: Worker[None] | None
        _follow_pending: bool
        _asking: dict[str, float]

        def _update_status(self) -> None: ...

        async def refresh_sessions(self) -> None: ...

    async def send(self, text: str) -> None:
        """Show ``text`` as the person's message and start the agent on it."""
        if self.running:
            self.notify("Still answering; press Esc to cancel first.", severity="warning")
            return
        self.running = True
        chat = self.query_one("#chat", VerticalScroll)
        for welcome in chat.query("#welcome"):
            await welcome.remove()
        turn = AgentTurn()
        await chat.mount_all([UserMessage(text), turn])
        chat.scroll_end(animate=False)
        self._worker = self.run_worker(self._run_turn(text, turn), group="agent", exclusive=True, exit_on_error=False)

    async def _run_turn(self, text: str, turn: AgentTurn) -> None:
        status = self.query_one("#status", StatusLine)
        status.update("generating… (Esc to cancel)")
        chat = self.query_one("#chat", VerticalScroll)
        chat.anchor(False)
        self._follow_pending = True
        self._follow_answer()
        try:
            # Closed as the block ends, whatever ends it (a failure in a widget too), in order, rather than
            # by the event loop's finalizer at some later point.
            async with contextlib.aclosing(self.agent.run_stream(text)) as stream:  # type: ignore[type-var]
                async for event in stream:
                    match event:
                        case events.ThinkingDelta():
                            await turn.add_thinking(event.text)
                        case events.TextDelta():
                            await turn.add_text(event.text)
                        case events.ToolCallStarted():
                            card = await turn.start_tool(event.call_id, event.name, event.arguments)
                            if event.call_id in self._asking:
                                card.waiting(True, since=self._asking[event.call_id])
                            status.update(f"running {visible(event.name)}… (Esc to cancel)")
                        case events.ToolCallFinished():
                            # duration_s is the call's running time: the agent leaves the approval wait out.
                            turn.finish_tool(event.call_id, event.result, event.error, event.duration_s)
                        case events.Notice():
                            severity = {"error": "error", "warning": "warning"}.get(event.level, "information")
                            self.notify(visible(event.message), severity=severity, markup=False)  # type: ignore[arg-type]
                        case events.StepFinished():
                            tps = f" · {event.timings.tokens_per_s:.1f} tok/s" if event.timings.tokens_per_s else ""
                            status.update(f"step {event.step} done · {event.usage.completion_tokens} tokens{tps}")
                        case events.RunFinished(result=result):
                            reason = result.stop_reason
                            await turn.finish(
                                None if result.ok else _STOP_MESSAGES.get(reason, f"Stopped: {reason}."),
                                stats=turn_stats(result, result.timings.approval_s),
                            )
        except asyncio.CancelledError:
            await turn.finish("Cancelled. The conversation so far is saved.")
            self.notify("Generation cancelled.", severity="warning", timeout=3)
            raise
        except AgentkitError as exc:
            await turn.finish(f"Error: {exc}", error=True)
            self.notify(visible(str(exc)), title=type(exc).__name__, severity="error", timeout=10, markup=False)
        except Exception as exc:  # a bug must not kill the app and lose the screen; show it instead
            await turn.finish(f"Internal error: {type(exc).__name__}: {exc}", error=True)
            message = visible(f"{type(exc).__name__}: {exc}")
            self.notify(message, title="Internal error", severity="error", timeout=10, markup=False)
        finally:
            self.running = False
            self._update_status()
            await self.refresh_sessions()

    def _follow_answer(self) -> None:
        """Follow the answer: anchor the view once the conversation overflows it.

        Anchoring earlier would pin a short chat to the bottom of the screen; Textual releases the anchor
        when the reader scrolls up. This runs whenever the chat's content size changes, because markdown
        lays out after the event that added it: checked per event, an answer that overflows in its last
        chunk would stay below the view.
        """
        chat = self.query_one("#chat", VerticalScroll)
        if self._follow_pending and chat.max_scroll_y > 0:
            chat.anchor()
            self._follow_pending = False

    async def _ask(self, request: ToolCallRequest) -> Approval:
        """The agent's ``ask`` callback: a modal; Esc, or cancelling the generation, denies."""
        future: asyncio.Future[Approval] = asyncio.get_running_loop().create_future()

        def decided(answer: Approval | None) -> None:
            if not future.done():
                future.set_result(answer or Approval.DENY)

        screen = ApprovalScreen(request)
        started = time.monotonic()
        # The agent asks before its ToolCallStarted event reaches us, so the card may not exist yet: it
        # looks up _asking when it is made (see _run_turn).
        self._asking[request.call_id] = started
        if (card := self._card(request.call_id)) is not None:
            card.waiting(True, since=started)
        await self.push_screen(screen, callback=decided)
        try:
            return await future
        finally:
            del self._asking[request.call_id]
            if (card := self._card(request.call_id)) is not None:
                card.waiting(False)
            if screen.is_attached and self.screen is screen:
                self.pop_screen()

    async def _elicit(self, request: InputRequest) -> dict[str, Any] | None:
        """An MCP server's form (``elicitation/create``): a yes/no, then a dialog per field. Esc or an empty
        answer skips a field (or takes its default); on a required one it declines the whole form."""
        question = f"MCP server {request.source} asks you:\n{request.message}\n\nAnswer it?"
        if not await self._dialog(ConfirmScreen(question)):
            return None
        properties = request.schema.get("properties") or {}
        required = set(request.schema.get("required") or ())
        answer: dict[str, Any] = {}
        for key, spec in properties.items():
            spec = spec if isinstance(spec, dict) else {}
            error = ""
            for _ in range(3):
                title = f"{spec.get('title') or key} {field_hint(spec, key in required)}"
                text = await self._dialog(PromptScreen(title, error=error))
                if text is None:
                    if "default" in spec:
                        answer[key] = spec["default"]
                    elif key in required:
                        return None
                    break
                try:
                    answer[key] = field_value(spec, text)
                    break
                except ValueError as exc:
                    error = str(exc)
            else:
                return None
        return answer

    async def _dialog(self, screen: ModalScreen[T]) -> T | None:
        """The dialog's answer, awaited from the agent's task (not a worker, which push_screen_wait needs)."""
        future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()

        def answered(answer: T | None) -> None:
            if not future.done():
                future.set_result(answer)

        await self.push_screen(screen, callback=answered)
        try:
            return await future
        finally:
            if screen.is_attached and self.screen is screen:
                self.pop_screen()

    def _card(self, call_id: str) -> ToolCard | None:
        for turn in self.query(AgentTurn):
            if call_id in turn.cards:
                return turn.cards[call_id]
        return None


class Asker:
    """The agent's ``ask`` in the TUI: tool-call approvals, and MCP servers' forms (its ``elicit``)."""

    def __init__(self, app: TurnRunner) -> None:
        self._app = app

    async def __call__(self, request: ToolCallRequest) -> Approval:
        return await self._app._ask(request)

    async def elicit(self, request: InputRequest) -> dict[str, Any] | None:
        return await self._app._elicit(request)
