"""Tool declarations from Python: a typed function or a pydantic model becomes an OpenAI function-tool dict.

The output stays inside the JSON-Schema subset that Gemma's declaration format can express (see
:mod:`agentkit.gemma4.render`): ``type``, ``description``, ``enum``, ``items``, ``properties``, ``required``
and ``nullable``. Gemma declarations have no ``$ref``, ``anyOf`` or ``allOf``, so references are inlined,
``X | None`` becomes ``nullable: true``, and other unions are refused with a TypeError that says what to
change: a declaration the model misreads is worse than an error at definition time.

Type hints are walked here rather than handed to pydantic's ``TypeAdapter`` because pydantic refuses
``typing.TypedDict`` on Python 3.11; pydantic models themselves go through ``model_json_schema`` and are
flattened.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import inspect
import pathlib
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import docstring_parser

from .declarations import _SCHEMA_KEYS
from .flatten import enum_type

__all__ = [
    "REQUIRED",
    "FunctionDeclaration",
    "Parameter",
    "declare_function",
    "function_schema",
    "model_schema",
    "type_schema",
]

Schema = dict[str, Any]

_SCALARS: dict[type, str] = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    Decimal: "number",
    datetime.datetime: "string",
    datetime.date: "string",
    datetime.time: "string",
    uuid.UUID: "string",
    pathlib.Path: "string",
    pathlib.PurePath: "string",
    bytes: "string",
}
_SKIPPED_PARAMS = ("self", "cls")
# TypedDict field qualifiers that say nothing about the value's type.
_WRAPPERS = ("Required", "NotRequired", "ReadOnly")


def _is_pydantic_model(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_json_schema") and hasattr(tp, "model_fields")


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _object_schema(properties: dict[str, Schema], required: list[str], description: str = "") -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if description:
        schema["description"] = description
    return schema


def _hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj, include_extras=True)
    except (NameError, TypeError) as exc:
        raise TypeError(
            f"cannot resolve the type hints of {getattr(obj, '__qualname__', obj)!r}: {exc}; "
            "define the referenced types at module level (not inside a function)"
        ) from exc


def _qualifier(tp: Any) -> str | None:
    name = getattr(typing.get_origin(tp), "_name", None)
    return name if name in _WRAPPERS else None


def _type_schema(tp: Any, seen: tuple[Any, ...] = ()) -> Schema:
    """JSON schema (Gemma subset) for one type hint."""
    if tp is Any or tp is inspect.Parameter.empty or tp is object:
        return {}
    if tp in seen:
        raise TypeError(f"{tp!r} refers to itself; Gemma declarations cannot express recursive types")
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _qualifier(tp) and args:
        return _type_schema(args[0], seen)
    if origin is typing.Annotated:
        schema = _type_schema(args[0], seen)
        for meta in args[1:]:
            text = meta if isinstance(meta, str) else getattr(meta, "description", None)
            if isinstance(text, str) and text:
                schema["description"] = text
        return schema
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in args if a is not type(None)]
        if len(members) != 1:
            names = " | ".join(getattr(a, "__name__", repr(a)) for a in members)
            raise TypeError(
                f"the union {names} cannot be declared to Gemma (only 'X | None' can); use one type, "
                "or a Literal/Enum for a fixed set of values"
            )
        schema = _type_schema(members[0], seen)
        if len(members) != len(args):
            schema["nullable"] = True
        return schema
    if origin is typing.Literal:
        values = [v.value if isinstance(v, enum.Enum) else v for v in args]
        return {"type": enum_type(values), "enum": values}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        return {"type": enum_type(values), "enum": values}
    if tp is type(None):
        raise TypeError("a parameter typed None alone carries no value; use 'X | None'")
    if isinstance(tp, type) and tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    if isinstance(tp, type) and not origin:
        for base, name in _SCALARS.items():
            if issubclass(tp, base) and not _is_typeddict(tp):
                return {"type": name}
    container = origin if origin is not None else tp
    if isinstance(container, type) and issubclass(container, tuple) and not hasattr(container, "_fields"):
        items = [a for a in args if a is not Ellipsis]
        schema = {"type": "array"}
        if items and all(a == items[0] for a in items):
            schema["items"] = _type_schema(items[0], seen)
        return schema
    if isinstance(container, type) and issubclass(container, Mapping | dict) and not _is_typeddict(tp):
        return {"type": "object"}
    if isinstance(container, type) and (
        issubclass(container, list | set | frozenset) or (container is not str and issubclass(container, Sequence))
    ):
        schema = {"type": "array"}
        if args:
            schema["items"] = _type_schema(args[0], seen)
        return schema
    if _is_pydantic_model(tp):
        return model_schema(tp)
    if _is_typeddict(tp):
        hints = _hints(tp)
        required_keys: frozenset[str] = tp.__required_keys__
        props = {k: _type_schema(v, (*seen, tp)) for k, v in hints.items()}
        # With string annotations, Python 3.11 cannot see NotRequired[...] when it builds
        # __required_keys__; the resolved hints can.
        required = [
            k
            for k, v in hints.items()
            if _qualifier(v) == "Required" or (k in required_keys and _qualifier(v) != "NotRequired")
        ]
        return _object_schema(props, required, _class_doc(tp))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = _hints(tp)
        props = {}
        required = []
        for f in dataclasses.fields(tp):
            props[f.name] = _type_schema(hints.get(f.name, Any), (*seen, tp))
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(f.name)
        _add_attribute_docs(tp, props)
        return _object_schema(props, required, _class_doc(tp))
    if isinstance(tp, type) and hasattr(tp, "_fields") and issubclass(tp, tuple):  # NamedTuple
        return {"type": "array"}
    raise TypeError(
        f"cannot declare a parameter of type {getattr(tp, '__name__', tp)!r} to Gemma; use str, int, float, "
        "bool, list[...], dict, Literal, an Enum, a dataclass, a TypedDict or a pydantic model"
    )


def _class_doc(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    # Classes inherit a generic docstring from their base (dict, object); that describes nothing.
    if not doc or doc == inspect.getdoc(dict) or doc.startswith(f"{cls.__name__}("):
        return ""
    return docstring_parser.parse(doc).description or ""


def _add_attribute_docs(cls: type, props: dict[str, Schema]) -> None:
    """Per-field descriptions from the class docstring's Attributes/params section."""
    doc = inspect.getdoc(cls)
    if not doc:
        return
    for param in docstring_parser.parse(doc).params:
        if param.arg_name in props and param.description:
            props[param.arg_name].setdefault("description", param.description)


