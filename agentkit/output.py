"""Structured output: ``Agent(..., output_type=T)`` ends a run with a validated ``T`` instead of free text.

Gemma 4 has no JSON mode, but it has native function calling, which its chat template declares and its
training covers. So the answer is a tool: the agent declares ``final_result`` in the native declaration
format, its parameters being ``T``'s JSON schema flattened the way tool schemas are (:mod:`agentkit.gemma4.schema`),
and the model "calls" it to answer. This keeps the model inside the format it knows best, lets it call
other tools first in the same turn, and reuses the typed-value syntax (``<|"|>`` strings, bare keys) the
parser already reads. A scalar or list ``T`` (``int``, ``list[str]``) is wrapped as ``{"value": ...}``
because a declaration's parameters are always an object.

A model that answers in text instead is not refused outright: text that is JSON for ``T`` (fenced or
bare) is accepted. Whatever fails validation goes back as the native tool response of ``final_result``
carrying pydantic's message, in the same model turn, as the loop already does for a malformed call; after
``output_retries`` failed attempts the run ends with :class:`~agentkit.errors.OutputValidationError`.

Where a backend can constrain decoding to a tool call (a ``tool_choice``/grammar), forcing
``final_result`` makes the answer well-formed by construction; validation here still runs, because a
grammar can enforce the shape but not every constraint (``ge=0``, a regex, a cross-field check).

``output_type`` may also be a JSON Schema (a ``dict``): the result is the validated ``dict``
(checked with :mod:`jsonschema`), which is what ``agentkit run --schema FILE`` uses.
"""

from __future__ import annotations

import json
import re
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic
import typing_extensions

from agentkit import gemma4
from agentkit._jsonschema import UnresolvableRef, check_depth, errors_of, local_validator, outside_refs
from agentkit.errors import OutputValidationError, ToolError, UserError
from agentkit.gemma4.flatten import CONSTRAINT_NOTES, GRAMMAR_BOUNDS
from agentkit.gemma4.partial import parse_partial_object
from agentkit.tools.runtime import Tool

__all__ = ["FINAL_RESULT", "OutputAttempts", "OutputSpec", "PartialCallReader", "output_spec"]

FINAL_RESULT = "final_result"
_VALUE = "value"  # the one parameter of final_result when the output type is not an object
_DESCRIPTION = (
    "Give the final answer to the user's request by calling this tool once, with the complete result as its "
    "arguments. Call it only when you are done (after any other tools you need)."
)


class _Invalid(ToolError):
    """An answer that does not fit the output type; its message is what the model is told."""


def _is_typing_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _pydantic_compatible(tp: Any) -> Any:
    """``tp`` with every ``typing.TypedDict`` remade as a ``typing_extensions`` one, which pydantic accepts on 3.11.

    Python 3.12's ``typing.TypedDict`` is fine; earlier ones lack what pydantic reads, so it refuses them.
    """
    if sys.version_info >= (3, 12):
        return tp
    if _is_typing_typeddict(tp) and type(tp).__module__ == "typing":
        hints = typing.get_type_hints(tp, include_extras=True)
        fields: dict[str, Any] = {}
        for key, hint in hints.items():
            inner, qualifier = hint, getattr(typing.get_origin(hint), "_name", None)
            if qualifier in ("Required", "NotRequired", "ReadOnly"):
                inner = typing.get_args(hint)[0]
            inner = _pydantic_compatible(inner)
            # With string annotations 3.11 cannot see NotRequired[...] when it builds __required_keys__.
            required = qualifier == "Required" or (key in tp.__required_keys__ and qualifier != "NotRequired")
            marker = typing.Required if required else typing.NotRequired
            fields[key] = marker[inner]
        remade = typing_extensions.TypedDict(tp.__name__, fields)  # type: ignore[misc]
        remade.__doc__ = tp.__doc__
        return remade
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is None or not args or origin is typing.Literal:
        return tp
    if origin is typing.Annotated:
        return typing.Annotated[(_pydantic_compatible(args[0]), *tp.__metadata__)]
    new_args = tuple(a if a is Ellipsis else _pydantic_compatible(a) for a in args)
    if new_args == args:
        return tp
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        return typing.Union[new_args]  # noqa: UP007 - built from a tuple
    return origin[new_args]


