"""Toolsets: sources of tools that live alongside an agent (an MCP server, a plugin), added per agent.

A :class:`Toolset` is started before the agent's first request and stopped when the agent closes; between
the two its tool list may change (an MCP server announces ``tools/list_changed``). The agent asks for the
current list at the start of each request, so the model always sees what is there now, and the rendered
prompt prefix is rebuilt only when the list really changed.

Tools from toolsets are ordinary :class:`~agentkit.tools.Tool` objects: validation, approval, timeouts and
errors work as for Python tools. When two sources offer the same name, the toolset's tool is renamed
``<toolset>.<name>`` (within the characters the model can write after ``call:``), so both stay callable.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from agentkit.errors import UserError
from agentkit.gemma4.values import TOOL_NAME_CHARS
from agentkit.messages import Conversation
from agentkit.tools.runtime import FunctionToolset, Tool

__all__ = [
    "FunctionToolset",
    "InputRequest",
    "SampledText",
    "SamplingRequest",
    "Toolset",
    "ToolsetHost",
    "callable_name",
    "field_hint",
    "field_value",
    "merge_tools",
]


@runtime_checkable
class Toolset(Protocol):
    """A source of tools with a lifecycle; ``name`` prefixes its tools when names collide."""

    name: str

    async def start(self) -> None:
        """Connect (start the server process, open the session) and list the tools; idempotent."""
        ...

    async def stop(self) -> None:
        """Disconnect and release everything; idempotent, and safe after a failed start."""
        ...

    def list_tools(self) -> Sequence[Tool]:
        """The tools offered now (already listed: no I/O here)."""
        ...

    @property
    def version(self) -> int:
        """A number that changes whenever ``list_tools()`` would return something else."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class SamplingRequest:
    """A toolset asks the agent's model to write one message (MCP ``sampling/createMessage``).

    ``conversation`` is the toolset's own (its system prompt and messages), never the agent's; ``source``
    names the toolset, for the approval question and the error the model is told.
    """

    source: str
    conversation: Conversation
    max_tokens: int
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    timeout_s: float | None = None  # for the generation, once approved (a person's wait is not counted)


@dataclasses.dataclass(frozen=True, slots=True)
class SampledText:
    """The model's answer to a :class:`SamplingRequest`: its visible text, without thinking or control tokens."""

    text: str
    model: str
    truncated: bool  # max_tokens ran out before the model ended its turn


@dataclasses.dataclass(frozen=True, slots=True)
class InputRequest:
    """A toolset asks the person for values (MCP ``elicitation/create``): ``message`` says why, ``schema`` is a
    flat JSON Schema object whose properties are strings, numbers, booleans or enums."""

    source: str
    message: str
    schema: Mapping[str, Any]


class ToolsetHost(Protocol):
    """What an agent offers the toolsets it starts, beyond running their tools: its model and its person.

    Toolsets get it from :meth:`Agent.refresh_tools` through an optional ``bind_host(host)`` method, so they
    reach the backend only through the agent, with the agent's approval policy in between: a toolset never
    holds the backend itself (backends know nothing of tools, and tools nothing of engines).
    """

    @property
    def takes_media(self) -> bool:
        """Whether the model reads images (so a sampling request's images are sent, not described)."""
        ...

    async def sample(self, request: SamplingRequest) -> SampledText:
        """The model's answer, once the agent's approval policy (or its person) allowed it; raise
        :class:`~agentkit.errors.ToolError` with the reason when it was denied or failed."""
        ...

    async def elicit(self, request: InputRequest) -> dict[str, Any] | None:
        """The person's answer (None: they declined); raise :class:`~agentkit.errors.ToolError` when no one
        can be asked (batch runs, no terminal)."""
        ...


