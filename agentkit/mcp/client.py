"""MCP servers as toolsets: their tools, listed and kept current, called through the official SDK.

Each server is driven by one supervisor task that opens the SDK's ``Client`` and keeps it open until the
server is stopped (the SDK's transports are anyio task groups: they must be entered and left by the same
task). Calls from the agent's tasks go through that open client. When the server announces
``tools/list_changed`` (a notification on 2025 protocol versions, a ``subscriptions/listen`` event on
2026 ones) the list is fetched again and :attr:`MCPServer.version` moves, so the agent declares the new
list from its next request on.

A server that dies mid-run (its process exits, the HTTP endpoint goes away) fails the call in flight with a
:class:`~agentkit.errors.ToolError` that says so — the call is not retried, since it may have had effects —
and the server is started again for the next call, up to ``max_restarts`` times.

Beyond tools: what a server asks of the client (sampling through the agent's model, the person's answers to
a form, the roots) is answered by :mod:`agentkit.mcp.requests`, with the agent's model and person reached
through the :class:`~agentkit.toolsets.ToolsetHost` the agent binds before it starts the server; resources
the server listed or linked are read through one more tool, ``read_resource``; and every call carries a
progress token, each notification restarting its (idle) timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import mcp.types as mt
from mcp import Client, StdioServerParameters
from mcp.client.stdio import get_default_environment
from mcp.client.subscriptions import ListenNotSupportedError
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from agentkit._jsonschema import UnresolvableRef, check_depth, errors_of, local_validator, outside_refs
from agentkit.errors import ToolError, ToolsetError, ToolTimeout, UserError
from agentkit.gemma4 import flatten_schema
from agentkit.tools.runtime import Tool, ToolArgumentError
from agentkit.toolsets import ToolsetHost, callable_name

from .bounded import DEFAULT_MAX_RESPONSE_BYTES, bounded_client
from .requests import Sampler, elicit, roots_result
from .results import resource_value, result_value, template_pattern
from .stdio import DEFAULT_MAX_LINE_BYTES, StderrTail, bounded_stdio_client

__all__ = ["MCPServer", "MCPServerHTTP", "MCPServerStdio", "MCPTool"]

DEFAULT_TIMEOUT_S = 60.0
MAX_TOOLS = 1000  # from one server; a model chooses well among a few dozen
MAX_TOOL_LIST_BYTES = 8 << 20  # the whole list as JSON; real servers list kilobytes
MAX_DESCRIPTION_CHARS = 8000  # of one tool's description, which goes into every prompt
DEFAULT_START_TIMEOUT_S = 30.0
DEFAULT_SAMPLING_MAX_TOKENS = 2048  # of one answer to a server's sampling request, whatever it asks for
DEFAULT_SAMPLING_TIMEOUT_S = 300.0
DEFAULT_MAX_CALL_S = 3600.0  # a call that reports progress may outlive timeout_s, never this
MAX_RESOURCES = 1000  # remembered from a server's listing
MAX_RESOURCE_CHARS = 100_000  # of one resource's text given to the model
READ_RESOURCE = "read_resource"
ROOTS_GRACE_S = 0.5  # waited at start for a server offered roots to ask for them
_VERSIONED = re.compile(r"(python|pypy|node)[\d.]*(\.exe)?$")  # python3.11, node20
# JSON-RPC errors that are about the call itself, never about a lost session.
_NOT_ABOUT_THE_SESSION = {mt.REQUEST_TIMEOUT, mt.CONNECTION_CLOSED, mt.METHOD_NOT_FOUND, mt.INVALID_PARAMS}
_SCRIPT_SUFFIXES = (".py", ".js", ".ts", ".mjs", ".cjs")
_GENERIC_ENTRY = {"index", "main", "__main__", "server", "cli", "app", "start", "stdio", "mcp"}
_BUILD_FOLDERS = {"dist", "build", "lib", "src", "bin", "out", "cjs", "esm", "node_modules", "scripts"}
_LAUNCHERS = {"uvx", "uv", "npx", "bunx", "pipx", "python", "python3", "node", "deno", "run", "tool", "docker"}


@dataclasses.dataclass(frozen=True, eq=False)
class MCPTool(Tool):
    """A tool of an MCP server; its arguments are checked against the server's own JSON schema."""

    server_name: str = ""
    remote_name: str = ""
    input_schema: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    schema_validator: Any = None

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        args = dict(arguments)
        if self.schema_validator is not None:
            try:
                errors = errors_of(self.schema_validator, args)
            except UnresolvableRef as exc:
                raise ToolArgumentError(f"cannot check the arguments for {self.name}: {exc}") from exc
            if errors:
                reasons = "; ".join(
                    f"{'.'.join(map(str, e.absolute_path)) or 'arguments'}: {e.message}" for e in errors
                )
                raise ToolArgumentError(f"invalid arguments for {self.name}: {reasons}")
        return args


