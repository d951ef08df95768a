"""JSON Schema validators that never leave their schema: no ``$ref`` is ever fetched.

jsonschema (4.26) still resolves a ``$ref`` it cannot find in the schema by downloading it — over HTTP, or any
scheme ``urllib`` opens, ``file://`` included — with only a deprecation warning. Schemas reach agentkit from MCP
servers (untrusted: a tool's ``inputSchema``) and from files given to ``--schema``, so a
``{"$ref": "http://169.254.169.254/..."}`` would have agentkit fetch an address of the server's choosing each
time it checked the model's arguments. Every validator here has an empty ``referencing.Registry`` (nothing to
retrieve from), and :func:`outside_refs` lets callers refuse such a schema up front with a clear message.

Depth is bounded too (:func:`check_depth`): jsonschema, the metaschema check and the declaration builders all
recurse once per level, so a schema nested a few hundred levels deep — a ``--schema`` file, or a hostile
server's ``inputSchema`` — ended in ``RecursionError`` rather than a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_SCHEMA_DEPTH", "UnresolvableRef", "check_depth", "errors_of", "local_validator", "outside_refs"]

_REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")

#: The most levels of nested objects and arrays a schema may have (a property is two: ``properties``, then its
#: schema). Real schemas use a few dozen at most; a few hundred exhaust Python's recursion limit.
MAX_SCHEMA_DEPTH = 64


class UnresolvableRef(ValueError):
    """A reference that does not resolve within the schema (raised by :func:`errors_of`)."""


def outside_refs(schema: Any, limit: int = 5) -> list[str]:
    """The references in ``schema`` that point outside it (anything but ``#...``), at most ``limit`` of them."""
    found: list[str] = []
    stack = [schema]
    while stack and len(found) < limit:
        node = stack.pop()
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in _REF_KEYS and isinstance(value, str) and not value.startswith("#"):
                    found.append(value)
                elif isinstance(value, Mapping | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, Mapping | list))
    return found


def check_depth(schema: Any, what: str) -> None:
    """``UserError`` when ``schema`` nests deeper than :data:`MAX_SCHEMA_DEPTH` (``what`` names it)."""
    from agentkit.errors import UserError

    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise UserError(
                f"{what} is nested more than {MAX_SCHEMA_DEPTH} levels deep; flatten it, or name repeated parts "
                "under $defs"
            )
        children = node.values() if isinstance(node, Mapping) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, Mapping | list))


def local_validator(schema: Mapping[str, Any]) -> Any:
    """A jsonschema validator for ``schema`` (checked against its metaschema: ``SchemaError`` if invalid) that
    resolves references only within it."""
    import jsonschema
    import referencing

    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=referencing.Registry())


def errors_of(validator: Any, data: Any) -> list[Any]:
    """``validator``'s errors for ``data``, sorted by path; :class:`UnresolvableRef` for a reference it cannot
    follow (one that points outside the schema, or at a part of it that does not exist)."""
    import referencing.exceptions

    try:
        return sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.path])
    except referencing.exceptions.Unresolvable as exc:
        raise UnresolvableRef(
            f"the schema refers to {str(exc)[:200]!r}, which is not in it; agentkit never fetches schema "
            "references: put the definition under $defs and refer to it as #/$defs/NAME"
        ) from exc
