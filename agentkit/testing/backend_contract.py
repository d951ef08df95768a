"""One conformance suite for every backend: what the agent loop relies on, checked the same way everywhere.

The rules of :mod:`agentkit.backends.base` — a stream of :class:`RawDelta` ending in exactly one
:class:`GenerationDone`, the stop marker included and named, ``None`` when the budget ran out, usage and
timings, ``BackendError`` on failure (``ContextTooLong`` for a prompt that does not fit), a prompt stop when
the consumer goes away, thinking kept verbatim, a working tool round, media that reaches the engine — are
checked here once, against the real engine behind each backend, instead of each backend's tests restating
them with their own helpers.

A backend plugs in with a :class:`ContractHarness`: how to make its next generation calls write a given raw
Gemma 4 output (a test server's script, a logits processor that forces tokens, a replay list), and optionally
how to get a backend that cannot work and which images the engine last received. With pytest, subclass
:class:`BackendContract` and give it a ``harness`` fixture::

    class TestMyEngineContract(BackendContract):
        @pytest.fixture
        def harness(self, my_server) -> ContractHarness:
            return ContractHarness(backend_for=lambda *outputs: MyEngineBackend(my_server.script(*outputs)))

Each check is also a plain ``async def check_...(harness)`` for other runners. :func:`collect` (one stream,
its shape checked) and :func:`request_for` (a request as the loop builds it) are the helpers backend tests share.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from agentkit.agent import Agent, allow_all
from agentkit.backends.base import Backend, BackendEvent, GenerationDone, GenerationRequest, RawDelta, SamplingParams
from agentkit.errors import BackendError, ContextTooLong
from agentkit.gemma4.tokens import STOP_MARKERS, TOOL_RESPONSE_START, TURN_END
from agentkit.messages import Image, from_dicts, native_prompt

__all__ = [
    "CHECKS",
    "BackendContract",
    "ContractHarness",
    "NotApplicable",
    "StreamResult",
    "check_budget",
    "check_cancel_task",
    "check_close_early",
    "check_context_too_long",
    "check_errors",
    "check_media",
    "check_stop_markers",
    "check_streaming",
    "check_thinking",
    "check_tool_media",
    "check_tool_round",
    "check_usage_and_timings",
    "collect",
    "request_for",
    "run_check",
]

# 1x1 transparent PNG: a real image (an engine that decodes it must succeed), small enough for any request limit.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000b4944415478da636000020000050001e9fadcd80000000049454e44ae426082"
)
GREETING = "Hello there! The weather is sunny today." + TURN_END
CALL = '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|>' + TOOL_RESPONSE_START
ANSWER = "It is sunny in Paris." + TURN_END
SNAPSHOT_CALL = "<|tool_call>call:snapshot{}<tool_call|>" + TOOL_RESPONSE_START
THOUGHT = "<|channel>thought\nThe user greets me.<channel|>Hello!" + TURN_END
LONG = "one two three four five six seven eight nine ten eleven twelve " * 8  # no stop marker anywhere
WEATHER_TOOL: Mapping[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class NotApplicable(Exception):
    """The check does not apply to this backend (it has no such capability, or the harness cannot show it)."""


@dataclass(frozen=True)
class ContractHarness:
    """How the contract drives one backend.

    ``backend_for(*outputs)`` returns a backend whose next generation calls write ``outputs`` in order, each a
    raw Gemma 4 output as a model writes it (the engine still stops at stop markers and at the token budget;
    an output without a stop marker means "generation ran into the budget"). The contract asks for at most two
    outputs, and a second one only when it repeats the first or follows a tool result, so engines scripted
    per request (a logits processor switched by the tool-response token) can serve them. Backends may be
    shared between calls; the contract closes each with ``aclose()`` when a check ends and expects it to
    work again afterwards.

    ``unavailable()`` builds a backend that cannot serve (server down, unknown model), if there is one to show.
    ``context_tokens`` is the engine's context window in tokens, where it enforces one. ``received_images()``
    returns the images the engine received in its last request, where the harness can see them.
    ``timeout_s`` bounds each check so a hang fails instead of blocking the suite.
    """

    backend_for: Callable[..., Backend]
    unavailable: Callable[[], Backend] | None = None
    received_images: Callable[[], list[bytes]] | None = None
    context_tokens: int | None = None
    timeout_s: float = 120.0


@dataclass(frozen=True)
class StreamResult:
    """One stream, checked for shape: the text pieces in order and the closing event."""

    deltas: list[str]
    done: GenerationDone

    @property
    def text(self) -> str:
        return "".join(self.deltas)


async def collect(backend: Backend, request: GenerationRequest) -> StreamResult:
    """Consume one stream, asserting the interface's shape: raw text pieces, then exactly one GenerationDone."""
    deltas: list[str] = []
    done: GenerationDone | None = None
    async for event in backend.stream(request):
        assert done is None, f"{backend.name}: {type(event).__name__} after GenerationDone"
        if isinstance(event, RawDelta):
            assert isinstance(event.text, str), f"{backend.name}: RawDelta.text is {type(event.text).__name__}"
            deltas.append(event.text)
        elif isinstance(event, GenerationDone):
            done = event
        else:
            raise AssertionError(f"{backend.name}: stream yielded {type(event).__name__}, not a backend event")
    assert done is not None, f"{backend.name}: the stream ended without GenerationDone"
    return StreamResult(deltas, done)