def _refused_for_its_session(exc: MCPError) -> bool:
    """Whether the server refused the request for its session, before running it: the SDK's 404 without a body
    ("Session terminated"), or a server's own words for an unknown session ("Session not found", "No valid
    session ID provided")."""
    message = exc.error.message
    return (exc.code == mt.INVALID_REQUEST and message == "Session terminated") or "session" in message.lower()


class MCPServer:
    """One MCP server as a :class:`~agentkit.toolsets.Toolset`; use :class:`MCPServerStdio` or :class:`MCPServerHTTP`.

    ``timeout_s`` bounds each tool call, ``start_timeout_s`` the connection and first listing.
    ``read_only`` overrides the server's ``readOnlyHint`` for every tool (True: never ask before a call;
    False: always ask); left None, tools the server marks read-only run without approval, the rest need it.
    ``protocol`` is the SDK's negotiation mode: ``"auto"`` (the newest both sides speak) or ``"legacy"`` (the
    2025 initialize handshake, for servers that mishandle the newer discovery).

    ``timeout_s`` is an idle timeout: every progress notification the server sends for a call restarts it,
    up to ``max_call_s`` for the whole call. ``sampling`` lets the server ask the agent's model to write a
    message (each request passes the agent's approval policy; at most ``sampling_max_tokens``, within
    ``sampling_timeout_s``); ``elicitation`` lets it ask the agent's person for values. ``roots`` are the
    folders offered to the server (the CLI offers ``--workspace``); :meth:`set_roots` changes them and tells it.
    """

    _has_sessions = False  # whether the transport has sessions a server can forget (streamable HTTP)

    def __init__(
        self,
        *,
        name: str,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        max_restarts: int = 3,
        read_only: bool | None = None,
        protocol: str = "auto",
        sampling: bool = True,
        sampling_max_tokens: int = DEFAULT_SAMPLING_MAX_TOKENS,
        sampling_timeout_s: float | None = DEFAULT_SAMPLING_TIMEOUT_S,
        elicitation: bool = True,
        roots: Sequence[str | Path] | None = None,
        max_call_s: float | None = DEFAULT_MAX_CALL_S,
    ) -> None:
        self.name = callable_name(name)
        if isinstance(sampling_max_tokens, bool) or not isinstance(sampling_max_tokens, int) or sampling_max_tokens < 1:
            raise UserError(f"sampling_max_tokens is a positive number of tokens, got {sampling_max_tokens!r}")
        self.sampling = sampling
        self.elicitation = elicitation
        self.max_call_s = max_call_s
        self._sampler = Sampler(self.name, sampling_max_tokens, sampling_timeout_s)
        self._host: ToolsetHost | None = None
        self._roots: tuple[Path, ...] = _checked_roots(roots)
        self._roots_offered = roots is not None
        self._roots_listed = asyncio.Event()  # the server asked for the roots (since this connection opened)
        # Resources the model may read: those the server listed, linked or embedded, or a listed template matches.
        self._resource_uris: set[str] = set()
        self._templates: list[re.Pattern[str]] = []
        self.resources: list[mt.Resource] = []
        self._template_names: list[str] = []
        self._can_read = False  # the server declared resources
        self.protocol = protocol
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.max_restarts = max_restarts
        self.read_only = read_only
        self.restarts = 0
        self.server_info: mt.Implementation | None = None
        self._tools: list[MCPTool] = []
        #: The call running now with its last progress: (tool, progress, total, message), or None.
        self.progress: tuple[str, float, float | None, str | None] | None = None
        #: Tools the server lists that are not declared to the model, each with why (``doctor`` shows them).
        self.left_out: dict[str, str] = {}
        self._version = 0
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_event: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._stale = False  # a tools/list_changed came since the last listing began
        self._reader: MCPTool | None = None  # read_resource, when the server has resources

    # -- what a transport provides ----------------------------------------------------------------------

    def describe(self) -> str:
        """How the server is reached, for messages (``uvx mcp-server-time``, a URL)."""
        raise NotImplementedError

    def _open(self, stack: contextlib.AsyncExitStack) -> Client:
        raise NotImplementedError

    def _death_note(self) -> str:
        """What is known about why the server went away (its last stderr lines, for a process)."""
        return ""

    def _client_options(self) -> dict[str, Any]:
        """The SDK ``Client``'s callbacks: a capability is declared only where agentkit answers it."""
        options: dict[str, Any] = {"message_handler": self._on_message, "mode": self.protocol}
        self._sampler.source = self.name  # the name may have changed since (two servers of one program)
        if self.sampling and self._host is not None:
            options["sampling_callback"] = self._sampler
        if self.elicitation and self._host is not None:
            options["elicitation_callback"] = self._on_elicit
        if self._roots_offered:
            options["list_roots_callback"] = self._on_list_roots
        return options

    # -- what an agent provides -------------------------------------------------------------------------

    def bind_host(self, host: ToolsetHost) -> None:
        """The agent's model and person, for the server's sampling and elicitation requests; called by the
        agent before it starts the server (the capabilities are declared when the connection opens)."""
        self._host = host
        self._sampler.host = host

    @property
    def roots(self) -> tuple[Path, ...]:
        return self._roots

    async def set_roots(self, roots: Sequence[str | Path]) -> None:
        """Offer other folders, and tell a running server (``notifications/roots/list_changed``)."""
        self._roots = _checked_roots(roots)
        changed = self._roots_offered
        self._roots_offered = True
        client = self._client
        if not changed:
            await self.stop()  # the roots capability is declared at connect time: reconnect to declare it
        elif client is not None:
            with contextlib.suppress(Exception), warnings.catch_warnings():
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                await client.send_roots_list_changed()

    async def _on_list_roots(self, context: Any) -> mt.ListRootsResult:
        self._roots_listed.set()
        return roots_result(self._roots)

    async def _on_elicit(self, context: Any, params: mt.ElicitRequestParams) -> mt.ElicitResult | mt.ErrorData:
        return await elicit(self._host, self.name, params, None)

    # -- the Toolset protocol ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and self._client is not None

    def list_tools(self) -> Sequence[Tool]:
        return [*self._tools, *([self._reader] if self._reader is not None else [])]

    async def start(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.running:
                return
            await self._shutdown()
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._stop_event = asyncio.Event()
            self._task = asyncio.create_task(self._supervise(ready, self._stop_event), name=f"mcp:{self.name}")
            try:
                await asyncio.wait_for(asyncio.shield(ready), self.start_timeout_s)
            except TimeoutError:
                await self._shutdown()
                raise ToolsetError(
                    f"MCP server {self.name!r} ({self.describe()}) did not answer within {self.start_timeout_s:g} s; "
                    "check that it starts on its own, or raise start_timeout_s"
                ) from None
            except BaseException as exc:
                await self._shutdown()
                if isinstance(exc, ToolsetError | asyncio.CancelledError):
                    raise
                note = self._death_note()
                raise ToolsetError(
                    f"MCP server {self.name!r} ({self.describe()}) could not start: {_reason(exc)}"
                    + (f"\n{note}" if note else "")
                ) from exc

    async def stop(self) -> None:
        if self._lock is None:
            return
        async with self._lock:
            await self._shutdown()

    async def __aenter__(self) -> MCPServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def call_tool(self, remote_name: str, arguments: Mapping[str, Any]) -> Any:
        """Call a tool by the server's own name; the result as a native tool response value."""
        if not self.running:
            await self._revive(f"it had stopped before {remote_name} was called")
        client = self._client
        assert client is not None
        try:
            try:
                result = await self._call(client, remote_name, arguments)
            except MCPError as exc:
                if not await self._session_lost(client, exc):
                    raise
                # The server no longer knows this session (it restarted, or expired it): a new session.
                await self.stop()
                await self._revive(f"it no longer knew the session when {remote_name} was called")
                assert self._client is not None
                read_only = any(t.remote_name == remote_name and not t.side_effects for t in self._tools)
                if not read_only and not _refused_for_its_session(exc):
                    # Only a refusal that names the session says nothing ran; after any other error (a proxy's
                    # 502 once the server had run the call and restarted) the call may have run: a call with
                    # side effects is never made twice (the person approved one).
                    raise ToolError(
                        f"MCP server {self.name!r} lost its session while running {remote_name} "
                        f"({exc.error.message}); a new session is open, but the call was not repeated because "
                        "the server may have run it: check, then call it again if it did not"
                    ) from exc
                # The server ran nothing (it said it does not know the session), or running twice is harmless.
                result = await self._call(self._client, remote_name, arguments)
        except MCPError as exc:
            if exc.code == mt.CONNECTION_CLOSED and "byte limit" in exc.error.message:
                # The SDK gave up on an SSE event past max_response_bytes: the answer was too large, the
                # server is still there.
                raise ToolError(
                    f"{remote_name} failed on MCP server {self.name!r}: its answer was cut off "
                    f"({exc.error.message}); raise max_response_bytes if the server is trusted"
                ) from exc
            if exc.code == mt.CONNECTION_CLOSED:
                note = self._death_note()
                await self._revive_quietly()
                raise ToolError(
                    f"MCP server {self.name!r} stopped while running {remote_name} (the call was not retried; "
                    f"{'the server was restarted' if self.running else 'it could not be restarted'})"
                    + (f": {note}" if note else "")
                ) from exc
            if exc.code == mt.REQUEST_TIMEOUT:
                raise ToolTimeout(f"{remote_name} did not finish within {self.timeout_s:g} s") from exc
            raise ToolError(f"{remote_name} failed on MCP server {self.name!r}: {exc.error.message}") from exc
        self._note_resources(result.content)
        return result_value(remote_name, result)

    async def _call(self, client: Client, remote_name: str, arguments: Mapping[str, Any]) -> mt.CallToolResult:
        """``tools/call`` with a progress token: ``timeout_s`` counts from the call's start or its last
        progress notification (a long job that reports progress is not cut off), ``max_call_s`` from its start.

        The SDK's own timeout is a hard one, so it is left off and the call is watched here; a call given up
        on is cancelled, which the SDK tells the server (``notifications/cancelled``).
        """
        loop = asyncio.get_running_loop()
        started = last = loop.time()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            nonlocal last
            last = loop.time()
            self.progress = (remote_name, progress, total, message)

        task = asyncio.ensure_future(client.call_tool(remote_name, dict(arguments), progress_callback=on_progress))
        try:
            while True:
                now = loop.time()
                waits = [
                    w
                    for w in (
                        self.timeout_s and last + self.timeout_s - now,
                        self.max_call_s and started + self.max_call_s - now,
                    )
                    if w is not None
                ]
                done, _ = await asyncio.wait({task}, timeout=max(0.0, min(waits)) if waits else None)
                if done:
                    return task.result()
                now = loop.time()
                if self.max_call_s is not None and now - started >= self.max_call_s:
                    raise ToolTimeout(
                        f"{remote_name} did not finish within max_call_s={self.max_call_s:g} s, progress or not"
                    )
                if self.timeout_s is not None and now - last >= self.timeout_s:
                    since = " of its last progress report" if last > started else ""
                    raise ToolTimeout(f"{remote_name} did not finish within {self.timeout_s:g} s{since}")
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            self.progress = None

    # -- resources --------------------------------------------------------------------------------------

    def _note_resources(self, blocks: Sequence[Any]) -> None:
        """Links and embedded resources in a result become readable (the model was shown their URIs)."""
        for block in blocks:
            uri = None
            if isinstance(block, mt.ResourceLink):
                uri = str(block.uri)
            elif isinstance(block, mt.EmbeddedResource):
                uri = str(block.resource.uri)
            if uri is not None and len(self._resource_uris) < 10 * MAX_RESOURCES:
                self._resource_uris.add(uri)
        if self._resource_uris and self._reader is None and self._can_read:
            self._reader = self._read_tool()  # the first link of a server that lists none: now there is one
            self._version += 1

    def _readable(self, uri: str) -> bool:
        return uri in self._resource_uris or any(p.fullmatch(uri) for p in self._templates)

    async def read_resource(self, uri: str) -> Any:
        """A resource the server listed or linked (or a listed template matches), as a tool response value."""
        if not isinstance(uri, str) or not uri:
            raise ToolError("read_resource needs the resource's URI")
        if not self._readable(uri):
            shown = ", ".join(sorted(self._resource_uris)[:5])
            raise ToolError(
                f"{uri[:300]!r} is no resource MCP server {self.name!r} listed or linked; read one it named"
                + (f" (e.g. {shown})" if shown else "")
            )
        if not self.running:
            await self._revive(f"it had stopped before {uri[:100]} was read")
        assert self._client is not None
        try:
            result = await asyncio.wait_for(self._client.read_resource(uri, cache_mode="bypass"), self.timeout_s)
        except TimeoutError:
            raise ToolTimeout(f"reading {uri[:200]} did not finish within {self.timeout_s:g} s") from None
        except MCPError as exc:
            raise ToolError(f"MCP server {self.name!r} could not read {uri[:200]}: {exc.error.message}") from exc
        return resource_value(result, MAX_RESOURCE_CHARS)

    async def _list_resources(self, client: Client) -> None:
        caps = client.server_capabilities if hasattr(client, "server_capabilities") else None
        self._can_read = caps is not None and caps.resources is not None
        if not self._can_read:
            self._reader = None
            return
        resources: list[mt.Resource] = []
        cursor: str | None = None
        with contextlib.suppress(MCPError, TimeoutError):
            for _ in range(20):
                page = await asyncio.wait_for(
                    client.list_resources(cursor=cursor, cache_mode="refresh"), self.start_timeout_s
                )
                resources.extend(page.resources[: MAX_RESOURCES - len(resources)])
                cursor = page.next_cursor
                if not cursor or len(resources) >= MAX_RESOURCES:
                    break
        templates: list[mt.ResourceTemplate] = []
        with contextlib.suppress(MCPError, TimeoutError):
            page_t = await asyncio.wait_for(client.list_resource_templates(cache_mode="refresh"), self.start_timeout_s)
            templates = page_t.resource_templates[:100]
        self.resources = resources
        self._resource_uris.update(str(r.uri) for r in resources)
        self._templates = [p for t in templates if (p := template_pattern(t.uri_template)) is not None]
        self._template_names = [t.uri_template for t in templates]
        # Declared only when there is something to read: a server may declare resources and list none.
        self._reader = self._read_tool() if self._resource_uris or self._templates else None

    def _read_tool(self) -> MCPTool:
        examples = ", ".join(str(r.uri) for r in self.resources[:5])
        shapes = ", ".join(self._template_names[:5])
        description = (
            f"Read a resource of the MCP server {self.name!r} by its URI: one a tool result of this server linked or "
            "embedded"
            + (f", one it lists (e.g. {examples})" if examples else "")
            + (f", or one of the form {shapes}" if shapes else "")
            + ". Text and images come back."
        )

        async def read(uri: str) -> Any:
            return await self.read_resource(uri)

        return MCPTool(
            name=READ_RESOURCE,
            description=description,
            parameters={
                "type": "object",
                "properties": {"uri": {"type": "string", "description": "the resource's URI"}},
                "required": ["uri"],
            },
            fn=read,
            side_effects=False,  # reading is what resources are for; the server decides what it exposes
            timeout_s=None if self.timeout_s is None else self.timeout_s + 5,
            server_name=self.name,
            remote_name=READ_RESOURCE,
            input_schema={"type": "object", "properties": {"uri": {"type": "string"}}, "required": ["uri"]},
        )

    # -- internals --------------------------------------------------------------------------------------

    async def _session_lost(self, client: Client, exc: MCPError) -> bool:
        """Whether ``exc`` says the server dropped this session rather than failed the call (HTTP only: a
        server that restarted, or expired the session, while the agent was idle).

        A 404 without a body comes from the SDK as "Session terminated". Servers word it themselves too (the
        Python SDK's "Session not found"), or answer with another status (the reference server's 400 "No valid
        session ID", which the SDK reports as "Server returned an error response"): those are told apart
        from a call that failed by a listing on the same session (ping is gone from the 2026 protocol) —
        when even that is refused, the session is gone.
        """
        if not self._has_sessions or exc.code in _NOT_ABOUT_THE_SESSION:
            return False
        if exc.code == mt.INVALID_REQUEST and exc.error.message == "Session terminated":
            return True
        try:
            await asyncio.wait_for(client.list_tools(cache_mode="refresh"), self.start_timeout_s)
        except (MCPError, TimeoutError):
            return True
        return False

    async def _supervise(self, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        self._roots_listed = asyncio.Event()
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = await stack.enter_async_context(self._open(stack))
                self._client = client
                self.server_info = client.server_info
                await self._refresh(client)
                await self._list_resources(client)
                if self._roots_offered:
                    # Servers limited to roots (server-filesystem) ask for them once the session is up, in the
                    # background: a call sent before the answer reached them is refused ("outside allowed
                    # directories"). A short wait for that request; a server that never asks costs this once.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._roots_listed.wait(), ROOTS_GRACE_S)
                ready.set_result(None)
                listener = asyncio.create_task(self._listen(client))
                try:
                    await stop.wait()
                finally:
                    listener.cancel()
                    with contextlib.suppress(BaseException):
                        await listener
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            elif not isinstance(exc, asyncio.CancelledError | Exception):
                raise
        finally:
            self._client = None
            if not ready.done():
                ready.set_exception(ToolsetError(f"MCP server {self.name!r} closed before it was ready"))

    async def _shutdown(self) -> None:
        task, self._task = self._task, None
        if self._stop_event is not None:
            self._stop_event.set()
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), 10)
            except (TimeoutError, Exception):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        background = list(self._background)
        for t in background:
            t.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        self._client = None

    async def _revive(self, why: str) -> None:
        if self.restarts >= self.max_restarts:
            raise ToolError(
                f"MCP server {self.name!r} is down ({why}) and was already restarted {self.restarts} times; "
                "do not call its tools again"
            )
        self.restarts += 1
        try:
            await self.start()
        except ToolsetError as exc:
            raise ToolError(f"MCP server {self.name!r} is down ({why}) and could not be restarted: {exc}") from exc

    async def _revive_quietly(self) -> None:
        with contextlib.suppress(ToolError):
            await self.stop()
            await self._revive("it stopped")

    async def _listen(self, client: Client) -> None:
        """Follow ``tools/list_changed`` on 2026 protocol versions (older ones notify ``_on_message``)."""
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _ in subscription:
                    await self._refresh(client)
        except ListenNotSupportedError:
            return
        except Exception:  # the connection went away; calls will find out and report it
            return

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, mt.ToolListChangedNotification) and self._client is not None:
            # One listing at a time, and one more after it when notices came meanwhile: a server announcing a
            # change in a loop started a listing per notice, thousands at once, each keeping its pages.
            self._stale = True
            if any(not t.done() for t in self._background):
                return
            # Not awaited here: this runs in the SDK's receive loop, which must stay free for the answer.
            task = asyncio.create_task(self._refresh_while_stale(self._client))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _refresh_while_stale(self, client: Client) -> None:
        """A refetch nobody awaits, repeated while notices came meanwhile; a failure keeps the current list.
        Servers announce changes right after the handshake (the reference server does) and the connection can
        close before the answer comes; the next call reports a dead server, and an error left in the task would
        only be printed to stderr as "Task exception was never retrieved"."""
        while self._stale:
            self._stale = False
            with contextlib.suppress(Exception):
                await self._refresh(client)

    async def _refresh(self, client: Client) -> None:
        listed: list[mt.Tool] = []
        cursor: str | None = None
        size = 0
        for _ in range(100):
            page = await asyncio.wait_for(client.list_tools(cursor=cursor, cache_mode="refresh"), self.start_timeout_s)
            # Every page is kept (and declared to the model): a server that pages on without end, or lists
            # thousands of tools, would fill memory and every prompt. The whole list has one byte limit.
            size += sum(len(t.model_dump_json(by_alias=True)) for t in page.tools)
            if size > MAX_TOOL_LIST_BYTES or len(listed) + len(page.tools) > MAX_TOOLS:
                raise ToolsetError(
                    f"MCP server {self.name!r} lists more than {MAX_TOOLS} tools or {MAX_TOOL_LIST_BYTES:,} bytes of "
                    "them; an agent cannot use that many (give the server a narrower configuration)"
                )
            listed.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        left_out = {t.name: why for t in listed if (why := _unusable(t))}
        self.left_out = left_out
        tools = [self._tool(t) for t in listed if t.name not in left_out]
        before = [(t.name, t.description, t.parameters, t.side_effects) for t in self._tools]
        if [(t.name, t.description, t.parameters, t.side_effects) for t in tools] != before:
            self._tools = tools
            self._version += 1

    def _tool(self, spec: mt.Tool) -> MCPTool:
        schema = dict(spec.input_schema or {"type": "object"})
        validator: Any = None  # the server checks what it receives; a schema we cannot use is no reason to fail
        description = spec.description or spec.title or ""
        if len(description) > MAX_DESCRIPTION_CHARS:
            description = description[:MAX_DESCRIPTION_CHARS] + f" [... cut: {len(description):,} characters]"
        try:
            check_depth(schema, f"the input schema of {spec.name[:80]!r}")
        except UserError as exc:  # the other tools stay usable; this one is declared without parameters
            schema, description = {"type": "object"}, f"{description}\n(its parameters are not shown: {exc})"
        if not outside_refs(schema):  # a $ref to a URL is never fetched (it would be the server's choice of URL)
            with contextlib.suppress(jsonschema.SchemaError):
                validator = local_validator(schema)
        read_only = spec.annotations.read_only_hint if spec.annotations is not None else None
        if self.read_only is not None:
            read_only = self.read_only
        remote = spec.name

        async def call(**arguments: Any) -> Any:
            return await self.call_tool(remote, arguments)

        call.__name__ = callable_name(remote)
        return MCPTool(
            name=callable_name(remote),
            description=description,
            parameters=flatten_schema(schema),
            fn=call,
            side_effects=read_only is not True,
            # The call watches its own (idle) timeout and max_call_s, and speaks first.
            timeout_s=None if self.max_call_s is None else self.max_call_s + 5,
            server_name=self.name,
            remote_name=remote,
            input_schema=schema,
            schema_validator=validator,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, {self.describe()!r})"


