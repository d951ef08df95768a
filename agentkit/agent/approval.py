"""Who may run a tool call, and running the calls of a step: approval policies, people asked, timeouts, errors.

Separate from the loop (:mod:`agentkit.agent.turn`) because it is its own concern: the loop hands over the calls
the model made and gets back one :class:`~agentkit.events.ToolCallFinished` per call, whatever happened — an
unknown tool, bad arguments, a denial, an exception or a cancellation all become the record the model is told
about. Approval waits are timed apart, so durations measure the tools and not the person deciding.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentkit import gemma4
from agentkit.errors import AgentkitError, ToolError
from agentkit.events import ToolCallFinished, ToolCallStarted
from agentkit.messages import Conversation, Message
from agentkit.tools.provenance import UrlTrust
from agentkit.tools.runtime import CallContext, Tool, error_text

if TYPE_CHECKING:
    from agentkit.output import OutputSpec

__all__ = [
    "Approval",
    "ApprovalPolicy",
    "AskCallback",
    "ToolCallRequest",
    "ToolExecution",
    "allow_all",
    "default_policy",
]


class Approval(enum.Enum):
    """A decision about one tool call."""

    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"  # a person decides, through the agent's ``ask`` callback
    ALWAYS = "always"  # allow, and stop asking about this tool for the rest of the agent's life


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """What an approval policy or a person sees before a call runs."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    side_effects: bool  # this call's: the tool's flag, or its approval_check found a reason
    description: str = ""
    reason: str = ""  # why this call needs a person, when the tool's approval_check said so
    repair: str | None = None  # set when the model wrote the call out of format and it was recovered


ApprovalPolicy = Callable[[ToolCallRequest], "Approval | Awaitable[Approval]"]
AskCallback = Callable[[ToolCallRequest], "Approval | bool | Awaitable[Approval | bool]"]


def default_policy(request: ToolCallRequest) -> Approval:
    """Run read-only tools; ask before anything with side effects."""
    return Approval.ASK if request.side_effects else Approval.ALLOW


def allow_all(request: ToolCallRequest) -> Approval:
    """Approve every call (tests, trusted automation)."""
    return Approval.ALLOW


_NO_CONTEXT = CallContext()


