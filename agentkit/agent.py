"""The agent loop: Gemma 4's native tool-calling flow, in one readable place.

One user request is one model turn, however many tool rounds it takes (see the protocol doc):

1. render the conversation (tools declared, thinking switch) and generate, parsing the stream as it comes;
2. if the model called tools: validate, ask the approval policy, run all calls of the step concurrently
   (sync tools in threads), each with a timeout; append the model's raw output and the results in the native
   format to the prompt — nothing is re-rendered — and generate again in the same model turn;
3. errors are data: an unknown tool, invalid arguments, a tool that raised or timed out, a malformed call
   all go back to the model as tool responses it can act on; guards (max steps, the same call repeated,
   output budget) end the run with a clear ``stop_reason``;
4. when the turn ends, history keeps the visible answer, the calls and their results. The thinking is kept
   aside (``RunResult.thinking``, the session file) and never sent back in a later turn.

The loop never prints; it yields :mod:`agentkit.events`. ``run``/``arun`` are thin wrappers over ``run_stream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import enum
import inspect
import json
import secrets
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from agentkit import gemma4
from agentkit._sync import LoopRunner
from agentkit.backends.base import (
    Backend,
    BackendEvent,
    GenerationDone,
    GenerationRequest,
    RawDelta,
    SamplingParams,
    Timings,
    Usage,
)
from agentkit.errors import AgentkitError, ToolError, UserError
from agentkit.events import (
    AgentEvent,
    Notice,
    PartialOutput,
    RunFinished,
    RunResult,
    RunTimings,
    StepFinished,
    StopReason,
    ToolCallCounts,
    ToolCallFinished,
    ToolCallStarted,
)
from agentkit.options import AgentOptions, agent_keywords
from agentkit.output import FINAL_RESULT, output_spec
from agentkit.sessions import Session, SessionStore
from agentkit.tools.provenance import UrlTrust
from agentkit.tools.runtime import CallContext, Tool, as_tools, to_response_value
from agentkit.toolsets import Toolset, check_toolsets, merge_tools
from agentkit.tracing import Tracer, default_tracer

__all__ = [
    "Agent",
    "Approval",
    "RunResult",
    "RunTimings",
    "ToolCallCounts",
    "ToolCallRequest",
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


_TURN_CLOSERS = (gemma4.tokens.TURN_END, gemma4.tokens.EOS)
_NO_CONTEXT = CallContext()


class Agent:
    """An agent on a Gemma 4 backend with Python tools; ``run`` again to continue the conversation.

    ``tool_choice``: ``"auto"`` (the model decides), ``"required"`` (the first step of each run calls at least
    one tool), a tool's name (the first step calls that tool), or ``"none"`` (no calls at all). Anything but
    ``"auto"`` is enforced by grammar-constrained decoding, so it needs a backend that constrains.
    ``constrain_tool_calls``: ``None`` (default) constrains every call to its tool's schema where the backend
    can (vLLM native mode, transformers with xgrammar), ``False`` never, ``True`` requires it.
    ``options``: all these settings as one :class:`~agentkit.AgentOptions`, in place of the keywords.
    """

    def __init__(
        self,
        backend: Backend,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        *,
        system: str | None = None,
        thinking: bool = False,
        max_steps: int = 20,
        sampling: SamplingParams | Mapping[str, Any] | None = None,
        approval: ApprovalPolicy | None = None,
        ask: AskCallback | None = None,
        store: SessionStore | None = None,
        session_id: str | None = None,
        max_repeated_calls: int = 3,
        max_output_tokens: int | None = None,
        toolsets: Iterable[Toolset] = (),
        output_type: Any = None,
        output_retries: int = 2,
        tracer_provider: Any = None,
        tool_choice: str = "auto",
        constrain_tool_calls: bool | None = None,
        options: AgentOptions | None = None,
    ) -> None:
        if options is not None:
            # All the settings in one value (agentkit.options), for code that builds many agents alike.
            Agent.__init__(self, backend, **agent_keywords(options, locals()))
            return
        if isinstance(backend, str):
            raise UserError(
                f"Agent() takes a backend object; build one from the URL with backend_from_url({backend!r})"
            )
        if not callable(getattr(backend, "stream", None)):
            raise UserError(
                f"Agent() needs a backend (backend_from_url(...), OllamaBackend, ...), got {type(backend).__name__}"
            )
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
            raise UserError(f"max_steps must be a whole number of at least 1, got {max_steps!r}")
        if store is not None and not callable(getattr(store, "save", None)):
            raise UserError(
                f"store= takes a SessionStore, e.g. store=SessionStore({store!r}), got {type(store).__name__}"
            )
        self.backend = backend
        self.tools: dict[str, Tool] = {t.name: t for t in as_tools(tools)}
        self._declarations = [t.as_openai_tool() for t in self.tools.values()]
        # Tool sources with a lifecycle (MCP servers): started on first use, their tools merged per request.
        self.toolsets = check_toolsets(toolsets)
        self._own_tools = list(self.tools.values())
        self._toolset_versions: tuple[int, ...] | None = None if self.toolsets else ()
        # Structured output (agentkit.output): the model answers by calling a declared final_result tool.
        self._output = output_spec(output_type, retries=output_retries, taken=self.tools)
        if self._output is not None:
            self._declarations.append(self._output.declaration)
        # Tracing (agentkit.tracing): spans from the run's events, when a provider is given or instrument() ran.
        self._tracer = Tracer(tracer_provider) if tracer_provider is not None else None
        # The parser recovers drifted calls only for these names (and types bare values by their schemas).
        self._declared = gemma4.DeclaredTools.of(self._declarations) if self._declarations else None
        self.thinking = thinking
        self.max_steps = max_steps
        if sampling is None:
            self.sampling = SamplingParams()
        elif isinstance(sampling, SamplingParams):
            self.sampling = sampling
        else:
            try:
                self.sampling = SamplingParams().with_overrides(**dict(sampling))
            except TypeError as exc:
                known = ", ".join(SamplingParams.__dataclass_fields__)
                raise UserError(f"unknown sampling setting in {dict(sampling)!r}; the settings are: {known}") from exc
        self.approval: ApprovalPolicy = approval or default_policy
        self.ask = ask
        self.max_repeated_calls = max_repeated_calls
        self.max_output_tokens = max_output_tokens
        self.store = store
        self.tool_choice = tool_choice
        self.constrained = self._check_constraint(tool_choice, constrain_tool_calls)
        if not self.toolsets:
            self._grammar(1)  # built (and cached) now, so a schema no call can satisfy fails here, not mid-run
        self._always: set[str] = set()
        # Approval waits (see _ask_person): per call id, and the wall time while at least one person was asked.
        self._approval_waits: dict[str, float] = {}
        self._approval_wall = 0.0
        self._asking = 0
        self._asking_since = 0.0
        self._url_trust = UrlTrust()
        self._running = False
        self._runner: LoopRunner | None = None
        # (a private copy of the rendered messages, thinking switch, their rendering without generation prompt,
        # how many user turns they hold)
        self._prefix: tuple[list[Any], bool, gemma4.Prompt, int] | None = None
        if session_id is not None:
            if store is None:
                raise UserError("session_id needs a store: Agent(..., store=SessionStore(), session_id=...)")
            self.session = store.load(session_id)
        else:
            self.session = Session(backend=backend.name, model=backend.model, thinking_enabled=thinking)
            if system:
                self.session.messages.append({"role": "system", "content": system})
        self.session.backend, self.session.model = backend.name, backend.model

    def _check_constraint(self, tool_choice: str, constrain: bool | None) -> bool:
        """Whether tool calls will be grammar-constrained; a clear error where the settings cannot be met."""
        if constrain not in (None, True, False):
            raise UserError(f"constrain_tool_calls must be True, False or None (where supported), not {constrain!r}")
        if not isinstance(tool_choice, str):
            raise UserError(f"tool_choice must be a string, not {type(tool_choice).__name__}")
        if not self.toolsets:  # toolsets' tools are known once they start: checked on the first request then
            try:
                # declared names: final_result (structured output) is declared but answered by the loop
                gemma4.check_tool_choice(tool_choice, [d["function"]["name"] for d in self._declarations])
            except ValueError as exc:
                raise UserError(str(exc)) from exc
        caps = self.backend.capabilities
        supported = bool(getattr(caps, "grammar", False))
        why = getattr(caps, "grammar_note", "") or "it has no grammar-constrained decoding"
        cannot = f"the {self.backend.name} backend cannot constrain: {why}"
        if constrain is True and not supported:
            raise UserError(f"constrain_tool_calls=True, but {cannot}")
        if tool_choice != "auto" and not (supported and constrain is not False):
            reason = "constrain_tool_calls=False turned it off" if supported else cannot
            raise UserError(
                f"tool_choice={tool_choice!r} is enforced by grammar-constrained decoding, and {reason}. "
                "Use tool_choice='auto', or a backend that constrains (vllm:// in native mode, transformers:// with "
                "xgrammar installed)."
            )
        return supported and constrain is not False

    def _grammar(self, step: int) -> gemma4.ToolCallGrammar | None:
        """The grammar for this step's calls: ``required`` and a tool's name bind the first step of a run only.

        Later steps are ``auto`` (the model must be able to answer once it has results); ``none`` binds them all.
        """
        if not self.constrained:
            return None
        choice = self.tool_choice if step == 1 or self.tool_choice == "none" else "auto"
        if choice == "auto" and not self._declarations:
            return None  # nothing to check: no tool can be called
        try:
            return gemma4.tool_call_grammar(self._declarations, choice, thinking=self.thinking)
        except ValueError as exc:  # a tool_choice no (toolset) tool answers to, or a schema no call can satisfy
            raise UserError(f"cannot constrain tool calls to these tools: {exc}") from exc

    # -- public surface -------------------------------------------------------------------------------

    @property
    def session_id(self) -> str:
        return self.session.id

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.session.messages

    def reset(self) -> None:
        """Start a new conversation (a new session), keeping tools, settings and the system prompt."""
        system = [m for m in self.session.messages[:1] if m.get("role") in ("system", "developer")]
        self.session = Session(
            backend=self.backend.name, model=self.backend.model, thinking_enabled=self.thinking, messages=system
        )

    def run(self, prompt: str | Sequence[Mapping[str, Any]]) -> RunResult:
        """Synchronous ``arun``: for scripts. Inside async code, ``await agent.arun(...)`` instead."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise UserError(
                "Agent.run() was called inside a running event loop (async code or Jupyter); "
                "use `await agent.arun(...)` there"
            )
        if self._runner is None:
            # One loop for the agent's life: backends keep connection pools bound to it across runs.
            self._runner = LoopRunner()
        return self._runner.run(self.arun(prompt))

    async def arun(self, prompt: str | Sequence[Mapping[str, Any]]) -> RunResult:
        result: RunResult | None = None
        async for event in self.run_stream(prompt):
            if isinstance(event, RunFinished):
                result = event.result
        assert result is not None
        return result

    def close(self) -> None:
        if self._runner is not None:
            self._runner.run(self.aclose())
            self._runner.close()
            self._runner = None

    async def aclose(self) -> None:
        """Stop the toolsets (MCP server processes) and close the backend's connections."""
        try:
            for toolset in reversed(self.toolsets):
                await toolset.stop()
        finally:
            self._toolset_versions = None if self.toolsets else ()
            await self.backend.aclose()

    async def __aenter__(self) -> Agent:
        await self.refresh_tools()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def refresh_tools(self) -> None:
        """Start the toolsets if needed and take their current tools (declared from the next request on)."""
        if not self.toolsets:
            return
        for toolset in self.toolsets:
            await toolset.start()
        versions = tuple(t.version for t in self.toolsets)
        if versions != self._toolset_versions:
            # final_result (structured output) keeps its name and declaration; a toolset's tool of that name is renamed.
            answer = [self._output.as_tool()] if self._output is not None else []
            self.tools = merge_tools([*self._own_tools, *answer], self.toolsets)
            self._declarations = [t.as_openai_tool() for t in self.tools.values()]
            for t in answer:
                del self.tools[t.name]  # answered by the loop, not run as a tool
            self._declared = gemma4.DeclaredTools.of(self._declarations) if self._declarations else None
            self._prefix = None  # the cached rendering declares the old tools
            self._toolset_versions = versions

    async def run_stream(self, prompt: str | Sequence[Mapping[str, Any]]) -> AsyncIterator[AgentEvent]:
        """Run one user request, yielding events as they happen; the last one is ``RunFinished``."""
        if self._running:
            raise UserError("this agent is already running a request; wait for it or use a second Agent")
        if isinstance(prompt, str):
            if not prompt.strip():
                raise UserError("the prompt is empty; say what the agent should do")
            content: Any = prompt
        else:
            if not isinstance(prompt, Sequence) or not all(isinstance(p, Mapping) for p in prompt):
                raise UserError(
                    f"the prompt must be a string (or a list of content parts), got {type(prompt).__name__}"
                )
            content = [dict(cast(Mapping[str, Any], p)) for p in prompt]
        self._running = True
        try:
            if self.store is None:
                async for event in self._traced_turn({"role": "user", "content": content}):
                    yield event
                return
            # One writer at a time per session, across processes; and start from what is saved, in case
            # another process continued this conversation since this agent last wrote it.
            async with self.store.lock(self.session.id):
                on_disk = self.store.revision(self.session.id)
                if on_disk is not None and on_disk != self.session.revision:
                    self.session = self.store.load(self.session.id)
                    yield Notice(
                        f"session {self.session.id} was continued elsewhere; "
                        f"reloaded its {len(self.session.messages)} messages",
                        "info",
                    )
                async for event in self._traced_turn({"role": "user", "content": content}):
                    yield event
        finally:
            self._running = False

    # -- the loop -------------------------------------------------------------------------------------

    def _traced_turn(self, user_message: dict[str, Any]) -> AsyncIterator[AgentEvent]:
        """The turn's events, passed through a tracer when one is configured (one check when none is)."""
        tracer = self._tracer or default_tracer()
        turn = self._turn(user_message)
        return turn if tracer is None else tracer.trace_run(self, cast(AsyncGenerator[AgentEvent, None], turn))

    async def _turn(self, user_message: dict[str, Any]) -> AsyncIterator[AgentEvent]:
        started = time.perf_counter()
        await self.refresh_tools()
        history = self.session.messages
        turn: list[dict[str, Any]] = [user_message]  # messages of this turn, reasoning kept until it ends
        if not self.session.title and isinstance(user_message["content"], str):
            self.session.title = " ".join(user_message["content"].split())[:60]
        prompt = self._opening_prompt(history, user_message)
        turn_index = self._prefix[3] if self._prefix is not None else _user_turns(history)
        usage = Usage()
        gen_s = tools_s = ttft = 0.0
        approval_before = self._approval_wall
        thinking_parts: list[str] = []
        records: list[ToolCallFinished] = []
        repeats: Counter[str] = Counter()
        output: Any = ""
        stop_reason: StopReason = "max_steps"
        step = 0
        finished = False
        partial_text: list[str] = []
        answer = self._output.attempts() if self._output is not None else None  # structured output's state
        counts = ToolCallCounts()
        try:
            for step in range(1, self.max_steps + 1):
                request = GenerationRequest(
                    prompt=prompt,
                    sampling=self.sampling,
                    messages=[*history, *turn],
                    tools=self._declarations,
                    enable_thinking=self.thinking,
                    grammar=self._grammar(step),
                )
                parser = gemma4.StreamParser(self._declared)
                reader = answer.reader() if answer is not None else None  # streams the answer's fields
                raw: list[str] = []
                partial_text = []
                done: GenerationDone | None = None
                t0 = time.perf_counter()
                # Closing the stream early (cancellation) must stop the engine, so close it explicitly.
                stream_gen = cast(AsyncGenerator[BackendEvent, None], self.backend.stream(request))
                async with contextlib.aclosing(stream_gen) as stream:
                    async for ev in stream:
                        if isinstance(ev, RawDelta):
                            raw.append(ev.text)
                            for pev in parser.feed(ev.text):
                                if isinstance(pev, gemma4.ThinkingDelta):
                                    yield gemma4.ThinkingDelta(pev.text, step)
                                elif isinstance(pev, gemma4.TextDelta):
                                    partial_text.append(pev.text)
                                    yield gemma4.TextDelta(pev.text, step)
                            if reader is not None and (fields := reader.feed(ev.text)) is not None:
                                yield PartialOutput(fields, step)
                        else:
                            done = ev
                gen_s += time.perf_counter() - t0
                parsed = parser.finish()
                step_usage, step_timings = (done.usage, done.timings) if done is not None else (Usage(), Timings())
                if done is not None:
                    usage = usage + done.usage
                    if step == 1:
                        ttft = done.timings.ttft_s
                if parsed.thinking:
                    thinking_parts.append(parsed.thinking)
                repaired = [c for c in parsed.tool_calls if c.repair is not None]
                counts = counts + ToolCallCounts(
                    len(parsed.tool_calls) - len(repaired), len(repaired), len(parsed.errors)
                )
                for c in repaired:
                    yield Notice(f"recovered a tool call to {c.name!r} written out of format: {c.repair}", "info", step)
                for err in parsed.errors:
                    yield Notice(f"the model wrote a malformed tool call: {err}", "warning", step)

                # With output_type, a text answer must validate; else it goes round as final_result's error.
                if (
                    not parsed.tool_calls
                    and not parsed.errors
                    and (answer is None or answer.check_text(parsed.content))
                ):
                    output = parsed.content
                    turn.append({"role": "assistant", "content": output})
                    if answer is not None:
                        output = answer.value
                    stop_reason = "completed" if done is None or done.stop is not None else "max_tokens"
                    finished = True
                    yield StepFinished(step, step_usage, step_timings)
                    break

                # A tool round: same model turn, prompt grows by appending only.
                calls = [(f"call_{secrets.token_hex(4)}", c) for c in parsed.tool_calls]
                assistant: dict[str, Any] = {
                    "role": "assistant",
                    "content": parsed.content,
                    "tool_calls": [
                        {"id": cid, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                        for cid, c in calls
                    ],
                }
                if parsed.thinking:
                    assistant["reasoning_content"] = parsed.thinking
                turn.append(assistant)
                t1 = time.perf_counter()
                waited_before = self._approval_wall
                results: list[tuple[str, Any]] = []
                context = self._call_context(history, turn, calls)
                async with contextlib.aclosing(self._run_calls(calls, step, context)) as call_events:
                    async for item in call_events:
                        if isinstance(item, ToolCallFinished):
                            records.append(item)
                        yield item
                tools_s += time.perf_counter() - t1 - (self._approval_wall - waited_before)  # not the person's time
                by_id = {r.call_id: r for r in records}
                for cid, c in calls:
                    rec = by_id[cid]
                    value = {"error": rec.error} if rec.error is not None else to_response_value(rec.result)
                    results.append((c.name, value))
                    turn.append({"role": "tool", "tool_call_id": cid, "name": c.name, "content": value})
                for err in parsed.errors:
                    value = {"error": f"{err}. Write the call again as <|tool_call>call:NAME{{...}}<tool_call|>."}
                    results.append(("error", value))
                    turn.append({"role": "tool", "name": "error", "content": value})
                feedback = answer.take_feedback() if answer is not None else None
                if feedback is not None:  # a rejected text answer: told as final_result's error, same turn
                    results.append((FINAL_RESULT, feedback))
                    turn.append({"role": "tool", "name": FINAL_RESULT, "content": feedback})
                prompt = prompt + _hand_over("".join(raw), done) + gemma4.render_tool_results(results)
                yield StepFinished(step, step_usage, step_timings, len(calls))
                self._save(history, turn, thinking_parts, turn_index, records, final=False)
                if answer is not None and answer.check_calls(records, step):  # final_result accepted: done
                    output, stop_reason, finished = answer.value, "completed", True
                    turn.append({"role": "assistant", "content": ""})
                    break

                for _, c in calls:
                    repeats[json.dumps([c.name, c.arguments], sort_keys=True, default=str)] += 1
                if repeats and max(repeats.values()) > self.max_repeated_calls:
                    stop_reason = "repeated_call"
                    yield Notice(
                        f"stopped: the model repeated the same tool call more than {self.max_repeated_calls} times",
                        "warning",
                        step,
                    )
                    break
                if self.max_output_tokens is not None and usage.completion_tokens >= self.max_output_tokens:
                    stop_reason = "max_output"
                    yield Notice(f"stopped: output budget of {self.max_output_tokens} tokens used up", "warning", step)
                    break
                if done is not None and done.stop is None:
                    stop_reason = "max_tokens"
                    break
            else:
                yield Notice(f"stopped: reached max_steps={self.max_steps} without a final answer", "warning", step)
        except (asyncio.CancelledError, GeneratorExit):
            stop_reason = "cancelled"
            output = "".join(partial_text)
            self._close_turn(turn, output, cancelled=True)
            self._save(history, turn, thinking_parts, turn_index, records, final=True)
            raise
        except Exception:
            # The backend failed (server gone, context too long) or something else broke mid-turn. A turn that
            # produced nothing is dropped, so retrying the same request does not repeat the user message;
            # otherwise what happened so far is kept, closed so the history still renders, and saved.
            if len(turn) > 1 or partial_text:
                self._close_turn(turn, "".join(partial_text), cancelled=False)
                self._save(history, turn, thinking_parts, turn_index, records, final=True)
            raise
        if not finished:
            output = "".join(partial_text) if stop_reason == "max_tokens" else ""
            self._close_turn(turn, output, cancelled=False)
            if answer is not None:
                output = None  # no answer of output_type: stop_reason says why
        self._save(history, turn, thinking_parts, turn_index, records, final=True)
        total = time.perf_counter() - started
        result = RunResult(
            output=output,
            messages=list(self.session.messages),
            thinking="\n\n".join(thinking_parts),
            usage=usage,
            timings=RunTimings(
                total_s=total,
                generation_s=gen_s,
                tools_s=tools_s,
                ttft_s=ttft,
                approval_s=self._approval_wall - approval_before,
            ),
            steps=step,
            stop_reason=stop_reason,
            tool_calls=records,
            session_id=self.session.id,
            call_counts=counts,
        )
        yield RunFinished(result)

    def _opening_prompt(self, history: list[dict[str, Any]], user_message: dict[str, Any]) -> gemma4.Prompt:
        """The first prompt of a turn: the cached rendering of the history plus the new user turn.

        History only grows by whole turns that start with a user message and end with a closed model turn,
        and it holds no thinking, so rendering it again would give the same bytes: the agent keeps that
        rendering and appends, making each turn O(new text) instead of O(conversation). The cache is used
        only while the history holds exactly the messages it was made from — compared here, once per turn,
        with a private copy (at C speed: about a microsecond for 50 messages), so messages replaced or edited
        in place between runs are seen — and the thinking switch is the same; anything else renders from
        scratch.
        """
        p = self._prefix
        if p is not None and p[1] == self.thinking and history == p[0]:
            return p[2] + _turn_suffix([user_message], self.thinking)
        last = history[-1] if history else {"role": "assistant"}
        if last.get("role") != "assistant" or last.get("tool_calls"):
            # Not a closed model turn (an unusual loaded history): no cache, render it all.
            self._prefix = None
            return gemma4.render([*history, user_message], self._declarations or None, enable_thinking=self.thinking)
        rendered = gemma4.render(
            history, self._declarations or None, enable_thinking=self.thinking, add_generation_prompt=False
        )
        rendered.text  # noqa: B018 - computed once here, every later append reuses it
        self._prefix = ([_snapshot(m) for m in history], self.thinking, rendered, _user_turns(history))
        return rendered + _turn_suffix([user_message], self.thinking)

    def _advance_prefix(self, history: list[dict[str, Any]], start: int) -> None:
        """Extend the cached rendering by the turn just added to ``history`` (at ``start``).

        Only the new messages are copied; if anything earlier changed during the turn, the next turn's
        comparison with the whole history sees it.
        """
        p = self._prefix
        if p is None or len(p[0]) != start or p[1] != self.thinking:
            self._prefix = None
            return
        prefix = p[2] + _turn_suffix(history[start:], None)
        prefix.text  # noqa: B018 - computed once here, every later append reuses it
        p[0].extend(_snapshot(m) for m in history[start:])
        self._prefix = (p[0], self.thinking, prefix, p[3] + _user_turns(history[start:]))

    @staticmethod
    def _close_turn(turn: list[dict[str, Any]], text: str, *, cancelled: bool) -> None:
        """Leave the turn renderable: every call answered, the turn ending with a model message."""
        answered = {m.get("tool_call_id") for m in turn if m.get("role") == "tool"}
        for msg in list(turn):
            for call in msg.get("tool_calls", ()):
                if call["id"] not in answered:
                    note = "cancelled by the user" if cancelled else "not run"
                    turn.append(
                        {
                            "role": "tool",
                            "tool_call_id": call["id"],
                            "name": call["function"]["name"],
                            "content": {"error": note},
                        }
                    )
        if turn[-1].get("role") != "assistant" or turn[-1].get("tool_calls"):
            turn.append({"role": "assistant", "content": text})

    def _save(
        self,
        history: list[dict[str, Any]],
        turn: list[dict[str, Any]],
        thinking_parts: list[str],
        turn_index: int,
        records: list[ToolCallFinished],
        *,
        final: bool,
    ) -> None:
        """Persist after every step; on the final save, the turn joins history without its thinking."""
        s = self.session
        if final:
            start = len(history)
            history.extend(map(_without_thinking, turn))
            self._advance_prefix(history, start)
            if thinking_parts:
                s.thinking.append({"turn": turn_index, "text": "\n\n".join(thinking_parts)})
            s.tool_calls.extend(
                {
                    "turn": turn_index,
                    "call_id": r.call_id,
                    "name": r.name,
                    "arguments": r.arguments,
                    "result": to_response_value(r.result) if r.error is None else None,
                    "error": r.error,
                    "duration_s": round(r.duration_s, 6),
                    "step": r.step,
                    **({"repair": r.repair} if r.repair is not None else {}),
                }
                for r in records
            )
        if self.store is None:
            return
        if final:
            self.store.save(s)
        else:
            # Save the turn in progress too (minus thinking), so a crash mid-turn loses at most one step.
            snapshot = Session(
                **{
                    **s.__dict__,
                    "messages": [*history, *map(_without_thinking, turn)],
                }
            )
            self.store.save(snapshot)
            s.revision = snapshot.revision

    def _call_context(
        self, history: list[dict[str, Any]], turn: list[dict[str, Any]], calls: list[tuple[str, gemma4.ToolCall]]
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
        decision = await _maybe_await(self.approval(request))
        if decision is Approval.ASK:
            if name in self._always:
                decision = Approval.ALLOW
            elif self.ask is None:
                raise ToolError(
                    f"{name} needs a person's approval ({reason or 'it has side effects'}) and none can be "
                    "asked here; do not retry this call"
                )
            else:
                answer = await self._ask_person(call_id, request)
                decision = (Approval.ALLOW if answer else Approval.DENY) if isinstance(answer, bool) else answer
        if decision is Approval.ALWAYS:
            self._always.add(name)
            decision = Approval.ALLOW
        if decision is not Approval.ALLOW:
            raise ToolError(f"the user denied this call to {name}; do not retry it, continue without it")
        return await tool.invoke(kwargs)  # validated above: once per call


class _Exact:
    """A number in the render cache's copy of the history: equal only to the same number of the same type.

    ``1 == 1.0 == True`` in Python, yet the model reads ``1``, ``1.0`` and ``true``: a plain comparison would
    keep a stale rendering after such an edit.
    """

    __slots__ = ("value",)

    def __init__(self, value: bool | int | float) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self.value) and other == self.value

    __hash__ = None  # type: ignore[assignment]


def _user_turns(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m.get("role") == "user")


def _snapshot(value: Any) -> Any:
    """A copy of ``value`` that shares nothing mutable with it and compares equal only to what renders the same.

    Dispatched on exact types, strings first: a history is mostly strings, and this runs on every message the
    cache renders from scratch.
    """
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is dict:
        return {k: v if type(v) is str else _snapshot(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return kind(v if type(v) is str else _snapshot(v) for v in value)
    if kind is bool or kind is int or kind is float:
        return _Exact(value)
    return copy.deepcopy(value)  # bytes, subclasses, anything else: compared by their own equality


def _without_thinking(message: dict[str, Any]) -> dict[str, Any]:
    """The message as history keeps it: thinking is never sent back in a later turn."""
    return {k: v for k, v in message.items() if k != "reasoning_content"}


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _turn_suffix(messages: list[dict[str, Any]], thinking: bool | None) -> gemma4.Prompt:
    """Render whole turns that start with a user message, as they continue an earlier rendering.

    ``thinking`` adds the generation prompt for that switch; ``None`` adds none.
    """
    suffix = gemma4.render(messages, add_generation_prompt=False, bos=False)
    return suffix if thinking is None else suffix + gemma4.generation_prompt(thinking)


def _hand_over(raw: str, done: GenerationDone | None) -> gemma4.Prompt:
    """The model's output as it must sit before tool results: ending with the ``<|tool_response>`` hand-over.

    Within a turn the output stays exactly as the model wrote it (thinking included, see the protocol doc).
    When the backend reported the ids it generated, they are kept rather than the text tokenized again: a
    model may split text differently from the tokenizer's canonical split, and only the generated ids make
    the next prompt a token-for-token extension of what the engine's KV cache holds.
    """
    text = raw
    ids = done.token_ids if done is not None else None
    for closer in _TURN_CLOSERS:
        if text.endswith(closer):
            text = text[: -len(closer)]
            # A backend's ids end with the stop marker's one id only when that marker ended generation.
            ids = ids[:-1] if ids and done is not None and done.stop == closer else None
    tail = "" if text.endswith(gemma4.tokens.TOOL_RESPONSE_START) else gemma4.tokens.TOOL_RESPONSE_START
    if not ids:
        return gemma4.Prompt.trusted(text + tail)
    return gemma4.Prompt.tokens(text, ids) + gemma4.Prompt.trusted(tail)