class MCPServerStdio(MCPServer):
    """A server run as a subprocess, spoken to over stdin/stdout: ``MCPServerStdio("uvx", ["mcp-server-time"])``.

    ``env`` adds to the SDK's safe default environment (PATH, HOME, ...); the parent's secrets are not passed
    on unless named. The last 16 KiB of the server's stderr are kept, and its last lines explain a crash.
    ``max_line_bytes`` bounds each message the server writes (one line of stdout): past it the call in flight
    fails with a clear error and the server is restarted, instead of the line filling memory
    (:mod:`agentkit.mcp.stdio`).
    """

    def __init__(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        name: str | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        max_restarts: int = 3,
        read_only: bool | None = None,
        protocol: str = "auto",
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        **features: Any,
    ) -> None:
        if not isinstance(command, str) or not command.strip():
            raise UserError("MCPServerStdio needs a command, e.g. MCPServerStdio('uvx', ['mcp-server-time'])")
        if isinstance(args, str):
            raise UserError(f"args is a list of strings, e.g. {args.split()!r}, not one string")
        self.command = command
        self.args = [str(a) for a in args]
        self.env = dict(env or {})
        self.cwd = cwd
        if isinstance(max_line_bytes, bool) or not isinstance(max_line_bytes, int) or max_line_bytes < 1:
            raise UserError(f"max_line_bytes is a positive number of bytes, got {max_line_bytes!r}")
        self.max_line_bytes = max_line_bytes
        self._stderr = StderrTail()
        self._cut = ""  # why the transport stopped the server, when it did
        super().__init__(
            name=name or _name_from_command(command, self.args),
            timeout_s=timeout_s,
            start_timeout_s=start_timeout_s,
            max_restarts=max_restarts,
            read_only=read_only,
            protocol=protocol,
            **features,  # sampling=, elicitation=, roots=, max_call_s=, ...: see MCPServer
        )

    def describe(self) -> str:
        return " ".join([self.command, *self.args])

    def _open(self, stack: contextlib.AsyncExitStack) -> Client:
        params = StdioServerParameters(
            command=self.command,
            args=self.args,
            env={**get_default_environment(), **self.env} if self.env else None,
            cwd=self.cwd,
        )
        self._stderr, self._cut = StderrTail(), ""

        def cut(reason: str) -> None:
            self._cut = reason

        transport = bounded_stdio_client(params, max_line_bytes=self.max_line_bytes, stderr=self._stderr, on_cut=cut)
        return Client(transport, **self._client_options())

    def _death_note(self) -> str:
        if self._cut:
            return self._cut
        lines = [line if len(line) <= 200 else line[:200] + "..." for line in self._stderr.lines()[-3:]]
        return ("its last output: " + " | ".join(lines)) if lines else ""


