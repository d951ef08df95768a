"""Tool declarations as Gemma 4 writes them: ``<|tool>declaration:name{description:…,parameters:{…}}<tool|>``.

Separate from the turns (:mod:`.render`) because it is a different job with its own rules and its own cache:
a JSON schema is cut down to the keys Gemma knows, sorted, types upper-cased, and the block is rendered
once per set of tools (:class:`Declarations`, or the cache behind a plain list) instead of on every request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ._writer import _Out
from .tokens import STRING_DELIM, TOOL_END, TOOL_START
from .values import iter_sorted_items, write_key, write_value

__all__ = ["Declarations", "SupportsOpenAITool"]

# Declaration keys Gemma understands, in the (sorted) order they are written.
_SCHEMA_KEYS = ("description", "enum", "items", "nullable", "properties", "required", "type")


@runtime_checkable
class SupportsOpenAITool(Protocol):
    """Anything that can describe itself as an OpenAI function-tool dict (agentkit's Tool objects do)."""

    def as_openai_tool(self) -> dict[str, Any]: ...


def _function_of(tool: Any) -> Mapping[str, Any]:
    if (
        type(tool) is dict
        and type(fn := tool.get("function", tool)) is dict
        and type(fn.get("name")) is str
        and fn["name"]
    ):
        return fn  # the common case, without the ABC checks below (they add up over 20 tools per render)
    # hasattr, not isinstance(tool, SupportsOpenAITool): a runtime Protocol check costs tens of µs.
    if not isinstance(tool, Mapping) and callable(getattr(tool, "as_openai_tool", None)):
        tool = tool.as_openai_tool()
    if not isinstance(tool, Mapping):
        raise TypeError(
            f"a tool must be an OpenAI function-tool dict or have as_openai_tool(), not {type(tool).__name__}"
        )
    fn = tool.get("function", tool)
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise ValueError(f"tool declaration without a function name: {tool!r}")
    return fn


def _string(out: _Out, text: str) -> None:
    out.t(STRING_DELIM)
    out.u(text)
    out.t(STRING_DELIM)


def _schema_node(out: _Out, node: Mapping[str, Any]) -> None:
    """One schema node's inner keys (no braces): only the keys Gemma knows, sorted, types upper-cased."""
    first = True
    for key in _SCHEMA_KEYS:
        if key not in node:
            continue
        value = node[key]
        if not value or (key in ("items", "properties") and not isinstance(value, Mapping)):
            continue  # empty description/enum/required/properties and nullable:false say nothing
        if not first:
            out.t(",")
        first = False
        out.t(f"{key}:")
        if key == "description":
            _string(out, str(value))
        elif key == "type":
            if isinstance(value, list):
                write_value([str(v).upper() for v in value], out.emit)
            else:
                _string(out, str(value).upper())
        elif key == "items":
            out.t("{")
            _schema_node(out, value)
            out.t("}")
        elif key == "properties":
            out.t("{")
            for i, (name, sub) in enumerate(iter_sorted_items(value)):
                if i:
                    out.t(",")
                write_key(name, out.emit)
                out.t(":{")
                _schema_node(out, sub if isinstance(sub, Mapping) else {})
                out.t("}")
            out.t("}")
        elif key == "nullable":
            out.t("true")
        else:  # enum, required: plain value lists
            write_value(list(value), out.emit)


class Declarations:
    """Tool declarations rendered once, for a caller that declares the same tools on every request.

    ``render(messages, Declarations(tools))`` writes the block as it was rendered (and neutralized) here, which
    costs nothing per request; a list of tools is looked up in a cache that must first compare every
    declaration with its copy (a changed dict must not render the old text), 10 µs for 20 tools. Made from
    the declarations as they are now: later edits of the dicts do not reach it, so make a new one when the
    tools change. Accepts what :func:`render` accepts as ``tools``.
    """

    __slots__ = ("_count", "_segments", "_texts")

    def __init__(self, tools: Sequence[Any] = ()) -> None:
        block = _Out()
        for tool in tools:
            _write_declaration(block, _function_of(tool))
        block._flush()
        self._segments = tuple(block._segments)
        self._texts = tuple(block._texts)
        self._count = len(tools)

    def __len__(self) -> int:
        """How many tools are declared."""
        return self._count

    def __repr__(self) -> str:
        return f"Declarations({self._count} tools)"


# Rendered declaration blocks by the ids of the tools' function dicts, with a copy of those dicts to detect one
# that was changed or an id that was reused: the same tools are declared on every step, and rendering and
# neutralizing them dominated render time. The block is kept with its neutralized text.
_BLOCKS: dict[tuple[int, ...], tuple[list[Any], Declarations]] = {}
_MAX_CACHED = 64


def _declarations(out: _Out, tools: Sequence[Any] | Declarations) -> None:
    if not isinstance(tools, Declarations):
        fns = [_function_of(tool) for tool in tools]
        key = tuple(map(id, fns))
        cached = _BLOCKS.get(key)
        if cached is None or cached[0] != fns:
            if len(_BLOCKS) >= _MAX_CACHED:
                _BLOCKS.clear()
            cached = _BLOCKS[key] = (_snapshot(fns), Declarations(fns))
        tools = cached[1]
    out.extend(tools._segments, tools._texts)


def _snapshot(value: Any) -> Any:
    """A copy of the JSON-like structure that later edits of the original cannot reach (deepcopy, 5x faster)."""
    if isinstance(value, Mapping):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_snapshot(v) for v in value]
    return value


def _write_declaration(out: _Out, fn: Mapping[str, Any]) -> None:
    out.t(f"{TOOL_START}declaration:")
    out.u(fn["name"])
    out.t("{description:")
    _string(out, str(fn.get("description") or ""))
    params = fn.get("parameters")
    if isinstance(params, Mapping) and params:
        out.t(",parameters:{")
        top = {k: params[k] for k in ("properties", "required") if k in params}
        _schema_node(out, {**top, "type": params.get("type") or "object"})
        out.t("}")
    response = fn.get("response")
    if isinstance(response, Mapping) and response:
        out.t(",response:{")
        _schema_node(out, response)
        out.t("}")
    out.t("}" + TOOL_END)