def _resolve(node: Any, defs: Mapping[str, Any], stack: tuple[str, ...]) -> Any:
    """Inline ``$ref``s, turn ``anyOf [X, null]`` into nullable and drop keys outside the Gemma subset."""
    if isinstance(node, list):
        return [_resolve(x, defs, stack) for x in node]
    if not isinstance(node, Mapping):
        return node
    node = dict(node)
    ref = node.pop("$ref", None)
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in stack:
            raise TypeError(f"model {name!r} refers to itself; Gemma declarations cannot express recursion")
        if name not in defs:
            raise TypeError(f"schema reference {ref!r} has no definition under $defs")
        target = _resolve(defs[name], defs, (*stack, name))
        node = {**target, **{k: v for k, v in node.items() if k == "description"}}
    for key in ("allOf", "anyOf", "oneOf"):
        options = node.pop(key, None)
        if options is None:
            continue
        resolved = [_resolve(o, defs, stack) for o in options]
        non_null = [o for o in resolved if o.get("type") != "null"]
        if len(non_null) != 1:
            raise TypeError(
                f"a {key} of {len(non_null)} alternatives cannot be declared to Gemma (only 'X | None' can); "
                "use one type"
            )
        merged = dict(non_null[0])
        merged.update({k: v for k, v in node.items() if k == "description"})
        if len(non_null) != len(resolved):
            merged["nullable"] = True
        node = merged
    if "const" in node and "enum" not in node:
        node["enum"] = [node["const"]]
    if "enum" in node and "type" not in node:
        node["type"] = enum_type(node["enum"])
    if isinstance(node.get("type"), list):
        kinds = [t for t in node["type"] if t != "null"]
        if len(kinds) == 1:
            if len(kinds) != len(node["type"]):
                node["nullable"] = True
            node["type"] = kinds[0]
    out: Schema = {}
    for key in _SCHEMA_KEYS:  # the keys the declaration format can write
        if key not in node:
            continue
        value = node[key]
        if key == "properties":
            out[key] = {name: _resolve(sub, defs, stack) for name, sub in value.items()}
        elif key == "items":
            if isinstance(value, Mapping) and value:
                out[key] = _resolve(value, defs, stack)
        else:
            out[key] = value
    if out.get("type") == "array" and "items" not in out and node.get("prefixItems"):
        items = [_resolve(i, defs, stack) for i in node["prefixItems"]]
        if all(i == items[0] for i in items):
            out["items"] = items[0]
    return out