def field_hint(spec: dict[str, Any], required: bool) -> str:
    """What a form field takes, for the person: its description, type or choices, default, whether it can be
    skipped. Server text: the caller's display makes it safe (terminal_safe, a literal label)."""
    choices = _choices(spec) or _choices(_items(spec))
    kind = spec.get("type", "string")
    shown = f"one of {', '.join(map(str, choices))}" if choices else ("yes/no" if kind == "boolean" else kind)
    if kind == "array":
        shown += ", separated by commas"
    default = spec.get("default")
    if "default" in spec:  # Enter takes it, so Enter cannot also skip
        written = ", ".join(map(str, default)) if isinstance(default, list) else default
        shown += f", Enter for {written}"
    if spec.get("description"):
        shown = f"{spec['description']}; {shown}"
    return f"({shown}{'' if required or 'default' in spec else ', Enter to skip'})"


def field_value(spec: dict[str, Any], text: str) -> Any:
    """What a person typed, as the value a form field of this JSON Schema takes; ValueError says what is wrong."""
    kind = spec.get("type", "string")
    choices = _choices(spec)
    if kind == "array":  # a multiple choice: the choices separated by commas
        return [field_value(_items(spec), part.strip()) for part in text.split(",") if part.strip()]
    if kind == "boolean":
        if text.lower() in {"y", "yes", "true", "1"}:
            return True
        if text.lower() in {"n", "no", "false", "0"}:
            return False
        raise ValueError("answer yes or no")
    if kind in ("integer", "number"):
        try:
            value: Any = int(text) if kind == "integer" else float(text)
        except ValueError:
            raise ValueError(f"answer {'a whole number' if kind == 'integer' else 'a number'}") from None
        return value
    if choices and text not in choices:
        raise ValueError(f"answer one of {', '.join(map(str, choices))}")
    return text


def _choices(spec: dict[str, Any]) -> list[Any]:
    """A field's allowed values: ``enum``, or the ``const`` of each ``oneOf``/``anyOf`` entry (titled choices)."""
    if spec.get("enum"):
        return list(spec["enum"])
    return [o.get("const") for o in spec.get("oneOf") or spec.get("anyOf") or () if isinstance(o, dict)]


def _items(spec: dict[str, Any]) -> dict[str, Any]:
    items = spec.get("items")
    return items if isinstance(items, dict) else {}


_NOT_CALLABLE = re.compile(f"[^{TOOL_NAME_CHARS}]+")


def callable_name(name: str) -> str:
    """``name`` with every character the model cannot write after ``call:`` replaced by ``_``."""
    cleaned = _NOT_CALLABLE.sub("_", name).strip("_")
    return cleaned or "tool"


def merge_tools(static: Iterable[Tool], toolsets: Sequence[Toolset]) -> dict[str, Tool]:
    """All tools by the name the model calls them: the agent's own first, then each toolset's.

    A toolset tool whose name is already taken becomes ``<toolset>.<name>``; if even that is taken, a
    number is added. Renaming never touches the agent's own tools, whose names the developer chose.
    """
    tools: dict[str, Tool] = {t.name: t for t in static}
    for toolset in toolsets:
        prefix = callable_name(toolset.name)
        for t in toolset.list_tools():
            name = t.name
            if name in tools:
                name = f"{prefix}.{t.name}"
                n = 2
                while name in tools:
                    name, n = f"{prefix}.{t.name}.{n}", n + 1
                t = dataclasses.replace(t, name=name)
            tools[name] = t
    return tools


def check_toolsets(toolsets: object) -> list[Toolset]:
    """The ``toolsets=`` argument, checked, with a message that says what was wrong."""
    if isinstance(toolsets, str | bytes) or not isinstance(toolsets, Iterable):
        raise UserError("toolsets= takes a list, e.g. toolsets=[MCPServerStdio('uvx', ['mcp-server-time'])]")
    out = list(toolsets)
    for ts in out:
        if not isinstance(ts, Toolset):
            raise UserError(
                f"toolsets= takes Toolset objects (MCPServerStdio, MCPServerHTTP, ...), got {type(ts).__name__}"
            )
    names = [ts.name for ts in out]
    for name in names:
        if names.count(name) > 1:
            raise UserError(f"two toolsets are named {name!r}; give one another name (name=...)")
    return out
