"""Tools as plain Python functions: declaration, argument validation and execution.

``@tool`` reads a typed function (sync or async): its name, its docstring's summary and per-parameter
descriptions, and its type hints give the declaration the model sees (built by the protocol layer's
schema builder), and a pydantic model built from the same signature validates what the model sends
before the function runs. Validation errors and exceptions are returned to the model as data by the
agent loop; nothing here prints or swallows errors silently.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypedDict, overload

import pydantic
from typing_extensions import Unpack

from agentkit.errors import ToolError, ToolTimeout, UserError
from agentkit.gemma4.schema import REQUIRED, Parameter, declare_function
from agentkit.gemma4.values import check_tool_name
from agentkit.messages import AudioPart, ImagePart, MediaPart, ToolResult, VideoPart, describe_media, media_bytes

__all__ = [
    "MAX_RESPONSE_CHARS",
    "ApprovalCheck",
    "CallContext",
    "FunctionToolset",
    "Tool",
    "ToolArgumentError",
    "ToolOptions",
    "as_tool",
    "as_tools",
    "error_text",
    "to_response",
    "to_response_value",
    "tool",
    "valid_text",
]

DEFAULT_TIMEOUT_S = 120.0
_MEDIA_PARTS = (ImagePart, AudioPart, VideoPart)

#: The most characters of one tool response the conversation keeps (its text, or a mapping written as JSON).
#: Above Gemma 4's whole context (256k tokens is about a million characters), so nothing a model could read is
#: lost, and below what a runaway tool or a hostile MCP server would have stored and sent with every step.
MAX_RESPONSE_CHARS = 1_000_000


class ToolArgumentError(ToolError):
    """Raised when the model's arguments do not match the tool's signature (pydantic's message inside)."""


def _pydantic_message(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


@dataclasses.dataclass(frozen=True)
class CallContext:
    """What an :data:`ApprovalCheck` may consult about the conversation a call comes from.

    ``trusted_urls`` are the URLs (as :func:`~agentkit.tools.provenance.url_key` keys) that came from the
    user or system messages, from results of ``url_source`` tools, or from earlier approved calls.
    """

    trusted_urls: frozenset[str] = frozenset()

    def is_trusted_url(self, url: str) -> bool:
        """True when ``url`` appeared in the conversation from a trusted source (scheme and fragment aside)."""
        from agentkit.tools.provenance import url_key

        key = url_key(url)
        return key is not None and key in self.trusted_urls


ApprovalCheck = Callable[[Mapping[str, Any], CallContext], "str | None"]
"""Per call: ``None`` when this call is as harmless as the tool's ``side_effects`` says, else why a person must
approve it (the call is then treated as having side effects, and the reason is shown with the question)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Tool:
    """A callable the model may ask for, with its declaration and validation model.

    ``side_effects`` marks every call as needing approval under the default policy; ``approval_check`` decides
    per call (``fetch_url`` holds URLs the model composed); ``url_source`` marks tools whose results are URLs a
    person would follow (search results), which ``approval_check`` then trusts.

    ``thread`` (sync functions only): run each call in a worker thread, so a slow or blocking function cannot
    stall the event loop, its timeout holds, and parallel calls overlap. The hand-off costs tens of µs to over
    0.1 ms of CPU time per call (``tools/bench/loop_overhead.py``, threaded row);
    ``thread=False`` skips it for quick functions that never block (pure computation, a dict lookup), which then
    run on the event loop itself: one after another, and beyond the reach of ``timeout_s``.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    side_effects: bool = False
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    validator: type[pydantic.BaseModel] | None = None
    approval_check: ApprovalCheck | None = None
    url_source: bool = False
    thread: bool = True

    def as_openai_tool(self) -> dict[str, Any]:
        """The OpenAI function-tool dict; ``render_prompt`` and the chat-API backends accept it."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    @functools.cached_property
    def is_async(self) -> bool:
        # Cached: ``fn`` never changes (the dataclass is frozen) and the check costs a µs on every call.
        return inspect.iscoroutinefunction(self.fn)

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Check and coerce the model's arguments; raises ``ToolArgumentError`` with pydantic's reasons."""
        if self.validator is None:
            return dict(arguments)
        try:
            model = self.validator.model_validate(dict(arguments))
        except pydantic.ValidationError as exc:
            raise ToolArgumentError(f"invalid arguments for {self.name}: {_pydantic_message(exc)}") from exc
        # Every field, passed or defaulted, with its validated type: a model's __dict__ holds exactly its fields
        # (extra="forbid"), and copying it costs a third of reading each attribute by name.
        return dict(model.__dict__)

    async def acall(self, arguments: Mapping[str, Any]) -> Any:
        """Validate and run: :meth:`validate`, then :meth:`invoke`."""
        return await self.invoke(self.validate(arguments))

    async def invoke(self, kwargs: dict[str, Any]) -> Any:
        """Run with arguments :meth:`validate` returned (the agent validates before approval, then invokes,
        so each call is validated once); sync functions run in a worker thread unless ``thread=False``."""
        if self.is_async:
            coro: Awaitable[Any] = self.fn(**kwargs)
        elif not self.thread:
            return self.fn(**kwargs)
        else:
            coro = asyncio.to_thread(functools.partial(self.fn, **kwargs))
        if self.timeout_s is None:
            return await coro
        # asyncio.timeout, not wait_for: no extra task per call, and a TimeoutError the tool raised itself
        # (a socket timeout) is told apart from this deadline passing.
        deadline = asyncio.timeout(self.timeout_s)
        try:
            async with deadline:
                return await coro
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            # A sync function keeps its thread until it returns (Python cannot kill threads); the loop moves on.
            raise ToolTimeout(f"{self.name} did not finish within {self.timeout_s:g} s") from exc

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calling the tool directly calls the wrapped function, so decorated functions stay usable."""
        return self.fn(*args, **kwargs)


def _validator_for(parameters: Iterable[Parameter], name: str) -> type[pydantic.BaseModel]:
    """The pydantic model of a tool's arguments, from the parameters its declaration was made from."""
    fields: dict[str, Any] = {p.name: (p.annotation, ... if p.default is REQUIRED else p.default) for p in parameters}
    config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return pydantic.create_model(f"{name}_arguments", __config__=config, **fields)


class ToolOptions(TypedDict, total=False):
    """The keyword arguments of :func:`tool`, spelled once for its overloads."""

    name: str | None
    description: str | None
    side_effects: bool
    timeout_s: float | None
    approval_check: ApprovalCheck | None
    url_source: bool
    thread: bool


@overload
def tool(fn: Callable[..., Any], /, **options: Unpack[ToolOptions]) -> Tool: ...
@overload
def tool(fn: None = None, /, **options: Unpack[ToolOptions]) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    side_effects: bool = False,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    approval_check: ApprovalCheck | None = None,
    url_source: bool = False,
    thread: bool = True,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a typed function into a :class:`Tool`; use as ``@tool``, ``@tool(side_effects=True)`` or ``tool(f)``.

    ``side_effects=True`` marks tools that change the world (write files, run code): the default approval
    policy asks a person before running them. ``approval_check(arguments, context)`` makes that decision per
    call (return why a person must approve, or None); ``url_source=True`` marks results as URLs to trust.
    ``thread=False`` runs a quick sync function on the event loop instead of a worker thread (see :class:`Tool`).
    """

    if name is not None:
        _check_name(name)
    if not isinstance(side_effects, bool):
        raise UserError(f"side_effects must be True or False, got {side_effects!r}")
    if not isinstance(thread, bool):
        raise UserError(f"thread must be True or False, got {thread!r}")
    if approval_check is not None and not callable(approval_check):
        raise UserError(
            f"approval_check must be a function (arguments, context) -> reason or None, got {approval_check!r}"
        )

    def wrap(f: Callable[..., Any]) -> Tool:
        if isinstance(f, Tool):
            return dataclasses.replace(
                f,
                name=name or f.name,
                description=description or f.description,
                side_effects=side_effects or f.side_effects,
                timeout_s=timeout_s,
                approval_check=approval_check or f.approval_check,
                url_source=url_source or f.url_source,
                thread=thread and f.thread,
            )
        if not callable(f):
            hint = "; a toolset (an MCP server) goes in Agent(..., toolsets=[...])" if hasattr(f, "list_tools") else ""
            raise UserError(f"tool() needs a function, got {type(f).__name__}{hint}")
        try:
            declared = declare_function(f, name=name, description=description)
        except TypeError as exc:
            raise UserError(f"cannot turn {getattr(f, '__name__', f)!r} into a tool: {exc}") from exc
        decl = declared.schema["function"]
        _check_name(decl["name"])
        return Tool(
            name=decl["name"],
            description=decl.get("description", ""),
            parameters=decl.get("parameters", {"type": "object", "properties": {}}),
            fn=f,
            side_effects=side_effects,
            timeout_s=timeout_s,
            validator=_validator_for(declared.parameters, decl["name"]),
            approval_check=approval_check,
            url_source=url_source,
            thread=thread,
        )

    if fn is None:
        return wrap
    return wrap(fn)


def _check_name(name: object) -> None:
    # The model writes ``call:NAME{``; a name outside the protocol's characters is declared but never parsed back.
    try:
        check_tool_name(name if isinstance(name, str) else "")
    except ValueError:
        raise UserError(
            f"tool name {name!r} cannot be called by the model: use letters, digits, '_', '.' or '-'"
        ) from None


def as_tool(obj: Tool | Callable[..., Any]) -> Tool:
    """Accept a Tool or a plain function (wrapped with default settings)."""
    return obj if isinstance(obj, Tool) else tool(obj)


class FunctionToolset:
    """A fixed set of Python tools under one name: the :class:`~agentkit.toolsets.Toolset` of the built-in tools.

    ``Workspace`` (the file tools) and ``PythonSandbox`` (``run_python``) are function toolsets, and so is
    ``FunctionToolset([f, g], name="math")``. With nothing to start or stop, one goes in ``Agent(tools=[...])``
    (its tools are added as they are) or in ``toolsets=[...]`` (its tools are renamed ``<name>.<tool>`` where
    another source took the name). Subclasses make their tools in :meth:`make_tools`, called once, on first use.
    """

    name: str = "tools"

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = (), *, name: str = "tools") -> None:
        self.name = name
        self._tools: list[Tool] | None = as_tools(tools)

    def make_tools(self) -> list[Tool]:
        """A subclass's tools, made on first use (a subclass need not call this class's constructor)."""
        return []

    def list_tools(self) -> list[Tool]:
        """The tools (made once: declaring a tool reads its signature and builds its validator)."""
        tools = getattr(self, "_tools", None)
        if tools is None:
            tools = self._tools = self.make_tools()
        return tools

    @property
    def version(self) -> int:
        return 0  # the list never changes

    async def start(self) -> None:
        """Nothing to start: the tools are Python functions of this process."""

    async def stop(self) -> None:
        """Nothing to stop."""


def as_tools(objs: Iterable[Tool | Callable[..., Any] | FunctionToolset]) -> list[Tool]:
    """``tools=`` as a list of tools: functions are wrapped, function toolsets contribute their tools."""
    if not isinstance(objs, Iterable) or isinstance(objs, str | bytes | Mapping):
        shown = getattr(objs, "name", None) or getattr(objs, "__name__", None) or type(objs).__name__
        raise UserError(f"tools= takes a list of tools or functions, e.g. tools=[{shown}]")
    tools: list[Tool] = []
    for o in objs:
        tools.extend(o.list_tools() if isinstance(o, FunctionToolset) else [as_tool(o)])
    seen: set[str] = set()
    for t in tools:
        if t.name in seen:
            raise UserError(f"two tools are named {t.name!r}; give one of them another name with tool(name=...)")
        seen.add(t.name)
    return tools


def to_response(value: Any) -> tuple[Any, tuple[MediaPart, ...]]:
    """A tool's return value as the response value and the media that go with it.

    Media are :class:`~agentkit.messages.ImagePart` / ``AudioPart`` / ``VideoPart`` values (what
    :func:`agentkit.Image` and :func:`agentkit.Audio` make), returned alone or in a list or tuple beside text or
    data: ``return ["the chart", Image("chart.png")]``. A file part is read now, so the conversation keeps
    what the tool saw. With media, the value is text (several texts joined by newlines, data as JSON), as
    the template's tool message with media parts is; nothing else in a value is ever taken for media.
    """
    if isinstance(value, _MEDIA_PARTS):
        rest: list[Any] = []
        parts: list[MediaPart] = [value]
    elif isinstance(value, list | tuple) and any(isinstance(v, _MEDIA_PARTS) for v in value):
        rest = [v for v in value if not isinstance(v, _MEDIA_PARTS)]
        parts = [v for v in value if isinstance(v, _MEDIA_PARTS)]
    else:
        return to_response_value(value), ()
    # Every part becomes bytes here: a file is read (the conversation keeps what the tool saw), base64 and data
    # URLs are decoded, and a URL is refused (UserError, the call's error), so what a tool returns never has
    # an engine's server fetch an address the tool (or a page it read) chose.
    media = tuple(
        p if p.data is not None else dataclasses.replace(p, data=media_bytes(p), path=None, url=None) for p in parts
    )
    if all(isinstance(v, str) for v in rest):
        return _bounded(valid_text("\n".join(rest))), media
    single = to_response_value(rest[0]) if len(rest) == 1 else valid_text(_jsonable(rest))
    text = single if isinstance(single, str) else json.dumps(single, ensure_ascii=False, sort_keys=True)
    return _bounded(text), media


def to_response_value(value: Any) -> Any:
    """Turn a tool's return value into what the Gemma response format can carry (a string or a mapping).

    Media in it (see :func:`to_response`) are told in words here: kind, type and size. A response longer than
    :data:`MAX_RESPONSE_CHARS` is cut there, with a note saying so. Lone surrogates become U+FFFD
    (:func:`valid_text`).
    """
    return _bounded(valid_text(_response_value(value)))


def error_text(text: str) -> str:
    """A failed call's message as the model is told it: valid text, cut at :data:`MAX_RESPONSE_CHARS` as a result
    is (an exception may carry a whole page, and an MCP server's error is its own text, of any length)."""
    text = valid_text(text)
    if len(text) <= MAX_RESPONSE_CHARS:
        return text
    return (
        text[:MAX_RESPONSE_CHARS] + f"\n[... cut: the error was {len(text):,} characters; the first "
        f"{MAX_RESPONSE_CHARS:,} are kept]"
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (keys too) replaced by U+FFFD.

    Python gives a file name that is not UTF-8 (``os.listdir``) with its bytes as lone surrogates, and JSON may
    spell one (``"\\udcff"`` from an MCP server). No UTF-8 writer takes them: the session file's save raised
    ``UnicodeEncodeError`` and ended the run, as would a tokenizer or the terminal. So text from a tool is made
    valid as it enters the conversation.
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if not value.isascii() and _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {valid_text(k): valid_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [valid_text(v) for v in value]
    return value


def _response_value(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return _jsonable(value)
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if value is None:
        return "done"
    if isinstance(value, _MEDIA_PARTS) or (
        isinstance(value, list | tuple) and any(isinstance(v, _MEDIA_PARTS) for v in value)
    ):
        text, media = to_response(value)
        return describe_media(ToolResult(text, media=media), "kept with the conversation").content
    return {"value": _jsonable(value)}


def _bounded(value: Any) -> Any:
    """``value``, or its text (a mapping as JSON) cut to :data:`MAX_RESPONSE_CHARS` with a note, when longer."""
    if isinstance(value, str) and len(value) <= MAX_RESPONSE_CHARS:
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    if len(text) <= MAX_RESPONSE_CHARS:
        return value
    return (
        text[:MAX_RESPONSE_CHARS] + f"\n[... cut: the tool returned {len(text):,} characters; the first "
        f"{MAX_RESPONSE_CHARS:,} are kept]"
    )


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)