def request_for(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] = (),
    thinking: bool = False,
    sampling: SamplingParams | None = None,
) -> GenerationRequest:
    """A request as the agent loop builds it: the typed conversation and the native prompt made from it."""
    conversation = from_dicts(messages)
    return GenerationRequest(
        native_prompt(conversation, tools, thinking=thinking),
        sampling or SamplingParams(temperature=0.0, max_tokens=96),
        tools=list(tools),
        enable_thinking=thinking,
        conversation=conversation,
    )


def _ask(text: str, **kwargs: Any) -> GenerationRequest:
    return request_for([{"role": "user", "content": text}], **kwargs)


async def _closing(backend: Backend, check: Callable[[], Awaitable[None]]) -> None:
    try:
        await check()
    finally:
        await backend.aclose()


# -- the checks ---------------------------------------------------------------------------------------------


async def check_streaming(h: ContractHarness) -> None:
    """Text arrives in pieces as it is generated, ends with the stop marker, and GenerationDone names it."""
    backend = h.backend_for(GREETING)
    assert isinstance(backend, Backend), f"{type(backend).__name__} does not implement the Backend protocol"
    assert backend.name and isinstance(backend.name, str) and backend.model and isinstance(backend.model, str)

    async def run() -> None:
        result = await collect(backend, _ask("Say hello."))
        assert result.text == GREETING, f"{backend.name} wrote {result.text!r}, expected {GREETING!r}"
        assert len(result.deltas) >= 2, f"{backend.name} sent the answer in one piece: not streamed"
        assert result.done.stop == TURN_END

    await _closing(backend, run)


async def check_stop_markers(h: ContractHarness) -> None:
    """A tool call ends at ``<|tool_response>`` (kept, named); nothing after a stop marker is ever sent."""
    backend = h.backend_for(CALL + "response:get_weather{}")

    async def run() -> None:
        result = await collect(backend, _ask("Weather in Paris?", tools=[WEATHER_TOOL]))
        assert result.text == CALL, f"{backend.name} wrote {result.text!r}, expected {CALL!r}"
        assert result.done.stop == TOOL_RESPONSE_START

    await _closing(backend, run)
    backend = h.backend_for("Done." + TURN_END + "text after the end")

    async def after_end() -> None:
        result = await collect(backend, _ask("Finish."))
        assert result.text == "Done." + TURN_END and result.done.stop == TURN_END

    await _closing(backend, after_end)


async def check_thinking(h: ContractHarness) -> None:
    """With thinking on, the thought channel comes back verbatim, control tokens included, before the answer."""
    backend = h.backend_for(THOUGHT)

    async def run() -> None:
        result = await collect(backend, _ask("Hi!", thinking=True))
        assert result.text == THOUGHT, f"{backend.name} wrote {result.text!r}, expected {THOUGHT!r}"
        assert result.done.stop == TURN_END

    await _closing(backend, run)


async def check_budget(h: ContractHarness) -> None:
    """When ``max_tokens`` runs out, the text is what was generated so far and ``stop`` is None."""
    backend = h.backend_for(LONG)

    async def run() -> None:
        result = await collect(backend, _ask("Count.", sampling=SamplingParams(temperature=0.0, max_tokens=4)))
        assert result.done.stop is None, f"{backend.name} named stop {result.done.stop!r} for a budget cut"
        assert result.text and LONG.startswith(result.text), f"{backend.name} wrote {result.text!r}"
        assert not result.text.endswith(STOP_MARKERS)

    await _closing(backend, run)