class MCPServerHTTP(MCPServer):
    """An MCP server reached over streamable HTTP: ``MCPServerHTTP("http://127.0.0.1:8000/mcp")``.

    ``max_response_bytes`` bounds each answer the server sends (a JSON body or one SSE event): past it the
    call fails with a clear error instead of the answer filling memory (:mod:`agentkit.mcp.bounded`).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        max_restarts: int = 3,
        read_only: bool | None = None,
        protocol: str = "auto",
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        **features: Any,
    ) -> None:
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
            shown = _without_user_info(url) if isinstance(url, str) else repr(url)
            raise UserError(f"MCPServerHTTP needs an http(s) URL such as http://127.0.0.1:8000/mcp, got {shown}")
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int) or max_response_bytes < 1:
            raise UserError(f"max_response_bytes is a positive number of bytes, got {max_response_bytes!r}")
        self.url = url
        self.headers = dict(headers or {})
        self.max_response_bytes = max_response_bytes
        super().__init__(
            name=name or parsed.hostname,
            timeout_s=timeout_s,
            start_timeout_s=start_timeout_s,
            max_restarts=max_restarts,
            read_only=read_only,
            protocol=protocol,
            **features,  # sampling=, elicitation=, roots=, max_call_s=, ...: see MCPServer
        )

    _has_sessions = True

    def describe(self) -> str:
        return _without_user_info(self.url)  # shown in errors, logs and the TUI: never a password in the URL

    def _open(self, stack: contextlib.AsyncExitStack) -> Client:
        from mcp.client.streamable_http import streamable_http_client

        http_client = bounded_client(self.max_response_bytes, self.headers)
        stack.push_async_callback(http_client.aclose)  # the SDK leaves a client it was given open
        return Client(
            streamable_http_client(self.url, http_client=http_client, max_sse_event_size=self.max_response_bytes),
            **self._client_options(),
        )


def _checked_roots(roots: Sequence[str | Path] | None) -> tuple[Path, ...]:
    if roots is None:
        return ()
    if isinstance(roots, str | Path):
        raise UserError(f"roots is a list of folders, e.g. roots=[{str(roots)!r}]")
    out = []
    for root in roots:
        path = Path(root).expanduser().resolve()
        if not path.is_dir():
            raise UserError(f"the MCP root {root} is not a folder; give existing folders")
        out.append(path)
    return tuple(out)


def _without_user_info(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@`` (for messages)."""
    head, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if sep and "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{head}{sep}{authority}{slash}{path}"[:300]


