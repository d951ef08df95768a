"""A raw JSON schema (an MCP server's ``inputSchema``, a hand-written one) flattened into Gemma's declaration subset.

Gemma 4 declarations carry only ``type``, ``description``, ``enum``, ``items``, ``properties``, ``required`` and
``nullable`` (see :mod:`agentkit.gemma4.render`); the renderer drops every other key, so a property written
with ``$ref``, ``anyOf`` or ``allOf`` would reach the model as ``{}`` — a parameter it knows nothing about.
:func:`flatten_schema` rewrites a schema into that subset without losing meaning the model needs:

- ``$ref`` into ``$defs``/``definitions`` is inlined; a recursive reference stops at one level with a note;
- ``allOf`` is merged; ``anyOf``/``oneOf`` of ``X`` and ``null`` becomes ``X`` with ``nullable``; of several
  scalar types a type list; of several objects one object whose properties are all alternatives' (required
  only where every alternative requires it) with the alternatives named in the description;
- ``const`` becomes a one-value ``enum``; an ``enum`` without a type gets its values' type;
- constraints the format cannot say (``format``, ``default``, bounds, ``pattern``) are added to the
  description, so the model still reads them.

Unlike :func:`agentkit.gemma4.model_schema`, which refuses what it cannot express (a Python author can change
the type), this never raises on a well-formed schema: a server's schema is what it is. The arguments are still
checked against the original schema before a call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CONSTRAINT_NOTES", "GRAMMAR_BOUNDS", "enum_type", "flatten_schema"]

Schema = dict[str, Any]

_SCALARS = ("string", "integer", "number", "boolean")
# Bounds a declaration keeps beside its words: not rendered, but gemma4.grammar bounds strings and lists by them.
GRAMMAR_BOUNDS: tuple[str, ...] = ("maxLength", "minItems", "maxItems")

# JSON Schema keywords the declaration format has no key for, and the words they are said in (descriptions).
CONSTRAINT_NOTES: tuple[tuple[str, str], ...] = (
    ("format", "format"),
    ("default", "default"),
    ("minimum", "minimum"),
    ("exclusiveMinimum", "greater than"),
    ("maximum", "maximum"),
    ("exclusiveMaximum", "less than"),
    ("minLength", "min length"),
    ("maxLength", "max length"),
    ("minItems", "min items"),
    ("maxItems", "max items"),
    ("pattern", "pattern"),
)


def flatten_schema(schema: Mapping[str, Any]) -> Schema:
    """The Gemma-subset form of ``schema``; the top level is always an object schema (tool parameters)."""
    if not isinstance(schema, Mapping):
        raise TypeError(f"a JSON schema is a mapping, not {type(schema).__name__}")
    defs: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        table = schema.get(key)
        if isinstance(table, Mapping):
            defs.update({f"#/{key}/{name}": value for name, value in table.items()})
    out = _node(schema, defs, ())
    out.setdefault("type", "object")
    if out["type"] == "object":
        out.setdefault("properties", {})
    return out


def _node(node: Any, defs: Mapping[str, Any], stack: tuple[str, ...]) -> Schema:
    if node is True or not isinstance(node, Mapping):
        return {"description": "any JSON value"}
    node = dict(node)
    ref = node.pop("$ref", None)
    if isinstance(ref, str):
        target = defs.get(ref)
        label = ref.rsplit("/", 1)[-1]
        if target is None or ref in stack:
            why = "recursive" if ref in stack else "unresolved reference"
            resolved: Schema = {"type": "object", "description": f"a {label} object ({why})"}
        else:
            resolved = _node(target, defs, (*stack, ref))
        node = {**resolved, **{k: v for k, v in node.items() if k == "description"}}
        if "description" in resolved and "description" in node and node["description"] != resolved["description"]:
            node["description"] = f"{node['description']} — {resolved['description']}"
    for key in ("allOf",):
        parts = node.pop(key, None)
        if isinstance(parts, Sequence):
            merged: Schema = {}
            for part in parts:
                merged = _merge(merged, _node(part, defs, stack))
            # What is left beside allOf (a description, a type) holds too; nothing left adds nothing — not
            # "any JSON value", which an empty node alone would mean.
            node = _merge(merged, _node(node, defs, stack)) if node else merged
    for key in ("anyOf", "oneOf"):
        options = node.pop(key, None)
        if isinstance(options, Sequence) and options:
            union = _union([_node(o, defs, stack) for o in options])
            rest = _node(node, defs, stack) if any(k in node for k in ("type", "properties", "items")) else {}
            union = _merge(union, rest)
            if node.get("description"):
                union["description"] = _join(str(node["description"]), union.get("description"))
            node = union
    return _plain(node, defs, stack)


def _plain(node: Mapping[str, Any], defs: Mapping[str, Any], stack: tuple[str, ...]) -> Schema:
    """A node with no references or combinators left: keep the subset, note the rest."""
    out: Schema = {}
    kind = node.get("type")
    nullable = bool(node.get("nullable"))
    if isinstance(kind, list):
        kinds = [str(k) for k in kind if k != "null"]
        nullable = nullable or len(kinds) != len(kind)
        kind = kinds[0] if len(kinds) == 1 else (kinds or None)
    enum = node.get("enum")
    if "const" in node and enum is None:
        enum = [node["const"]]
    if isinstance(enum, list):
        values = [v for v in enum if v is not None]
        nullable = nullable or len(values) != len(enum)
        if values:
            out["enum"] = values
            if kind is None:
                kind = enum_type(values)
    if kind is None:
        if "properties" in node:
            kind = "object"
        elif "items" in node or "prefixItems" in node:
            kind = "array"
    if kind is not None:
        out["type"] = kind
    description = str(node.get("description") or "")  # titles are labels (pydantic writes "Item")
    notes = [f"{label} {_short(node[key])}" for key, label in CONSTRAINT_NOTES if key in node and node[key] is not None]
    if notes:
        description = _join(description, "; ".join(notes))
    if description:
        out["description"] = description
    for key in GRAMMAR_BOUNDS:  # kept as well as said: rendering skips them, a tool-call grammar enforces them
        value = node.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out[key] = value
    if nullable:
        out["nullable"] = True
    properties = node.get("properties")
    if isinstance(properties, Mapping):
        out["properties"] = {str(name): _node(sub, defs, stack) for name, sub in properties.items()}
        required = [r for r in node.get("required", ()) if isinstance(r, str) and r in properties]
        if required:
            out["required"] = required
    items = node.get("items")
    if isinstance(items, Mapping) and items:
        out["items"] = _node(items, defs, stack)
    elif isinstance(node.get("prefixItems"), Sequence) and node["prefixItems"]:
        tuple_items = [_node(i, defs, stack) for i in node["prefixItems"]]
        out["items"] = tuple_items[0] if all(i == tuple_items[0] for i in tuple_items) else _union(tuple_items)
    if not out:
        out["description"] = "any JSON value"
    return out


def _union(options: list[Schema]) -> Schema:
    """One schema standing for any of ``options`` (already flattened)."""
    nullable = any(o.get("type") == "null" or o.get("nullable") for o in options)
    real = [o for o in options if o.get("type") != "null"]
    if not real:
        return {"type": "null"} if not nullable else {"nullable": True, "description": "null"}
    if len(real) == 1:
        out = dict(real[0])
    elif all(o.get("type") == "object" for o in real):
        out = {"type": "object", "properties": {}}
        for o in real:
            for name, sub in o.get("properties", {}).items():
                out["properties"].setdefault(name, sub)
        common = set.intersection(*(set(o.get("required", ())) for o in real))
        order = [r for o in real for r in o.get("required", ())]
        if common:
            out["required"] = list(dict.fromkeys(r for r in order if r in common))
        shapes = [o.get("description") or "/".join(sorted(o.get("properties", {}))) for o in real]
        out["description"] = "one of: " + " | ".join(str(s) for s in shapes)
    elif all(o.get("enum") and o.get("type") == real[0].get("type") for o in real):
        out = {"type": real[0]["type"], "enum": [v for o in real for v in o["enum"]]}
    else:
        kinds = list(dict.fromkeys(str(o.get("type", "")) for o in real if isinstance(o.get("type"), str)))
        out = {"type": kinds[0]} if len(kinds) == 1 else ({"type": kinds} if kinds else {})
        described = [_describe(o) for o in real]
        out["description"] = "one of: " + " | ".join(described)
        arrays = [o for o in real if o.get("type") == "array" and "items" in o]
        if len(kinds) == 1 and arrays:
            out["items"] = arrays[0]["items"]
        objects = [o for o in real if o.get("type") == "object" and o.get("properties")]
        if len(kinds) == 1 and objects:
            out["properties"] = objects[0]["properties"]
    if nullable:
        out["nullable"] = True
    return out


def _describe(schema: Schema) -> str:
    kind = schema.get("type", "value")
    text = str(kind) if not isinstance(kind, list) else "/".join(map(str, kind))
    if schema.get("enum"):
        text += " " + "/".join(map(_short, schema["enum"]))
    if schema.get("type") == "array" and isinstance(schema.get("items"), Mapping):
        text = f"array of {_describe(schema['items'])}"
    if schema.get("description"):
        text += f" ({schema['description']})"
    return text


def _merge(a: Schema, b: Schema) -> Schema:
    """``allOf``: both schemas hold; properties and required lists are combined."""
    out = {**a, **{k: v for k, v in b.items() if k not in ("properties", "required", "description")}}
    if "properties" in a or "properties" in b:
        out["properties"] = {**a.get("properties", {}), **b.get("properties", {})}
    required = list(dict.fromkeys([*a.get("required", ()), *b.get("required", ())]))
    if required:
        out["required"] = required
    description = _join(str(a.get("description") or ""), b.get("description"))
    if description:
        out["description"] = description
    return out


def _join(first: str, second: Any) -> str:
    second = str(second or "")
    if not first or first == second:
        return second or first
    return f"{first} ({second})" if second else first


def enum_type(values: Sequence[Any]) -> str:
    """The JSON type shared by enum values (bool before int: bool is an int subclass)."""
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "number"
    return "string"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
