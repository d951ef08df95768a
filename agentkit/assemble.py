"""From an agent described in plain values to live objects: the backend, the built-in tools, MCP servers, agents.

An :class:`AgentConfig` is what a config file, command-line flags or a settings form can say: a backend URL,
built-in tool names, a workspace folder, MCP servers, and the agent's own :class:`~agentkit.AgentOptions`.
:func:`assemble` builds the parts once and returns an :class:`AgentFactory`, which makes any number of agents
that share them (one per ``agentkit run``, one per batch task, one per session of the terminal assistant),
each with its own per-agent settings (``factory.agent(session_id=..., approval=...)``).

The command line and the terminal assistant build every agent here, so a flag or config value that works
for one command works for all of them. Backends are made through the open registry
(:func:`agentkit.backends.registry.backend_from_url`), so a third-party engine's URL works here too.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkit.errors import SandboxUnavailable, UserError
from agentkit.options import OPTION_NAMES, AgentOptions

if TYPE_CHECKING:  # imported when used: the command line reads configs without loading the agent machinery
    from agentkit.agent import Agent
    from agentkit.backends.base import Backend
    from agentkit.mcp import MCPServerHTTP, MCPServerStdio
    from agentkit.tools.runtime import Tool

__all__ = [
    "BUILTIN_TOOLS",
    "AgentConfig",
    "AgentFactory",
    "MCPServerSpec",
    "assemble",
    "backend_options",
    "build_backend",
    "build_tools",
    "build_toolsets",
]

BUILTIN_TOOLS = ("search", "fetch", "python", "files")
"""The built-in tools by the names config files and ``--tools`` use."""


@dataclass(frozen=True)
class MCPServerSpec:
    """One MCP server to start with the agent: a command (stdio) or a URL (streamable HTTP)."""

    name: str | None
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None

    @classmethod
    def from_flag(cls, value: str) -> MCPServerSpec:
        """``--mcp 'uvx mcp-server-time'`` or ``--mcp http://127.0.0.1:8000/mcp``."""
        if value.strip().startswith(("http://", "https://")):
            return cls(name=None, url=value.strip())
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise UserError(f"--mcp {value!r}: {exc}; quote it as one shell word: --mcp 'uvx mcp-server-time'") from exc
        if not words:
            raise UserError("--mcp needs a command (--mcp 'uvx mcp-server-time') or a URL (--mcp http://HOST/mcp)")
        return cls(name=None, command=words[0], args=tuple(words[1:]))


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """An agent in plain values; ``sources`` says where a value came from (``{"workspace": "--workspace"}``),
    so an error about it can name the flag, variable or file to fix."""

    backend_url: str | None = None
    num_ctx: int | None = None  # context size, for the engines that take one (Ollama, transformers)
    tools: tuple[str, ...] = ()  # names from BUILTIN_TOOLS
    workspace: Path | None = None  # the folder the files and python tools work in
    mcp_servers: tuple[MCPServerSpec, ...] = ()
    options: AgentOptions = field(default_factory=AgentOptions)
    sources: Mapping[str, str] = field(default_factory=dict)


def backend_options(url: str, *, num_ctx: int | None = None) -> dict[str, Any]:
    """Constructor options for the engine of ``url``: the context size where the engine has one to set."""
    if num_ctx is None:
        return {}
    scheme = url.split(":", 1)[0].lower()
    if scheme == "ollama":
        return {"options": {"num_ctx": num_ctx}}
    if scheme == "transformers":
        return {"max_cache_len": num_ctx}
    if scheme in ("vllm", "vllms"):
        raise UserError(
            "a context size (--num-ctx, num_ctx) cannot be set on a vLLM server: it is fixed when the server starts "
            "(vllm serve MODEL --max-model-len N); agentkit already caps each request to it"
        )
    raise UserError(
        f"a context size (--num-ctx, num_ctx) applies to the ollama and transformers backends, not to {scheme}:"
    )


def build_backend(url: str, *, num_ctx: int | None = None, **options: Any) -> Backend:
    """The backend at ``url`` (any registered scheme), with the context size where its engine takes one;
    ``options`` go to the engine's constructor as they are."""
    from agentkit.backends.registry import backend_from_url

    return backend_from_url(url, **backend_options(url, num_ctx=num_ctx), **options)