def _name_from_command(command: str, args: Sequence[str]) -> str:
    """``uvx mcp-server-time`` → ``time``; ``python3 my_server.py`` → ``my_server``;
    ``node …/server-filesystem/dist/index.js`` → ``filesystem`` (the package, not its entry file)."""
    words = [w for w in [command, *args] if w and not w.startswith("-")]
    names = [_word_name(w) for w in words]
    pick = next((n for n in names if n not in _LAUNCHERS and not _VERSIONED.match(n)), names[0] if names else "mcp")
    for prefix in ("mcp-server-", "mcp_server_", "server-", "mcp-"):
        if pick.startswith(prefix) and len(pick) > len(prefix):
            pick = pick[len(prefix) :]
    for suffix in ("-mcp-server", "-mcp", "_mcp"):
        if pick.endswith(suffix) and len(pick) > len(suffix):
            pick = pick[: -len(suffix)]
    return callable_name(pick)


def _word_name(word: str) -> str:
    """What one word of a command line says about the server: a script's name, or, for an entry file with a
    generic name (``dist/index.js``, ``src/server.py``), the folder above the build folders — the package.
    Two Node servers started as ``node …/dist/index.js`` are otherwise both named ``index``."""
    path = Path(word)
    stem = path.name
    if "@" in stem[1:]:  # a package with its version: mcp-server-x@1.2, @scope/name@1.2
        stem = stem[: stem.index("@", 1)]
    for suffix in _SCRIPT_SUFFIXES:
        stem = stem.removesuffix(suffix)
    if stem not in _GENERIC_ENTRY or len(path.parts) < 2:
        return stem
    for folder in reversed(path.parts[:-1]):
        if folder not in _BUILD_FOLDERS and not folder.startswith("@") and folder not in ("/", ".", ".."):
            return folder
    return stem


def _unusable(spec: mt.Tool) -> str:
    """Why the model must not be offered ``spec`` (every call would fail), or ``""``."""
    if spec.execution is not None and spec.execution.task_support == "required":
        # Such a tool answers a plain tools/call with an error; it must be called as a task (2025-11-25),
        # which the SDK's client does not do. Declaring it would only have the model call it in vain.
        return "it runs only as an MCP task (taskSupport: required), which agentkit's MCP client does not support"
    return ""


def _reason(exc: BaseException) -> str:
    """One line for an exception that may be an ExceptionGroup from the SDK's task groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, FileNotFoundError):
        return f"command not found ({exc.filename or exc}); is it installed and on PATH?"
    if isinstance(exc, MCPError):
        return exc.error.message
    text = str(exc) or type(exc).__name__
    return text if len(text) < 400 else json.dumps(text[:400])