def _pydantic_message(exc: pydantic.ValidationError, *, wrapped: bool) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err.get("loc", ())]
        if wrapped and loc[:1] == [_VALUE]:
            loc = loc[1:]
        where = ".".join(loc)
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "; ".join(parts)


_FENCE = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL)


def _json_candidates(text: str) -> list[Any]:
    """What a text answer may hold as JSON: a fenced block, the whole text, or its outermost object/array."""
    stripped = text.strip()
    found: list[Any] = []
    pieces = [m.group(1).strip() for m in _FENCE.finditer(stripped)] + [stripped]
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = stripped.find(opener), stripped.rfind(closer)
        if 0 <= start < end:
            pieces.append(stripped[start : end + 1])
    for piece in pieces:
        try:
            found.append(json.loads(piece))
        except ValueError:
            continue
    return found


@dataclass(frozen=True)
class OutputSpec:
    """How one output type is declared to the model, validated and written back as JSON."""

    output_type: Any
    declaration: dict[str, Any]  # the OpenAI function-tool dict of final_result
    wrapped: bool  # final_result takes {"value": ...} rather than the object itself
    retries: int
    _adapter: pydantic.TypeAdapter[Any] | None = field(default=None, repr=False)
    _json_schema: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def tool_name(self) -> str:
        return FINAL_RESULT

    def validate_arguments(self, arguments: Mapping[str, Any]) -> Any:
        """The output from a ``final_result`` call; raises a ToolError whose message is pydantic's reasons."""
        data: Any = dict(arguments)
        if self.wrapped:
            if set(data) != {_VALUE}:
                keys = ", ".join(sorted(data)) or "nothing"
                raise _Invalid(f"invalid final result: pass the whole answer as {_VALUE}=..., got {keys}")
            data = data[_VALUE]
        return self._validate(data, "final result")

    def validate_text(self, text: str) -> Any:
        """The output from a text answer: JSON for the type (bare or fenced), or plain text for a scalar."""
        if not text.strip():
            raise _Invalid(f"the answer was empty; call {FINAL_RESULT} with the result")
        candidates = _json_candidates(text)
        if self.wrapped:
            candidates = [c[_VALUE] if isinstance(c, dict) and set(c) == {_VALUE} else c for c in candidates]
            candidates.append(text.strip())  # "42" for int, a bare word for a Literal
        if not candidates:
            raise _Invalid(f"the answer was text, not the structured result; call {FINAL_RESULT} with the result")
        first: _Invalid | None = None
        for candidate in candidates:
            try:
                return self._validate(candidate, "answer")
            except _Invalid as exc:
                first = first or exc
        assert first is not None
        raise first

    def _validate(self, data: Any, what: str) -> Any:
        if self._adapter is not None:
            try:
                return self._adapter.validate_python(data)
            except pydantic.ValidationError as exc:
                raise _Invalid(f"invalid {what}: {_pydantic_message(exc, wrapped=self.wrapped)}") from exc
        assert self._json_schema is not None
        try:
            errors = errors_of(local_validator(self._json_schema), data)
        except UnresolvableRef as exc:
            raise UserError(f"the output schema cannot be checked: {exc}") from exc
        if errors:
            reasons = "; ".join(
                f"{'.'.join(str(p) for p in e.path)}: {e.message}" if e.path else e.message for e in errors[:5]
            )
            raise _Invalid(f"invalid {what}: {reasons}")
        return data

    def dump_json(self, value: Any, *, indent: int | None = None) -> str:
        """The validated output as JSON text (what ``agentkit run --schema`` prints)."""
        if self._adapter is not None:
            return self._adapter.dump_json(value, indent=indent).decode()
        return json.dumps(value, indent=indent, ensure_ascii=False)

    def as_tool(self) -> Tool:
        """``final_result`` as a Tool, to hold its name among merged tools (the loop answers it, never runs it)."""
        function = self.declaration["function"]

        def final_result(**arguments: Any) -> Any:
            return self.validate_arguments(arguments)

        return Tool(FINAL_RESULT, function["description"], function["parameters"], final_result)

    def attempts(self) -> OutputAttempts:
        """A fresh count of failed answers, for one run."""
        return OutputAttempts(self)


def _wrap(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {_VALUE: schema}, "required": [_VALUE]}