def build_tools(config: AgentConfig) -> list[Tool]:
    """The built-in tools ``config.tools`` names; files (required) and python (optional) use the workspace."""
    if not config.tools:
        return []
    from agentkit.tools import PythonSandbox, Workspace, fetch_url, web_search

    unknown = [name for name in config.tools if name not in BUILTIN_TOOLS]
    if unknown:
        raise UserError(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(BUILTIN_TOOLS)}")
    if "files" in config.tools and config.workspace is None:
        raise UserError("the files tool needs a folder to work in: add --workspace DIR")
    workspace: Workspace | None = None
    if config.workspace is not None:
        # Never created here: a typo in the path would silently start an empty workspace somewhere else.
        where = config.sources.get("workspace", "the workspace setting")
        if not config.workspace.exists():
            raise UserError(
                f"the workspace folder {config.workspace} does not exist ({where}); create it first "
                f"(mkdir -p {config.workspace}) or give an existing folder"
            )
        if not config.workspace.is_dir():
            raise UserError(f"the workspace {config.workspace} ({where}) is not a folder; give a folder")
        workspace = Workspace(config.workspace)
    tools: list[Tool] = []
    for name in config.tools:
        if name == "search":
            tools.append(web_search)
        elif name == "fetch":
            tools.append(fetch_url)
        elif name == "files":
            assert workspace is not None
            tools.extend(workspace.tools())
        elif name == "python":
            # With a workspace the code sees those files; without, it gets a scratch folder thrown away after.
            try:
                tools.append(PythonSandbox(workspace).as_tool())
            except SandboxUnavailable as exc:
                # The sandbox's own advice names a Python argument; whoever chose tools by name needs these.
                raise SandboxUnavailable(
                    "the python tool needs bubblewrap (bwrap) to confine the code, and it is not installed: "
                    "apt-get install bubblewrap (or your distribution's 'bubblewrap' package), or leave python "
                    "out of the tools"
                ) from exc
    return tools


def build_toolsets(
    servers: Sequence[MCPServerSpec], workspace: Path | None = None
) -> list[MCPServerHTTP | MCPServerStdio]:
    """The MCP servers as toolsets, not started yet (an agent starts them on its first request).

    The workspace is offered to each as its root (MCP ``roots``), so a server limited to the client's roots
    (the filesystem server) works in it without its path repeated on the server's command line.
    """
    if not servers:
        return []
    from agentkit.mcp import MCPServerHTTP, MCPServerStdio

    toolsets: list[MCPServerHTTP | MCPServerStdio] = []
    for spec in servers:
        options: dict[str, Any] = {"name": spec.name}
        if workspace is not None:
            options["roots"] = [workspace]
        if spec.timeout_s is not None:
            options["timeout_s"] = spec.timeout_s
        if spec.url is not None:
            toolsets.append(MCPServerHTTP(spec.url, headers=spec.headers, **options))
        else:
            assert spec.command is not None
            toolsets.append(MCPServerStdio(spec.command, spec.args, env=spec.env, cwd=spec.cwd, **options))
    names = [t.name for t in toolsets]
    for i, toolset in enumerate(toolsets):
        if names.count(toolset.name) > 1:  # two servers of the same program: number them, keep both
            toolset.name = f"{toolset.name}{names[:i].count(toolset.name) + 1}"
    return toolsets


@dataclass(frozen=True)
class AgentFactory:
    """A backend and options (tools and toolsets included), shared by every agent made from them."""

    backend: Backend
    options: AgentOptions = field(default_factory=AgentOptions)

    def agent(self, **settings: Any) -> Agent:
        """A new agent; ``settings`` (``AgentOptions`` fields: ``session_id=``, ``approval=``, ...) for it alone."""
        from agentkit.agent import Agent

        try:
            options = dataclasses.replace(self.options, **settings) if settings else self.options
        except TypeError as exc:  # a name that is no AgentOptions field
            raise UserError(f"{exc}; the settings are: {', '.join(OPTION_NAMES)}") from exc
        return Agent(self.backend, options=options)

    def with_backend(self, backend: Backend) -> AgentFactory:
        """The same options on another backend (the terminal assistant's model switch)."""
        return dataclasses.replace(self, backend=backend)

    def with_options(self, **settings: Any) -> AgentFactory:
        """These options changed for every agent made from now on (``with_options(system=...)``)."""
        return dataclasses.replace(self, options=dataclasses.replace(self.options, **settings))

    async def aclose(self) -> None:
        """Stop the toolsets (MCP server processes) and close the backend's connections."""
        try:
            for toolset in reversed(self.options.toolsets):
                await toolset.stop()
        finally:
            await self.backend.aclose()


def _configured_backend(config: AgentConfig) -> Backend:
    if config.backend_url is None:
        raise UserError("no backend given: set a backend URL such as ollama://localhost:11434/gemma4:e4b")
    return build_backend(config.backend_url, num_ctx=config.num_ctx)


def assemble(
    config: AgentConfig,
    *,
    backend: Backend | None = None,
    make_backend: Callable[[AgentConfig], Backend] = _configured_backend,
) -> AgentFactory:
    """Build what ``config`` describes once: its backend, built-in tools and MCP servers (not started yet).

    ``backend`` replaces the configured one; ``make_backend`` is how to build it otherwise (the command line
    picks a default engine when none is configured). The tools are checked first, so a wrong workspace fails
    before a model is loaded. Built tools come after any in ``config.options.tools``, the MCP servers after
    its toolsets.
    """
    tools = build_tools(config)
    toolsets = build_toolsets(config.mcp_servers, config.workspace)
    if backend is None:
        backend = make_backend(config)
    options = dataclasses.replace(
        config.options,
        tools=(*config.options.tools, *tools),
        toolsets=(*config.options.toolsets, *toolsets),
    )
    return AgentFactory(backend, options)
