"""``AgentOptions``: every setting of an :class:`~agentkit.Agent` in one frozen value.

``Agent(backend, tools, system=..., thinking=...)`` stays the everyday spelling; ``AgentOptions`` is for code
that keeps settings apart from the agent that uses them: the command line and the terminal assistant build
one from flags and the config file and make many agents from it (a batch's tasks, the TUI's sessions), each a
``dataclasses.replace`` away (``replace(options, session_id=..., thinking=True)``). Frozen, so an agent made
from it can never see it change underneath; its containers are stored as tuples for the same reason.

A dataclass, not a pydantic model: the fields hold live objects (tools, callbacks, a session store, a tracer
provider) that a schema cannot describe, and the checks with their error messages live once, in ``Agent``,
which validates the values however they came.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from agentkit.errors import UserError

if TYPE_CHECKING:
    from agentkit.agent import ApprovalPolicy, AskCallback
    from agentkit.backends.base import SamplingParams
    from agentkit.sessions import SessionStore
    from agentkit.tools.runtime import Tool
    from agentkit.toolsets import Toolset

__all__ = ["OPTION_NAMES", "AgentOptions", "agent_keywords"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentOptions:
    """The settings of an agent, as ``Agent``'s keyword parameters name them (see ``Agent`` for each)."""

    tools: tuple[Tool | Callable[..., Any], ...] = ()
    toolsets: tuple[Toolset, ...] = ()
    system: str | None = None
    thinking: bool = False
    max_steps: int = 20
    sampling: SamplingParams | Mapping[str, Any] | None = None
    approval: ApprovalPolicy | None = None
    ask: AskCallback | None = None
    store: SessionStore | None = None
    session_id: str | None = None
    max_repeated_calls: int = 3
    max_output_tokens: int | None = None
    output_type: Any = None
    output_retries: int = 2
    tracer_provider: Any = None
    tool_choice: str = "auto"
    constrain_tool_calls: bool | None = None

    def __post_init__(self) -> None:
        # Frozen all the way down: a list or dict handed in could otherwise be changed after the agent was built.
        for name in ("tools", "toolsets"):
            value = getattr(self, name)
            if isinstance(value, str | bytes) or not isinstance(value, Iterable):
                raise UserError(f"AgentOptions({name}=...) takes a list of {name}, got {type(value).__name__}")
            object.__setattr__(self, name, tuple(value))
        if isinstance(self.sampling, Mapping):
            object.__setattr__(self, "sampling", MappingProxyType(dict(self.sampling)))


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(AgentOptions))
"""The names of the settings: ``Agent``'s keyword parameters that ``options=`` stands for."""
_DEFAULTS = AgentOptions()


def _is_default(name: str, value: Any) -> bool:
    default = getattr(_DEFAULTS, name)
    if name in ("tools", "toolsets"):
        return isinstance(value, tuple | list) and not value
    return value is default or (type(value) is type(default) and value == default)


def agent_keywords(options: AgentOptions, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``Agent``'s keyword arguments from ``options``, refusing settings also given as keywords (which would win?).

    ``arguments`` is what the constructor received (its ``locals()``); a keyword left at its default cannot be
    told from one not passed, and is taken as not passed.
    """
    if not isinstance(options, AgentOptions):
        raise UserError(f"Agent(options=...) takes an AgentOptions, got {type(options).__name__}")
    clash = [name for name in OPTION_NAMES if name in arguments and not _is_default(name, arguments[name])]
    if clash:
        named = ", ".join(f"{name}=" for name in clash)
        raise UserError(
            f"Agent() got {named} next to options=; give each setting once: in the AgentOptions, e.g. "
            f"options=dataclasses.replace(options, {clash[0]}=...), or as keywords without options="
        )
    return {name: getattr(options, name) for name in OPTION_NAMES}