def output_spec(output_type: Any, *, retries: int, taken: Mapping[str, Any] = {}) -> OutputSpec | None:
    """The spec for ``Agent(output_type=...)``; ``None`` for plain text (no type, or ``str``)."""
    if output_type is None or output_type is str:
        return None
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise UserError(f"output_retries must be a whole number of at least 0, got {retries!r}")
    if FINAL_RESULT in taken:
        raise UserError(f"a tool is named {FINAL_RESULT!r}, the name structured output answers with; rename that tool")
    adapter: pydantic.TypeAdapter[Any] | None = None
    json_schema: Mapping[str, Any] | None = None
    if isinstance(output_type, Mapping):
        json_schema = _checked_json_schema(output_type)
        schema = gemma4.flatten_schema(json_schema)  # it says bounds, formats and patterns in descriptions
        description = str(json_schema.get("description", "") or "")
    else:
        try:
            schema = gemma4.type_schema(output_type)
            adapter = pydantic.TypeAdapter(_pydantic_compatible(output_type))
        except (TypeError, NameError, pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError) as exc:
            shown = getattr(output_type, "__name__", None) or repr(output_type)
            raise UserError(f"output_type={shown} cannot be used for structured output: {exc}") from exc
        try:
            full = adapter.json_schema()
        except pydantic.PydanticUserError:  # types pydantic validates but cannot describe: no notes then
            full = {}
        _note_constraints(schema, full, full.get("$defs", {}))
        description = ""
    wrapped = schema.get("type") != "object" or "properties" not in schema
    if wrapped:
        schema = _wrap(schema)
    else:
        description = schema.pop("description", "") or description
    text = _DESCRIPTION + (f" The result: {description.strip()}" if description.strip() else "")
    declaration = {"type": "function", "function": {"name": FINAL_RESULT, "description": text, "parameters": schema}}
    return OutputSpec(output_type, declaration, wrapped, retries, adapter, json_schema)


def _note_constraints(ours: dict[str, Any], full: Mapping[str, Any], defs: Mapping[str, Any], depth: int = 0) -> None:
    """Add to ``ours`` (the flattened declaration) the constraints of ``full`` that flattening dropped.

    A model told ``qty: minimum 1`` or ``day: format date`` gets it right the first time more often than
    one that learns it from a validation error. Walks both schemas in step; anything it cannot match up
    is left as it is (validation still enforces it).
    """
    if depth > 32 or not isinstance(full, Mapping):
        return
    ref = full.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs:
        full = {**defs[ref.rsplit("/", 1)[-1]], **{k: v for k, v in full.items() if k != "$ref"}}
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in full.get(key, ()) if isinstance(o, Mapping) and o.get("type") != "null"]
        if len(options) == 1:
            _note_constraints(ours, options[0], defs, depth + 1)
    notes = "; ".join(
        f"{label} {value if isinstance(value, str) else json.dumps(value)}"
        for key, label in CONSTRAINT_NOTES
        if (value := full.get(key)) is not None
    )
    if notes:
        said = ours.get("description", "")
        ours["description"] = f"{said} ({notes})" if said else notes
    for key in GRAMMAR_BOUNDS:  # not rendered (the declaration has no key for them), but a grammar honours them
        if isinstance(full.get(key), int) and not isinstance(full.get(key), bool):
            ours[key] = full[key]
    props, full_props = ours.get("properties"), full.get("properties")
    if isinstance(props, dict) and isinstance(full_props, Mapping):
        for name, sub in props.items():
            if isinstance(sub, dict) and name in full_props:
                _note_constraints(sub, full_props[name], defs, depth + 1)
    items, full_items = ours.get("items"), full.get("items")
    if isinstance(items, dict) and isinstance(full_items, Mapping):
        _note_constraints(items, full_items, defs, depth + 1)