def model_schema(model_cls: type) -> Schema:
    """The JSON schema of a pydantic model, flattened into the subset Gemma declarations can express."""
    if not _is_pydantic_model(model_cls):
        raise TypeError(f"model_schema() takes a pydantic BaseModel subclass, not {model_cls!r}")
    raw: Schema = model_cls.model_json_schema()  # type: ignore[attr-defined]
    defs = raw.get("$defs", {})
    schema: Schema = _resolve(raw, defs, ())
    schema.setdefault("type", "object")
    return schema


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One parameter as the declaration reads it: its resolved type hint, and its default (or ``REQUIRED``)."""

    name: str
    annotation: Any
    default: Any


REQUIRED: Any = inspect.Parameter.empty


@dataclasses.dataclass(frozen=True)
class FunctionDeclaration:
    """What one walk over a function's signature, hints and docstring yields: the OpenAI function-tool dict,
    and the parameters it was made from, so a caller can build a validator without walking them again."""

    schema: Schema
    parameters: tuple[Parameter, ...]


def declare_function(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> FunctionDeclaration:
    """Walk ``fn`` (sync or async) once: types from hints, texts from the docstring; see :func:`function_schema`."""
    if not callable(fn):
        raise TypeError(f"function_schema() needs a function, not {fn!r}")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of {fn!r}: {exc}") from exc
    target = fn.__func__ if inspect.ismethod(fn) else fn
    hints = _hints(target)
    doc = docstring_parser.parse(inspect.getdoc(fn) or "")
    param_docs = {p.arg_name: p.description for p in doc.params if p.description}
    tool_name = name or getattr(fn, "__name__", "")
    if not tool_name or tool_name == "<lambda>":
        raise TypeError("a tool needs a name: pass name=... for lambdas and callables without __name__")
    properties: dict[str, Schema] = {}
    required: list[str] = []
    parameters: list[Parameter] = []
    for pname, param in signature.parameters.items():
        if pname in _SKIPPED_PARAMS:
            continue
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            star = "*" if param.kind is inspect.Parameter.VAR_POSITIONAL else "**"
            raise TypeError(
                f"{tool_name}() takes {star}{pname}, which a model cannot fill; declare each parameter by name"
            )
        hint = hints.get(pname, param.annotation)
        try:
            schema = _type_schema(hint)
        except TypeError as exc:
            raise TypeError(f"parameter {pname!r} of {tool_name}(): {exc}") from exc
        if pname in param_docs:
            schema["description"] = param_docs[pname]
        properties[pname] = schema
        if param.default is inspect.Parameter.empty:
            required.append(pname)
        parameters.append(Parameter(pname, Any if hint is inspect.Parameter.empty else hint, param.default))
    if description is None:
        description = doc.description or ""
    function: Schema = {"name": tool_name, "description": description.strip()}
    if properties:
        function["parameters"] = {"type": "object", "properties": properties, "required": required}
    return FunctionDeclaration({"type": "function", "function": function}, tuple(parameters))


def function_schema(fn: Callable[..., Any], *, name: str | None = None, description: str | None = None) -> Schema:
    """An OpenAI function-tool dict for ``fn`` (sync or async): types from hints, texts from the docstring."""
    return declare_function(fn, name=name, description=description).schema


def type_schema(tp: Any) -> Schema:
    """The declaration schema of one type hint (a dataclass, TypedDict, pydantic model, scalar or container).

    Used to declare a structured answer's type; raises TypeError, saying what to change, for what Gemma
    declarations cannot express.
    """
    return _type_schema(tp)
