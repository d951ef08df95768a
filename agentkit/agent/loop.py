"""The agent: its settings, its public surface (``run``, ``arun``, ``run_stream``, the conversation) and its lifecycle.

:class:`Agent` checks and keeps what it is built with, guards a run (one at a time, the session locked and
reloaded if another process continued it, tracing), and starts and stops its toolsets and backend. What happens
within a run — the turn, step by step — is :mod:`agentkit.agent.turn`; running and approving the calls is
:mod:`agentkit.agent.approval`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from agentkit import gemma4
from agentkit._sync import LoopRunner
from agentkit.agent.approval import (
    ApprovalPolicy,
    AskCallback,
    default_policy,
)
from agentkit.agent.host import AgentHost
from agentkit.agent.prompt_cache import PromptCache
from agentkit.agent.turn import TurnLoop
from agentkit.backends.base import (
    Backend,
    SamplingParams,
)
from agentkit.errors import UserError
from agentkit.events import (
    AgentEvent,
    Notice,
    RunFinished,
    RunResult,
)
from agentkit.messages import (
    Conversation,
    Message,
    SystemMessage,
    UserMessage,
    from_dict,
    from_dicts,
)
from agentkit.options import AgentOptions, agent_keywords
from agentkit.output import output_spec
from agentkit.sessions import Session, SessionStore
from agentkit.tools.runtime import Tool, as_tools
from agentkit.toolsets import Toolset, check_toolsets, merge_tools
from agentkit.tracing import Tracer, default_tracer

__all__ = ["Agent"]


class Agent(TurnLoop):
    """An agent on a Gemma 4 backend with Python tools; ``run`` again to continue the conversation.

    ``tool_choice``: ``"auto"`` (the model decides), ``"required"`` (the first step of each run calls at least
    one tool), a tool's name (the first step calls that tool), or ``"none"`` (no calls at all). Anything but
    ``"auto"`` is enforced by grammar-constrained decoding, so it needs a backend that constrains. With an
    ``output_type`` on such a backend, ``"auto"`` steps are ``"required"``: the answer is a ``final_result`` call.
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
        self._host = AgentHost(self)
        # Structured output (agentkit.output): the model answers by calling a declared final_result tool.
        self._output = output_spec(output_type, retries=output_retries, taken=self.tools)
        if self._output is not None:
            self._declarations.append(self._output.declaration)
        # Tracing (agentkit.tracing): spans from the run's events, when a provider is given or instrument() ran.
        self._tracer = Tracer(tracer_provider) if tracer_provider is not None else None
        self._declare()
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
        self._init_execution()
        self._running = False
        self._runner: LoopRunner | None = None
        self._prompts = PromptCache()  # the rendering of earlier turns
        if session_id is not None:
            if store is None:
                raise UserError("session_id needs a store: Agent(..., store=SessionStore(), session_id=...)")
            self.session = store.load(session_id)
        else:
            self.session = Session(backend=backend.name, model=backend.model, thinking_enabled=thinking)
            if system:
                self.session.conversation = (SystemMessage(system),)
        self.session.backend, self.session.model = backend.name, backend.model

    def _declare(self) -> None:
        """What follows from the declarations, made once per set of tools."""
        # The parser recovers drifted calls only for these names (and types bare values by their schemas).
        self._declared = gemma4.DeclaredTools.of(self._declarations) if self._declarations else None
        # The declarations block of the prompt, rendered once rather than looked up on every fresh rendering.
        self._declaration_block = gemma4.Declarations(self._declarations)

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
        With an ``output_type`` the answer itself is a call, so ``auto`` steps are ``required``.
        """
        if not self.constrained:
            return None
        choice = self.tool_choice if step == 1 or self.tool_choice == "none" else "auto"
        if choice == "auto" and self._output is not None:
            # Structured output answers by calling final_result: where the grammar can say so, every step calls
            # (final_result or a tool it needs first), so the answer is a well-formed call by construction.
            choice = "required"
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
        """The conversation as OpenAI-style dicts: new ones on every read; assign a list to change it."""
        return self.session.messages

    @messages.setter
    def messages(self, value: Iterable[Any]) -> None:
        self.session.messages = value

    @property
    def conversation(self) -> Conversation:
        """The conversation, typed (:mod:`agentkit.messages`): a tuple of frozen messages."""
        return self.session.conversation

    @conversation.setter
    def conversation(self, value: Iterable[Message]) -> None:
        self.session.conversation = from_dicts(value)

    def reset(self) -> None:
        """Start a new conversation (a new session), keeping tools, settings and the system prompt."""
        system = tuple(m for m in self.session.conversation[:1] if type(m) is SystemMessage)
        self.session = Session(
            backend=self.backend.name, model=self.backend.model, thinking_enabled=self.thinking, conversation=system
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
            bind = getattr(toolset, "bind_host", None)
            if callable(bind):  # its sampling and questions go to this agent's model and person (agent.host)
                bind(self._host)
            await toolset.start()
        versions = tuple(t.version for t in self.toolsets)
        if versions != self._toolset_versions:
            # final_result (structured output) keeps its name and declaration; a toolset's tool of that name is renamed.
            answer = [self._output.as_tool()] if self._output is not None else []
            self.tools = merge_tools([*self._own_tools, *answer], self.toolsets)
            self._declarations = [t.as_openai_tool() for t in self.tools.values()]
            for t in answer:
                del self.tools[t.name]  # answered by the loop, not run as a tool
            self._declare()
            self._prompts.clear()  # the cached rendering declares the old tools
            self._toolset_versions = versions

    async def run_stream(self, prompt: str | Sequence[Mapping[str, Any]]) -> AsyncIterator[AgentEvent]:
        """Run one user request, yielding events as they happen; the last one is ``RunFinished``."""
        if self._running:
            raise UserError("this agent is already running a request; wait for it or use a second Agent")
        user_message: Message
        if isinstance(prompt, str):
            if not prompt.strip():
                raise UserError("the prompt is empty; say what the agent should do")
            user_message = UserMessage(prompt)
        else:
            if not isinstance(prompt, Sequence) or not all(isinstance(p, Mapping) for p in prompt):
                raise UserError(
                    f"the prompt must be a string (or a list of content parts), got {type(prompt).__name__}"
                )
            user_message = from_dict({"role": "user", "content": list(prompt)})
        self._running = True
        try:
            if self.store is None:
                async for event in self._traced_turn(user_message):
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
                        f"reloaded its {len(self.session.conversation)} messages",
                        "info",
                    )
                async for event in self._traced_turn(user_message):
                    yield event
        finally:
            self._running = False

    # -- a turn, traced -------------------------------------------------------------------------------

    def _traced_turn(self, user_message: Message) -> AsyncIterator[AgentEvent]:
        """The turn's events, passed through a tracer when one is configured (one check when none is)."""
        tracer = self._tracer or default_tracer()
        turn = self._turn(user_message)
        return turn if tracer is None else tracer.trace_run(self, cast(AsyncGenerator[AgentEvent, None], turn))
