"""Type a call's string arguments by the declared schema: ``"3"`` for an integer is 3.

The model wraps values in ``<|"|>`` far more often than it leaves them bare, so a number, boolean, object or
list written as a string is read as what its property declares, when the whole string is one. Anything else is
left as written, for schema validation to report. The small readers here are shared with the repair reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["NUMBER", "coerce_arguments", "read_number", "type_of"]

#: A JSON/Python number literal.
NUMBER: Final = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def type_of(schema: Mapping[str, Any]) -> str | None:
    """The JSON type a property expects, looking through ``["string", "null"]`` and ``anyOf`` (Optional[...])."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None:
        for key in ("anyOf", "oneOf"):
            for option in schema.get(key) or ():
                if isinstance(option, Mapping) and option.get("type") not in (None, "null"):
                    return type_of(option)
    return kind if isinstance(kind, str) else None


def read_number(literal: str) -> int | float:
    """A number literal as the int or float it spells (``NUMBER`` has matched it).

    ValueError for an integer with more digits than Python converts (``sys.get_int_max_str_digits``): model
    output is untrusted, so each caller turns that into its own answer rather than a crash.
    """
    return float(literal) if any(c in literal for c in ".eE") else int(literal)


_BOOLEANS: Final = {"true": True, "false": False}


def coerce_arguments(arguments: Mapping[str, Any], schema: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """Arguments with strings typed by the schema (``"3"`` for an integer, ``"{…}"`` for an object); changed?

    The model wraps values in ``<|"|>`` far more often than it leaves them bare, so a number, boolean, object
    or list written as a string is read as what the property declares, when the whole string is one.
    """
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return dict(arguments), False
    changed = False
    result = dict(arguments)
    for key, value in arguments.items():
        prop = props.get(key)
        if isinstance(prop, Mapping):
            new = _coerce(value, prop)
            if new is not _UNCHANGED:
                result[key] = new
                changed = True
    return result, changed


_UNCHANGED: Final = object()


def _coerce(value: Any, schema: Mapping[str, Any]) -> Any:
    kind = type_of(schema)
    if isinstance(value, str):
        text = value.strip()
        if kind in ("integer", "number") and NUMBER.fullmatch(text):
            try:
                number = read_number(text)
            except ValueError:
                return _UNCHANGED  # too many digits: left as written, for validation to report
            if kind == "integer" and isinstance(number, float):
                return int(number) if number.is_integer() else _UNCHANGED
            return number
        if kind == "boolean" and text.lower() in _BOOLEANS:
            return _BOOLEANS[text.lower()]
        if kind in ("object", "array") and text[:1] in "{[":
            try:
                parsed = json.loads(text)
            except ValueError:
                return _UNCHANGED
            if isinstance(parsed, dict if kind == "object" else list):
                inner = _coerce(parsed, schema)
                return parsed if inner is _UNCHANGED else inner
        return _UNCHANGED
    if isinstance(value, dict) and kind in ("object", None):
        new, changed = coerce_arguments(value, schema)
        return new if changed else _UNCHANGED
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        items = [_coerce(v, schema["items"]) for v in value]
        if all(v is _UNCHANGED for v in items):
            return _UNCHANGED
        return [v if n is _UNCHANGED else n for v, n in zip(value, items, strict=True)]
    return _UNCHANGED