class ToolExecution:
    """The agent's side that runs tool calls (a mixin of :class:`~agentkit.agent.Agent`).

    It reads the agent's public settings each time (``tools``, ``approval``, ``ask``), so changing them on a
    live agent takes effect at the next call.
    """

    tools: dict[str, Tool]
    approval: ApprovalPolicy
    ask: AskCallback | None
    _output: OutputSpec | None

    def _init_execution(self) -> None:
        self._always: set[str] = set()
        # Approval waits (see _ask_person): per call id, and the wall time while at least one person was asked.
        self._approval_waits: dict[str, float] = {}
        self._approval_wall = 0.0
        self._asking = 0
        self._asking_since = 0.0
        self._url_trust = UrlTrust()

    def _call_context(
        self, history: Conversation, turn: list[Message], calls: list[tuple[str, gemma4.ToolCall]]
    ) -> CallContext:
        """Only approval checks read the context: a step that calls none skips the scan (it is caught up later)."""
        tools = self.tools
        if any((t := tools.get(c.name)) is not None and t.approval_check is not None for _, c in calls):
            return CallContext(self._url_trust.trusted(history, turn, tools))
        return _NO_CONTEXT

    async def _run_calls(
        self, calls: list[tuple[str, gemma4.ToolCall]], step: int, context: CallContext
    ) -> AsyncGenerator[ToolCallStarted | ToolCallFinished, None]:
        """Run all calls of a step concurrently; yield events as each starts and finishes."""
        if len(calls) == 1:  # nothing to overlap: run it in this task, without a task and a queue per call
            call_id, call = calls[0]
            args = dict(call.arguments)
            yield ToolCallStarted(call_id, call.name, args, step)
            yield await self._finished_call(call_id, call, args, step, context)
            return
        queue: asyncio.Queue[ToolCallStarted | ToolCallFinished] = asyncio.Queue()
        tasks = [asyncio.create_task(self._one_call(cid, c, step, queue, context)) for cid, c in calls]
        try:
            pending = len(tasks)
            while pending:
                item = await queue.get()
                if isinstance(item, ToolCallFinished):
                    pending -= 1
                yield item
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one_call(
        self,
        call_id: str,
        call: gemma4.ToolCall,
        step: int,
        queue: asyncio.Queue[ToolCallStarted | ToolCallFinished],
        context: CallContext,
    ) -> None:
        started = time.perf_counter()
        args = dict(call.arguments)
        await queue.put(ToolCallStarted(call_id, call.name, args, step, call.repair))
        finished: ToolCallFinished | None = None
        try:
            finished = await self._finished_call(call_id, call, args, step, context)
        finally:
            if finished is None:  # this call's task was cancelled
                waited = self._approval_waits.pop(call_id, 0.0)
                duration = max(0.0, time.perf_counter() - started - waited)
                finished = ToolCallFinished(
                    call_id, call.name, args, None, "cancelled by the user", duration, step, call.repair
                )
            queue.put_nowait(finished)

    async def _finished_call(
        self, call_id: str, call: gemma4.ToolCall, args: dict[str, Any], step: int, context: CallContext
    ) -> ToolCallFinished:
        """Run one call; every outcome but cancellation becomes the record the model is told about."""
        started = time.perf_counter()
        result: Any = None
        error: str | None = None
        try:
            result = await self._approved_call(call_id, call.name, args, context, call.repair)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # the run, or this call's task, is being cancelled
            error = "cancelled by the user"  # the tool raised CancelledError of its own accord
        except AgentkitError as exc:  # a ToolError, SandboxError, ...: its message goes to the model as is
            error = str(exc)
        except Exception as exc:  # a tool's own bug: the model is told, the loop goes on
            error = f"{call.name} raised {type(exc).__name__}: {exc}"
        waited = self._approval_waits.pop(call_id, 0.0)  # the person's time is not the tool's
        duration = max(0.0, time.perf_counter() - started - waited)
        if error is not None:
            error = error_text(error)  # valid text, bounded as a result is
        return ToolCallFinished(call_id, call.name, args, result, error, duration, step, call.repair, waited)

    async def _ask_person(self, call_id: str, request: ToolCallRequest) -> Any:
        """Ask for approval, timing the wait: per call (kept out of its duration) and as wall time while anyone
        is being asked (kept out of the run's tool time), so timings measure the tools, not the person."""
        assert self.ask is not None
        started = time.perf_counter()
        if not self._asking:
            self._asking_since = started
        self._asking += 1
        try:
            return await _maybe_await(self.ask(request))
        finally:
            ended = time.perf_counter()
            self._asking -= 1
            if not self._asking:
                self._approval_wall += ended - self._asking_since
            self._approval_waits[call_id] = self._approval_waits.get(call_id, 0.0) + ended - started

    async def _approved_call(
        self, call_id: str, name: str, args: dict[str, Any], context: CallContext, repair: str | None = None
    ) -> Any:
        if self._output is not None and name == self._output.tool_name:
            return self._output.validate_arguments(args)  # the answer itself: validated, nothing runs
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            raise ToolError(f"unknown tool {name!r}; the available tools are: {known}")
        kwargs = tool.validate(args)  # reject bad arguments before anyone is asked to approve them
        # A tool's approval_check can find that this one call needs a person (fetch_url of a URL the model made up).
        reason = (tool.approval_check(args, context) or "") if tool.approval_check is not None else ""
        request = ToolCallRequest(
            call_id, name, args, tool.side_effects or bool(reason), tool.description, reason, repair
        )
        await self._authorize(
            request,
            cannot_ask=f"{name} needs a person's approval ({reason or 'it has side effects'}) and none can be "
            "asked here; do not retry this call",
            denied=f"the user denied this call to {name}; do not retry it, continue without it",
        )
        return await tool.invoke(kwargs)  # validated above: once per call

    async def _authorize(self, request: ToolCallRequest, *, cannot_ask: str, denied: str) -> None:
        """The approval policy, then the person if it says ASK ("always" remembered per name); returns only
        when allowed, else ToolError with ``cannot_ask`` (no one to ask) or ``denied``. Tool calls and the
        requests of the agent's toolsets (agent/host.py) are decided here alike."""
        decision = await _maybe_await(self.approval(request))
        if decision is Approval.ASK:
            if request.name in self._always:
                decision = Approval.ALLOW
            elif self.ask is None:
                raise ToolError(cannot_ask)
            else:
                answer = await self._ask_person(request.call_id, request)
                decision = (Approval.ALLOW if answer else Approval.DENY) if isinstance(answer, bool) else answer
        if decision is Approval.ALWAYS:
            self._always.add(request.name)
            decision = Approval.ALLOW
        if decision is not Approval.ALLOW:
            raise ToolError(denied)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
