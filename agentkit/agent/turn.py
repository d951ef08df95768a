"""One turn of the agent loop: Gemma 4's native tool-calling flow, step by step, in one readable place.

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

Apart from :class:`~agentkit.agent.Agent` (:mod:`agentkit.agent.loop`: its settings, public surface and
lifecycle) so that the turn reads on its own: this module is what happens between a prompt and a
``RunFinished``. The turn never prints; it yields :mod:`agentkit.events`. Running and approving the calls is
:mod:`agentkit.agent.approval`; the rendering of earlier turns it appends to is :mod:`agentkit.agent.prompt_cache`;
the protocol arithmetic (hand-over, turn suffix) is :mod:`agentkit.gemma4.continuation`; the records of a turn
are written by :class:`agentkit.sessions.SessionStore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from agentkit import gemma4
from agentkit.agent.approval import ToolExecution
from agentkit.agent.repetition import find_repetition
from agentkit.backends.base import BackendEvent, GenerationDone, GenerationRequest, RawDelta, Timings, Usage
from agentkit.errors import UserError
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
)
from agentkit.messages import (
    AssistantMessage,
    Conversation,
    Message,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResult,
    UserMessage,
    describe_media,
)
from agentkit.output import FINAL_RESULT
from agentkit.tools.runtime import to_response

if TYPE_CHECKING:
    from agentkit.agent.prompt_cache import PromptCache
    from agentkit.backends.base import Backend, SamplingParams
    from agentkit.sessions import Session, SessionStore

__all__ = ["TurnLoop"]


class TurnLoop(ToolExecution):
    """The agent's side that runs a turn (a mixin of :class:`~agentkit.agent.Agent`, which sets all of this up).

    It reads the agent's settings each time (``max_steps``, ``sampling``, ``thinking``, ...), so changing them on
    a live agent takes effect at the next turn.
    """

    backend: Backend
    session: Session
    store: SessionStore | None
    sampling: SamplingParams
    thinking: bool
    max_steps: int
    max_repeated_calls: int
    max_output_tokens: int | None
    _declarations: list[dict[str, Any]]
    _declared: gemma4.DeclaredTools | None
    _declaration_block: gemma4.Declarations
    _prompts: PromptCache

    if TYPE_CHECKING:

        async def refresh_tools(self) -> None: ...

        def _grammar(self, step: int) -> gemma4.ToolCallGrammar | None: ...

    async def _turn(self, user_message: Message) -> AsyncIterator[AgentEvent]:
        started = time.perf_counter()
        await self.refresh_tools()
        history = self.session.conversation
        turn: list[Message] = [user_message]  # messages of this turn, thinking kept until it ends
        if type(user_message) is UserMessage:
            if not self.session.title:  # the text of the first message, also when it comes with a picture
                self.session.title = " ".join(user_message.text.split())[:60]
            if type(user_message.content) is tuple and not self.backend.capabilities.media:
                # A backend without media (the scripted one, a plugin) would drop them without a word.
                dropped = sorted({p.type for p in user_message.content if type(p) is not TextPart})
                if dropped:
                    yield Notice(
                        f"the {self.backend.name} backend takes no images, audio or video: the model will not see "
                        f"the {' and '.join(dropped)} in your message",
                        "warning",
                    )
        turn_index = self._prompts.user_turns(history)
        prompt = self._prompts.opening(history, user_message, self._declaration_block, thinking=self.thinking)
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
                    prompt,
                    self.sampling,
                    tools=self._declarations,
                    enable_thinking=self.thinking,
                    grammar=self._grammar(step),
                    conversation=(*history, *turn),
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
                    if done is not None and done.stop is None:
                        output, looped = _unlooped(output, step)
                        if looped is not None:
                            yield looped
                    if not output and answer is None:  # nothing to show: say so rather than print a blank
                        yield Notice(_no_answer(parsed, step), "warning", step)
                    turn.append(_answer(output))
                    if answer is not None:
                        output = answer.value
                    stop_reason = "completed" if done is None or done.stop is not None else "max_tokens"
                    finished = True
                    step_event = StepFinished(step, step_usage, step_timings)
                    self.session.record_step(step_event, turn_index=turn_index)
                    yield step_event
                    break

                # A tool round: same model turn, prompt grows by appending only.
                calls = [(f"call_{secrets.token_hex(4)}", c) for c in parsed.tool_calls]
                turn.append(
                    AssistantMessage(
                        (
                            *((ThinkingPart(parsed.thinking),) if parsed.thinking else ()),
                            *((TextPart(parsed.content),) if parsed.content else ()),
                            *(ToolCallPart(c.name, c.arguments, cid) for cid, c in calls),
                        )
                    )
                )
                t1 = time.perf_counter()
                waited_before = self._approval_wall
                results: list[tuple[str, Any] | tuple[str, Any, tuple[str, ...]]] = []
                context = self._call_context(history, turn, calls)
                async with contextlib.aclosing(self._run_calls(calls, step, context)) as call_events:
                    async for item in call_events:
                        if isinstance(item, ToolCallFinished):
                            records.append(item)
                        yield item
                tools_s += time.perf_counter() - t1 - (self._approval_wall - waited_before)  # not the person's time
                by_id = {r.call_id: r for r in records}
                for cid, c in calls:
                    message = self._tool_result(by_id[cid], cid, c.name)
                    if message.media and not self.backend.capabilities.media:
                        message = describe_media(message, f"the {self.backend.name} backend cannot show it to you")
                        yield Notice(
                            f"{c.name} returned images or audio, which the {self.backend.name} backend cannot pass "
                            "to the model; it was told what came back instead",
                            "info",
                            step,
                        )
                    kinds = tuple(p.type for p in message.media)
                    results.append((c.name, message.content, kinds) if kinds else (c.name, message.content))
                    turn.append(message)
                for err in parsed.errors:
                    value = {"error": f"{err}. {gemma4.MALFORMED_CALL_HINT}"}
                    results.append(("error", value))
                    turn.append(ToolResult(value, None, "error"))
                feedback = answer.take_feedback() if answer is not None else None
                if feedback is not None:  # a rejected text answer: told as final_result's error, same turn
                    results.append((FINAL_RESULT, feedback))
                    turn.append(ToolResult(feedback, None, FINAL_RESULT))
                ids = done.token_ids if done is not None else None
                stop = done.stop if done is not None else None
                prompt = prompt + gemma4.hand_over("".join(raw), ids, stop) + gemma4.render_tool_results(results)
                step_event = StepFinished(step, step_usage, step_timings, len(calls))
                yield step_event
                if self.store is not None:
                    self.store.record_step(self.session, step_event, turn, turn_index=turn_index)
                else:
                    self.session.record_step(step_event, turn_index=turn_index)
                if answer is not None and answer.check_calls(records, step):  # final_result accepted: done
                    output, stop_reason, finished = answer.value, "completed", True
                    turn.append(_answer(""))
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
            self._commit(history, turn, thinking_parts, turn_index, records)
            raise
        except Exception:
            # The backend failed (server gone, context too long) or something else broke mid-turn. A turn that
            # produced nothing is dropped, so retrying the same request does not repeat the user message;
            # otherwise what happened so far is kept, closed so the history still renders, and saved.
            if len(turn) > 1 or partial_text:
                self._close_turn(turn, "".join(partial_text), cancelled=False)
                self._commit(history, turn, thinking_parts, turn_index, records)
            raise
        if not finished:
            output = "".join(partial_text) if stop_reason == "max_tokens" else ""
            if output:
                output, looped = _unlooped(output, step)
                if looped is not None:
                    yield looped
            self._close_turn(turn, output, cancelled=False)
            if answer is not None:
                output = None  # no answer of output_type: stop_reason says why
        self._commit(history, turn, thinking_parts, turn_index, records)
        total = time.perf_counter() - started
        result = RunResult(
            output=output,
            conversation=self.session.conversation,
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

    @staticmethod
    def _tool_result(record: ToolCallFinished, call_id: str, name: str) -> ToolResult:
        """The conversation's message for one finished call: its value, and any images or audio it returned."""
        if record.error is not None:
            return ToolResult({"error": record.error}, call_id, name)
        try:
            value, media = to_response(record.result)
        except UserError as exc:  # an image file the tool named could not be read
            return ToolResult({"error": str(exc)}, call_id, name)
        return ToolResult(value, call_id, name, media=media)

    @staticmethod
    def _close_turn(turn: list[Message], text: str, *, cancelled: bool) -> None:
        """Leave the turn renderable: every call answered, the turn ending with a model message."""
        answered = {m.call_id for m in turn if type(m) is ToolResult}
        for msg in list(turn):
            if type(msg) is AssistantMessage:
                for call in msg.tool_calls:
                    if call.id not in answered:
                        note = "cancelled by the user" if cancelled else "not run"
                        turn.append(ToolResult({"error": note}, call.id, call.name))
        last = turn[-1]
        if type(last) is not AssistantMessage or last.tool_calls:
            turn.append(_answer(text))

    def _commit(
        self,
        history: Conversation,
        turn: list[Message],
        thinking_parts: list[str],
        turn_index: int,
        records: list[ToolCallFinished],
    ) -> None:
        """The turn joins history (without its thinking) and the session is saved; the cache follows."""
        thinking = "\n\n".join(thinking_parts)
        appended = self.session.conversation is history  # nothing replaced the conversation during the turn
        if self.store is not None:
            self.store.commit_turn(self.session, turn, turn_index=turn_index, thinking=thinking, calls=records)
        else:
            self.session.commit_turn(turn, turn_index=turn_index, thinking=thinking, calls=records)
        if appended:
            self._prompts.advance(history, self.session.conversation, thinking=self.thinking)
        else:
            self._prompts.clear()


def _unlooped(text: str, step: int) -> tuple[str, Notice | None]:
    """An answer cut off by the token limit, with a repetition loop at its end cut to one copy, and the notice."""
    loop = find_repetition(text)
    if loop is None:
        return text, None
    note = (
        f"stopped: the model was repeating {loop.describe()} ({loop.copies} times) when it reached the token "
        "limit; the repetition was cut from the answer"
    )
    return loop.kept(text), Notice(note, "warning", step)


def _no_answer(parsed: gemma4.ParsedResponse, step: int) -> str:
    """Why a turn ended blank: the model wrote only thinking (mlx-lm #1361), or nothing after the results."""
    note = "the model ended its turn without a visible answer"
    if parsed.thinking:
        return note + " (it wrote only thinking, which is not kept as an answer)"
    return note + (" after the tool results" if step > 1 else "")


def _answer(text: str) -> AssistantMessage:
    """A plain answer that closes a model turn."""
    return AssistantMessage((TextPart(text),) if text else ())
