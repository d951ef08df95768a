"""Declarations built from Python functions and pydantic models stay inside Gemma's schema subset."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, Optional, TypedDict

import pydantic
import pytest

from agentkit.gemma4 import function_schema, model_schema

ALLOWED_KEYS = {"type", "description", "enum", "items", "properties", "required", "nullable"}


def _assert_subset(schema: dict[str, Any]) -> None:
    """Every node uses only keys the declaration renderer understands (no $ref/anyOf/title/default)."""
    assert set(schema) <= ALLOWED_KEYS, set(schema) - ALLOWED_KEYS
    for sub in schema.get("properties", {}).values():
        _assert_subset(sub)
    if "items" in schema:
        _assert_subset(schema["items"])


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(TypedDict):
    """A postal address."""

    street: str
    zip: NotRequired[str]


@dataclass
class Attendee:
    """Someone invited.

    Attributes:
        email: Where the invitation goes.
        optional: Whether they may skip it.
    """

    email: str
    optional: bool = False
    tags: list[str] = field(default_factory=list)


class Room(pydantic.BaseModel):
    name: str = pydantic.Field(description="Room name")
    floor: int | None = None


class Booking(pydantic.BaseModel):
    """A room booking."""

    room: Room
    rooms: list[Room] = []
    kind: Literal["meeting", "call"] = "meeting"
    unit: Unit | None = None


def get_weather(city: str, unit: Unit = Unit.C, days: Optional[int] = None) -> str:  # noqa: UP045
    """Get the current weather for a city.

    Args:
        city: City name, e.g. Paris
        unit: Temperature unit
        days: Forecast length; None for today only.
    """
    return ""


def test_google_docstring_enum_optional_defaults() -> None:
    tool = function_schema(get_weather)
    assert tool == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Paris"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
                    "days": {
                        "type": "integer",
                        "nullable": True,
                        "description": "Forecast length; None for today only.",
                    },
                },
                "required": ["city"],
            },
        },
    }


async def search(query: str, max_results: int = 5, level: Level = Level.LOW) -> list[str]:
    """
    Search the web.

    Parameters
    ----------
    query : str
        The search query
    max_results : int
        How many results
    """
    return []


def test_async_function_numpy_docstring_int_enum() -> None:
    fn = function_schema(search, name="web_search", description="Override.")["function"]
    assert fn["name"] == "web_search" and fn["description"] == "Override."
    props = fn["parameters"]["properties"]
    assert props["query"] == {"type": "string", "description": "The search query"}
    assert props["max_results"] == {"type": "integer", "description": "How many results"}
    assert props["level"] == {"type": "integer", "enum": [1, 2]}
    assert fn["parameters"]["required"] == ["query"]


def rest_style(path: str, lines: tuple[int, ...] = (), flags: set[str] | None = None) -> None:
    """Read part of a file.

    :param path: Relative path
    :param lines: Line numbers to read
    """


def test_rest_docstring_tuple_and_set() -> None:
    props = function_schema(rest_style)["function"]["parameters"]["properties"]
    assert props["path"] == {"type": "string", "description": "Relative path"}
    assert props["lines"] == {"type": "array", "items": {"type": "integer"}, "description": "Line numbers to read"}
    assert props["flags"] == {"type": "array", "items": {"type": "string"}, "nullable": True}


def nested(
    where: Address,
    who: list[Attendee],
    booking: Booking,
    extra: dict[str, Any],
    mode: Literal["a", "b"] = "a",
    note: Annotated[str, "Free text"] = "",
) -> None:
    """Nested things."""


def test_nested_typeddict_dataclass_and_pydantic() -> None:
    params = function_schema(nested)["function"]["parameters"]
    _assert_subset(params)
    props = params["properties"]
    assert props["where"] == {
        "type": "object",
        "description": "A postal address.",
        "properties": {"street": {"type": "string"}, "zip": {"type": "string"}},
        "required": ["street"],
    }
    attendee = props["who"]["items"]
    assert props["who"]["type"] == "array"
    assert attendee["required"] == ["email"]
    assert attendee["properties"]["email"] == {"type": "string", "description": "Where the invitation goes."}
    assert attendee["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    booking = props["booking"]
    assert booking["properties"]["room"]["properties"]["name"] == {"type": "string", "description": "Room name"}
    assert booking["properties"]["room"]["properties"]["floor"] == {"type": "integer", "nullable": True}
    assert booking["properties"]["rooms"]["items"]["required"] == ["name"]
    assert booking["properties"]["kind"] == {"type": "string", "enum": ["meeting", "call"]}
    assert booking["properties"]["unit"] == {"type": "string", "enum": ["celsius", "fahrenheit"], "nullable": True}
    assert props["extra"] == {"type": "object"}
    assert props["mode"] == {"type": "string", "enum": ["a", "b"]}
    assert props["note"] == {"type": "string", "description": "Free text"}
    assert params["required"] == ["where", "who", "booking", "extra"]


def test_model_schema_flattens_refs_and_nullable() -> None:
    schema = model_schema(Booking)
    _assert_subset(schema)
    assert schema["type"] == "object" and schema["description"] == "A room booking."
    assert schema["required"] == ["room"]
    assert "$defs" not in repr(schema) and "anyOf" not in repr(schema)


def test_methods_skip_self_and_cls() -> None:
    class Tools:
        def lookup(self, ticker: str) -> float:
            """Look up a stock price."""
            return 0.0

        @classmethod
        def make(cls, n: int) -> None:
            """Make n things."""

    assert list(function_schema(Tools().lookup)["function"]["parameters"]["properties"]) == ["ticker"]
    assert list(function_schema(Tools.lookup)["function"]["parameters"]["properties"]) == ["ticker"]
    assert list(function_schema(Tools.make)["function"]["parameters"]["properties"]) == ["n"]


def test_function_without_parameters_has_no_parameters_block() -> None:
    def get_time() -> str:
        """Return the current UTC time."""
        return ""

    assert function_schema(get_time) == {
        "type": "function",
        "function": {"name": "get_time", "description": "Return the current UTC time."},
    }


def test_star_args_refused() -> None:
    def f(a: int, *rest: int) -> None: ...

    def g(**options: Any) -> None: ...

    with pytest.raises(TypeError, match=r"\*rest"):
        function_schema(f)
    with pytest.raises(TypeError, match=r"\*\*options"):
        function_schema(g)


def test_unsupported_unions_and_types_are_refused_clearly() -> None:
    def f(x: int | str) -> None: ...

    def g(x: object | complex) -> None: ...

    with pytest.raises(TypeError, match=r"parameter 'x' of f\(\).*only 'X \| None'"):
        function_schema(f)
    with pytest.raises(TypeError, match="cannot be declared"):
        function_schema(g)
    with pytest.raises(TypeError, match="needs a name"):
        function_schema(lambda x: x)
    with pytest.raises(TypeError, match="pydantic BaseModel"):
        model_schema(int)


class Tree(pydantic.BaseModel):
    children: list[Tree] = []


def test_recursive_models_are_refused() -> None:
    with pytest.raises(TypeError, match="refers to itself"):
        model_schema(Tree)