async def check_usage_and_timings(h: ContractHarness) -> None:
    """GenerationDone counts prompt and completion tokens and times the call."""
    backend = h.backend_for(GREETING)

    async def run() -> None:
        done = (await collect(backend, _ask("Say hello."))).done
        assert done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0, done.usage
        assert 0 <= done.usage.cached_tokens <= done.usage.prompt_tokens, done.usage
        assert 0 <= done.timings.ttft_s <= done.timings.total_s, done.timings
        assert done.timings.tokens_per_s >= 0, done.timings

    await _closing(backend, run)


async def check_errors(h: ContractHarness) -> None:
    """A backend that cannot serve fails with a BackendError that says what to do, from check() and stream()."""
    if h.unavailable is None:
        raise NotApplicable("the harness has no unavailable backend to show")
    try:
        backend = h.unavailable()
    except BackendError as exc:  # refusing at construction is as good, if it says why
        assert str(exc), "a BackendError without a message"
        return
    for attempt in ("check", "stream"):
        try:
            if attempt == "check":
                await backend.check()
            else:
                await collect(backend, _ask("Hello?"))
        except BackendError as exc:
            assert str(exc), f"{attempt}(): a BackendError without a message"
        except Exception as exc:
            raise AssertionError(f"{attempt}() raised {type(exc).__name__}: {exc}, not a BackendError") from exc
        else:
            raise AssertionError(f"{attempt}() on an unavailable {backend.name} backend did not fail")
    await backend.aclose()


async def check_context_too_long(h: ContractHarness) -> None:
    """A prompt longer than the context is a ContextTooLong that says what to do, and the backend recovers."""
    if h.context_tokens is None:
        raise NotApplicable("the harness names no context window")
    backend = h.backend_for(GREETING, GREETING)

    async def run() -> None:
        words = " ".join(f"w{i}" for i in range(h.context_tokens or 0))  # at least one token a word
        try:
            await collect(backend, _ask(words))
        except ContextTooLong as exc:
            assert str(exc), "a ContextTooLong without a message"
        else:
            raise AssertionError(f"{backend.name} took a prompt longer than its {h.context_tokens}-token context")
        result = await collect(backend, _ask("Say hello."))
        assert result.text == GREETING, result.text

    await _closing(backend, run)


async def check_close_early(h: ContractHarness) -> None:
    """Closing the stream after the first piece ends it at once, and the backend serves the next request."""
    backend = h.backend_for(LONG, LONG)

    async def run() -> None:
        stream = cast(AsyncGenerator[BackendEvent, None], backend.stream(_ask("Count slowly.")))
        first = await anext(stream)
        assert isinstance(first, RawDelta)
        await stream.aclose()
        result = await collect(backend, _ask("Count.", sampling=SamplingParams(temperature=0.0, max_tokens=3)))
        assert result.text and LONG.startswith(result.text) and result.done.stop is None

    await _closing(backend, run)


async def check_cancel_task(h: ContractHarness) -> None:
    """Cancelling the task that consumes a stream raises CancelledError there, and the backend still serves."""
    backend = h.backend_for(LONG, LONG)

    async def run() -> None:
        ended = False

        async def consume() -> None:
            nonlocal ended
            async for event in backend.stream(_ask("Count slowly.")):
                if isinstance(event, RawDelta):
                    # Delivered at the stream's next await, which is inside the backend, mid-generation.
                    cast(asyncio.Task[None], asyncio.current_task()).cancel()
            ended = True

        task = asyncio.create_task(consume())
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled() and not ended, f"{backend.name}'s stream ran on to its end through a cancellation"
        result = await collect(backend, _ask("Count.", sampling=SamplingParams(temperature=0.0, max_tokens=3)))
        assert result.text and LONG.startswith(result.text) and result.done.stop is None

    await _closing(backend, run)


async def check_tool_round(h: ContractHarness) -> None:
    """An agent run on the backend: the model calls a tool, gets its result and answers, in one model turn."""
    calls: list[str] = []

    def get_weather(city: str) -> str:
        """Current weather for a city.

        Args:
            city: City name.
        """
        calls.append(city)
        return f"sunny, 21 degrees in {city}"

    backend = h.backend_for(CALL, ANSWER)

    async def run() -> None:
        agent = Agent(
            backend, [get_weather], approval=allow_all, sampling=SamplingParams(temperature=0.0, max_tokens=96)
        )
        result = await agent.arun("What is the weather in Paris?")
        assert calls == ["Paris"], f"the tool ran with {calls}"
        assert result.stop_reason == "completed" and result.steps == 2, result
        assert result.output == ANSWER.removesuffix(TURN_END), result.output
        assert result.usage.completion_tokens > 0

    await _closing(backend, run)


