"""The backend interface: the one thing the agent loop needs from an inference engine.

A backend streams raw Gemma 4 text (control tokens kept) for a request. It knows nothing about tools or the
loop: the request carries the typed conversation (:mod:`agentkit.messages`) and the native prompt agentkit
rendered from it; engines that must render and parse themselves (Ollama's ``/api/chat``, vLLM's chat API)
take the conversation as chat-API dicts from ``request.chat_messages()`` plus the tool declarations as plain
dicts. Whatever path a backend takes, it yields native Gemma 4 text, so the loop's stream parser sees one
format everywhere.

Rules every backend follows:
- ``stream()`` yields :class:`RawDelta` events and ends with exactly one :class:`GenerationDone`.
- Text includes the stop marker that ended generation (``<turn|>``, ``<eos>`` or ``<|tool_response>``), as
  vLLM's ``include_stop_str_in_output`` does; ``GenerationDone.stop`` names it (``None`` when the token
  budget ran out).
- A backend that prompts with token ids reports the ids it generated (``GenerationDone.token_ids``) when they
  are exactly the streamed text, so the loop can continue the turn without tokenizing the output again.
- Failures raise :mod:`agentkit.errors` ``BackendError`` subclasses with a message that says what to do.
- Cancelling the consumer (``aclose()`` on the iterator / task cancellation) stops generation promptly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from agentkit.errors import UserError
from agentkit.gemma4.grammar import ToolCallGrammar
from agentkit.gemma4.prompt import Prompt
from agentkit.gemma4.tokens import STOP_MARKERS
from agentkit.messages import (
    MEDIA_PART_TYPES,
    AudioPart,
    Conversation,
    ImagePart,
    Message,
    VideoPart,
    fill_media,
    from_dicts,
    has_media,
    native_prompt,
    to_chat,
    to_dicts,
)

__all__ = [
    "MEDIA_PART_TYPES",
    "Backend",
    "BackendEvent",
    "Capabilities",
    "GenerationDone",
    "GenerationRequest",
    "ListsModels",
    "RawDelta",
    "SamplingParams",
    "Timings",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Sampling settings; the defaults are Gemma 4's recommended ones."""

    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int = 64
    max_tokens: int = 4096
    seed: int | None = None

    def __post_init__(self) -> None:
        # Checked here, once, so a typo'd value fails where it is written, not as a server error mid-run.
        def number(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool)

        def integer(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        problems = []
        if not (number(self.temperature) and self.temperature >= 0):
            problems.append(f"temperature must be a number >= 0 (0 = greedy), got {self.temperature!r}")
        if not (number(self.top_p) and 0 < self.top_p <= 1):
            problems.append(f"top_p must be a number in (0, 1], got {self.top_p!r}")
        if not (integer(self.top_k) and self.top_k >= 0):
            problems.append(f"top_k must be a whole number >= 0 (0 = off), got {self.top_k!r}")
        if not (integer(self.max_tokens) and self.max_tokens >= 1):
            problems.append(f"max_tokens must be a whole number >= 1, got {self.max_tokens!r}")
        if self.seed is not None and not integer(self.seed):
            problems.append(f"seed must be a whole number or None, got {self.seed!r}")
        if problems:
            raise UserError("invalid sampling settings: " + "; ".join(problems))

    def with_overrides(self, **overrides: Any) -> SamplingParams:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_DEFAULT_SAMPLING = SamplingParams()


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do, so callers can pick paths without isinstance checks."""

    token_ids: bool = False  # sends token-id prompts (untrusted text can never become control tokens)
    media: bool = False  # accepts images/audio in messages
    server_tool_parsing: bool = False  # the engine renders/parses the Gemma 4 format itself (chat API)
    prefix_cache: bool = False  # reuses the KV cache of a shared prompt prefix across calls
    grammar: bool = False  # applies ``GenerationRequest.grammar``: tool calls are constrained while generated
    grammar_note: str = ""  # when ``grammar`` is False: why not, and what would make it possible


@dataclass(init=False, frozen=True, slots=True)
class GenerationRequest:
    """Everything a backend needs for one generation call: the conversation, typed, and what to do with it.

    - ``conversation``: the typed messages (:mod:`agentkit.messages`). Engines that render the prompt
      themselves take them as chat-API dicts from :meth:`chat_messages` (every string neutralized), media
      from the typed image/audio/video parts; :attr:`has_media` tells them which route the conversation
      needs.
    - ``prompt``: the same conversation as the native Gemma 4 prompt the agent rendered (token-id and
      text-prompt engines send it as it is); rendered here from the conversation when not given.

    Built the older way, from OpenAI-style ``messages=[...]`` dicts, the request converts them once;
    ``request.messages`` still reads as those dicts (made from the conversation), for backends written
    against it.
    """

    prompt: Prompt
    sampling: SamplingParams
    stop: tuple[str, ...]
    tools: Sequence[Mapping[str, Any]]  # OpenAI function-tool dicts, for engines that render themselves
    enable_thinking: bool
    # Media for parts that carry no data, in prompt order (the older way; typed parts carry their data).
    media: Sequence[Mapping[str, Any]]
    # What tool calls may look like, for backends with ``capabilities.grammar`` (others ignore it).
    grammar: ToolCallGrammar | None
    conversation: Conversation

    def __init__(
        self,
        prompt: Prompt | None = None,
        sampling: SamplingParams | None = None,
        stop: tuple[str, ...] = STOP_MARKERS,
        messages: Iterable[Any] = (),
        tools: Sequence[Mapping[str, Any]] = (),
        enable_thinking: bool = False,
        media: Sequence[Mapping[str, Any]] = (),
        grammar: ToolCallGrammar | None = None,
        *,
        conversation: Iterable[Message] | None = None,
    ) -> None:
        if conversation is None:
            conversation = from_dicts(messages)
        elif type(conversation) is not tuple:
            conversation = tuple(conversation)
        if media:  # the older way: parts without data take these, in order; engines then read typed parts only
            conversation = fill_media(conversation, media)
        setattr_ = object.__setattr__
        setattr_(self, "conversation", conversation)
        if prompt is None:  # made from the conversation, as the agent makes it
            prompt = native_prompt(conversation, tools, thinking=enable_thinking)
        setattr_(self, "prompt", prompt)
        setattr_(self, "sampling", sampling if sampling is not None else _DEFAULT_SAMPLING)
        setattr_(self, "stop", stop)
        setattr_(self, "tools", tools)
        setattr_(self, "enable_thinking", enable_thinking)
        setattr_(self, "media", media)
        setattr_(self, "grammar", grammar)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation as OpenAI-style dicts, as the caller wrote them (not neutralized)."""
        return to_dicts(self.conversation)

    def chat_messages(
        self, media: Callable[[ImagePart | AudioPart | VideoPart], dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The chat-API messages for an engine that renders the prompt itself (:func:`agentkit.messages.to_chat`).

        ``media`` writes each image/audio/video part (a user's or a tool result's) in the engine's form.
        """
        return to_chat(self.conversation, media)

    @property
    def has_media(self) -> bool:
        """Whether the conversation carries images, audio or video: as typed parts or in ``media``.

        Engines choose their route by this, never by ``media`` alone: the agent sends a picture as a part of
        the user's message and leaves ``media`` empty.
        """
        return bool(self.media) or has_media(self.conversation)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from a reused KV cache (not prefilled again)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
        )


@dataclass(frozen=True, slots=True)
class Timings:
    ttft_s: float = 0.0  # request start to first generated text
    total_s: float = 0.0  # request start to the end of generation
    tokens_per_s: float = 0.0  # decode rate after the first token


@dataclass(frozen=True, slots=True)
class RawDelta:
    """A piece of generated text as the engine wrote it: control tokens included verbatim.

    Not the answer text a user sees (that is :class:`agentkit.events.TextDelta`, made by the loop's parser
    from these), hence its own name.
    """

    text: str


@dataclass(frozen=True, slots=True)
class GenerationDone:
    """The last event of a stream."""

    stop: str | None  # the stop marker that ended generation, or None when max_tokens ran out
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    # The ids the model generated, exactly the streamed text (the stop marker as its one id last), when the
    # backend sent a token-id prompt and can vouch for them; None otherwise. The loop appends them as they
    # are, so the next prompt extends this one token for token (prefix caches hit, nothing is re-split).
    token_ids: tuple[int, ...] | None = None


BackendEvent = RawDelta | GenerationDone


@runtime_checkable
class Backend(Protocol):
    """An inference engine serving a Gemma 4 model."""

    @property
    def name(self) -> str:
        """Short engine name: ``ollama``, ``vllm``, ``transformers``, ``scripted``."""
        ...

    @property
    def model(self) -> str:
        """The model identifier as the engine knows it."""
        ...

    @property
    def capabilities(self) -> Capabilities: ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[BackendEvent]:
        """Generate for ``request``; an async generator of text deltas ending with one ``GenerationDone``."""
        ...

    async def check(self) -> None:
        """Raise a ``BackendError`` that says how to fix it unless the engine is reachable and has the model."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and memory held by the backend."""
        ...


@runtime_checkable
class ListsModels(Protocol):
    """A backend whose server can say which models it has (``/model`` in the TUI, ``agentkit models``).

    Separate from :class:`Backend` so that a backend without a listing (in-process engines, third-party
    backends written before this existed) still satisfies the backend protocol; callers check
    ``isinstance(backend, ListsModels)``.
    """

    async def list_models(self) -> list[str]:
        """The names the server accepts as a model, sorted; raise a ``BackendError`` when it cannot be asked."""
        ...


def __getattr__(name: str) -> Any:
    # ``TextDelta`` was this class's first name; a third party's backend written against it keeps working.
    if name == "TextDelta":
        import warnings

        warnings.warn(
            "agentkit.backends TextDelta is now RawDelta (raw engine text); import RawDelta instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return RawDelta
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
