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
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from agentkit.errors import UserError
from agentkit.gemma4.values import TOOL_NAME_CHARS
from agentkit.tools.runtime import FunctionToolset, Tool

__all__ = ["FunctionToolset", "Toolset", "callable_name", "merge_tools"]


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