async def _media_backend(h: ContractHarness, *outputs: str) -> tuple[Backend, Callable[[], list[bytes]]]:
    """A backend scripted with ``outputs`` and how to see the images its engine got; not applicable without both."""
    backend = h.backend_for(*outputs)
    if not backend.capabilities.media:
        await backend.aclose()
        raise NotApplicable(f"{backend.name} declares no media support")
    if h.received_images is None:
        await backend.aclose()
        raise NotApplicable("the harness cannot see the images the engine received")
    return backend, h.received_images


async def check_media(h: ContractHarness) -> None:
    """An image in the user's prompt reaches the engine, given the way the agent sends it (a content part)."""
    backend, received_images = await _media_backend(h, GREETING)

    async def run() -> None:
        agent = Agent(backend, sampling=SamplingParams(temperature=0.0, max_tokens=96))
        result = await agent.arun(
            [{"type": "text", "text": "What is in this picture?"}, {"type": "image", "image": PNG}]
        )
        assert result.output == GREETING.removesuffix(TURN_END), result.output
        assert received_images() == [PNG], f"{backend.name}'s engine received {len(received_images())} images"

    await _closing(backend, run)


async def check_tool_media(h: ContractHarness) -> None:
    """An image a tool returns reaches the engine with that tool's result, and the model answers after it."""
    backend, received_images = await _media_backend(h, SNAPSHOT_CALL, ANSWER)

    def snapshot() -> list[Any]:
        """Take a snapshot of the screen."""
        return ["the screen", Image(PNG)]

    async def run() -> None:
        agent = Agent(backend, [snapshot], approval=allow_all, sampling=SamplingParams(temperature=0.0, max_tokens=96))
        result = await agent.arun("What is on the screen?")
        assert result.steps == 2 and result.output == ANSWER.removesuffix(TURN_END), result
        assert received_images() == [PNG], f"{backend.name}'s engine received {len(received_images())} images"

    await _closing(backend, run)


CHECKS: tuple[Callable[[ContractHarness], Awaitable[None]], ...] = (
    check_streaming,
    check_stop_markers,
    check_thinking,
    check_budget,
    check_usage_and_timings,
    check_errors,
    check_context_too_long,
    check_close_early,
    check_cancel_task,
    check_tool_round,
    check_media,
    check_tool_media,
)


def run_check(check: Callable[[ContractHarness], Awaitable[None]], harness: ContractHarness) -> None:
    """Run one check in a fresh event loop, bounded by the harness's time limit (a hang fails, never blocks)."""

    async def bounded() -> None:
        async with asyncio.timeout(harness.timeout_s):
            await check(harness)

    asyncio.run(bounded())


class BackendContract:
    """pytest mix-in: subclass it as ``Test...`` and define a ``harness`` fixture returning a ContractHarness."""

    def _run(self, check: Callable[[ContractHarness], Awaitable[None]], harness: ContractHarness) -> None:
        try:
            run_check(check, harness)
        except NotApplicable as exc:
            import pytest

            pytest.skip(str(exc))

    def test_streaming(self, harness: ContractHarness) -> None:
        self._run(check_streaming, harness)

    def test_stop_markers(self, harness: ContractHarness) -> None:
        self._run(check_stop_markers, harness)

    def test_thinking(self, harness: ContractHarness) -> None:
        self._run(check_thinking, harness)

    def test_budget(self, harness: ContractHarness) -> None:
        self._run(check_budget, harness)

    def test_usage_and_timings(self, harness: ContractHarness) -> None:
        self._run(check_usage_and_timings, harness)

    def test_errors(self, harness: ContractHarness) -> None:
        self._run(check_errors, harness)

    def test_context_too_long(self, harness: ContractHarness) -> None:
        self._run(check_context_too_long, harness)

    def test_close_early(self, harness: ContractHarness) -> None:
        self._run(check_close_early, harness)

    def test_cancel_task(self, harness: ContractHarness) -> None:
        self._run(check_cancel_task, harness)

    def test_tool_round(self, harness: ContractHarness) -> None:
        self._run(check_tool_round, harness)

    def test_media(self, harness: ContractHarness) -> None:
        self._run(check_media, harness)

    def test_tool_media(self, harness: ContractHarness) -> None:
        self._run(check_tool_media, harness)