def _checked_json_schema(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    try:
        import jsonschema
    except ImportError as exc:  # pragma: no cover - a base dependency
        raise UserError("a JSON Schema output_type needs the jsonschema package: pip install jsonschema") from exc
    check_depth(schema, "the output schema")
    try:
        local_validator(schema)
    except jsonschema.SchemaError as exc:
        raise UserError(f"the output schema is not a valid JSON Schema: {exc.message}") from exc
    outside = outside_refs(schema)
    if outside:
        raise UserError(
            f"the output schema refers to {outside[0][:200]!r}, outside itself; agentkit never fetches schema "
            "references (a schema file could point them anywhere): put the definition under $defs and refer to "
            "it as #/$defs/NAME"
        )
    return schema


@dataclass
class OutputAttempts:
    """One run's answers: the accepted output, or the failures so far (at most ``retries`` are forgiven)."""

    spec: OutputSpec
    failures: int = 0
    value: Any = None
    accepted: bool = False
    feedback: str | None = None  # what to tell the model about a rejected text answer

    def check_text(self, text: str) -> bool:
        """Accept a text answer, or keep the reason in ``feedback`` for the model (raises past the limit)."""
        self.feedback = None
        try:
            self.value = self.spec.validate_text(text)
        except _Invalid as exc:
            self._failed(str(exc))
            self.feedback = f"{exc}. Answer by calling {FINAL_RESULT} with the result."
            return False
        self.accepted = True
        return True

    def check_calls(self, finished: list[Any], step: int) -> bool:
        """After a tool round: whether a ``final_result`` call of this step was accepted (raises past the limit)."""
        mine = [r for r in finished if r.step == step and r.name == FINAL_RESULT]
        for record in mine:
            if record.error is None:
                self.value, self.accepted = record.result, True
                return True
        for record in mine:
            self._failed(record.error)
        return False

    def reader(self) -> PartialCallReader:
        """A reader of this step's output that yields the answer's fields while the call is being written."""
        return PartialCallReader(self.spec.wrapped)

    def take_feedback(self) -> dict[str, str] | None:
        """The tool response for a rejected text answer, once."""
        feedback, self.feedback = self.feedback, None
        return None if feedback is None else {"error": feedback}

    def _failed(self, reason: str) -> None:
        self.failures += 1
        if self.failures > self.spec.retries:
            shown = getattr(self.spec.output_type, "__name__", None) or "the output schema"
            raise OutputValidationError(
                f"the model's answer did not fit {shown} after {self.failures} attempts; last problem: {reason}",
                errors=reason,
                attempts=self.failures,
            )


_CALL_OPEN = f"{gemma4.tokens.TOOL_CALL_START}call:{FINAL_RESULT}{{"
_TAIL = len(gemma4.tokens.TOOL_CALL_END) - 1  # enough to see the marker arrive split over pieces


class PartialCallReader:
    """Reads one generation as it streams and returns the ``final_result`` arguments written so far.

    The prefix of a call is closed where it was cut and parsed (:func:`~agentkit.gemma4.partial.parse_partial_object`).
    What comes out is parsed, not validated: fields may be missing and the last string may still grow. The
    finished call goes through the loop's parser and validation.
    """

    def __init__(self, wrapped: bool) -> None:
        self._wrapped = wrapped
        self._buffer: list[str] = []  # the output until the call starts; from then on, the arguments only
        self._seen = 0  # characters of the output already searched for the call's start
        self._started = False
        self._length = 0  # characters of arguments so far
        self._parsed_at = 0  # how many of them the last parse saw
        self._done = False
        self._last: Any = None
        self._tail = ""  # the last characters, where the call's end marker shows up

    def feed(self, text: str) -> Any | None:
        """The arguments so far when they changed with this piece of output, else None."""
        if self._done:
            return None
        if not self._started:
            self._buffer.append(text)
            joined = "".join(self._buffer)
            # Anywhere, thought channel included: the parser takes a call written there as a call too.
            at = joined.find(_CALL_OPEN, max(0, self._seen - len(_CALL_OPEN)))
            self._seen = len(joined)
            if at < 0:
                return None
            self._started = True
            self._buffer = [joined[at + len(_CALL_OPEN) - 1 :]]
            self._length = len(self._buffer[0])
            window = self._buffer[0]
        else:
            self._buffer.append(text)
            self._length += len(text)
            window = self._tail + text
        complete = gemma4.tokens.TOOL_CALL_END in window
        self._tail = window[-_TAIL:]
        # Parsing the whole prefix again on every piece would make a long answer quadratic: parse once it has
        # grown by an eighth (at least 16 characters), and always when the call is complete.
        if not complete and self._length - self._parsed_at < max(16, self._parsed_at // 8):
            return None
        arguments = "".join(self._buffer)
        self._buffer = [arguments]
        self._parsed_at = self._length
        self._done = complete
        value = parse_partial_object(arguments)
        if value is None:
            return None
        if self._wrapped:
            if _VALUE not in value:
                return None
            value = value[_VALUE]
        if value == self._last:
            return None
        self._last = value
        return value
