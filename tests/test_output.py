"""Structured output (``Agent(output_type=...)``), driven by raw Gemma 4 outputs through ScriptedBackend."""

from __future__ import annotations

import dataclasses
from typing import Literal, NotRequired, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from agentkit import Agent, Approval, SessionStore, tool
from agentkit.errors import OutputValidationError, UserError
from agentkit.events import PartialOutput, RunFinished, TextDelta, ToolCallFinished
from agentkit.gemma4 import format_tool_call, render_prompt
from agentkit.gemma4.sanitize import neutralize, sanitize
from agentkit.output import PartialCallReader, output_spec
from agentkit.testing import ScriptedBackend

HAND_OVER = "<|tool_response>"


class Item(BaseModel):
    name: str
    qty: int = Field(ge=1)


class Invoice(BaseModel):
    """An invoice read from a document."""

    customer: str
    total: float
    items: list[Item]
    note: str | None = None


@dataclasses.dataclass
class Point:
    x: int
    y: int
    label: str = ""


class Person(TypedDict):
    name: str
    age: int
    email: NotRequired[str]


def answer(arguments: dict[str, object]) -> str:
    return format_tool_call("final_result", arguments) + HAND_OVER


GOOD = {"customer": "ACME", "total": 12.5, "items": [{"name": "bolt", "qty": 2}]}
BAD_QTY = {"customer": "ACME", "total": 12.5, "items": [{"name": "bolt", "qty": 0}]}


def test_final_result_call_becomes_the_validated_instance() -> None:
    # Written by hand as the model writes it: <|"|> strings, bare keys, nested list of objects.
    raw = (
        '<|tool_call>call:final_result{customer:<|"|>ACME<|"|>,items:[{name:<|"|>bolt<|"|>,qty:2}],'
        "total:12.5}<tool_call|><|tool_response>"
    )
    backend = ScriptedBackend([raw])
    result = Agent(backend, output_type=Invoice).run("Read the invoice")
    assert result.ok and result.steps == 1
    assert result.output == Invoice(customer="ACME", total=12.5, items=[Item(name="bolt", qty=2)])
    # Declared natively, the schema flattened like a tool's (nullable, nested items, required).
    prompt = backend.prompts[0]
    assert "<|tool>declaration:final_result{description:" in prompt
    assert "An invoice read from a document." in prompt
    assert 'note:{nullable:true,type:<|"|>STRING<|"|>}' in prompt


def test_invalid_answer_goes_back_as_the_native_tool_response_then_is_fixed() -> None:
    backend = ScriptedBackend([answer(BAD_QTY), answer(GOOD)])
    result = Agent(backend, output_type=Invoice).run("Read the invoice")
    assert result.ok and result.steps == 2
    assert result.output.items[0].qty == 2
    first, second = backend.prompts
    # Same model turn, appended: the call as written, then pydantic's reason as final_result's response.
    assert second.startswith(first + answer(BAD_QTY))
    assert second.endswith(
        'response:final_result{error:<|"|>invalid final result: items.0.qty: '
        'Input should be greater than or equal to 1<|"|>}<tool_response|>'
    )
    failed, accepted = result.tool_calls
    assert failed.name == "final_result" and failed.error is not None and accepted.ok


def test_invalid_until_the_retry_limit_raises_a_clear_error_and_keeps_the_history(tmp_path) -> None:
    store = SessionStore(tmp_path)
    backend = ScriptedBackend([answer(BAD_QTY)] * 5)
    agent = Agent(backend, output_type=Invoice, output_retries=2, store=store)
    with pytest.raises(OutputValidationError) as info:
        agent.run("Read the invoice")
    assert info.value.attempts == 3
    assert "did not fit Invoice after 3 attempts" in str(info.value)
    assert "items.0.qty: Input should be greater than or equal to 1" in info.value.errors
    assert len(backend.prompts) == 3  # the first answer and two retries, no more
    # The turn is closed and saved, so the conversation can go on.
    saved = store.load(agent.session_id).messages
    assert saved[0] == {"role": "user", "content": "Read the invoice"} and saved[-1]["role"] == "assistant"


def test_zero_retries_fails_on_the_first_invalid_answer() -> None:
    backend = ScriptedBackend([answer(BAD_QTY), answer(GOOD)])
    with pytest.raises(OutputValidationError):
        Agent(backend, output_type=Invoice, output_retries=0).run("Read the invoice")


def test_missing_field_message_names_the_field() -> None:
    backend = ScriptedBackend([answer({"customer": "ACME", "items": []}), answer({**GOOD})])
    result = Agent(backend, output_type=Invoice).run("Read it")
    assert "total: Field required" in (result.tool_calls[0].error or "")


def test_json_text_answer_is_accepted_as_fallback() -> None:
    text = 'Here it is:\n```json\n{"customer": "ACME", "total": 3, "items": []}\n```<turn|>'
    backend = ScriptedBackend([text])
    result = Agent(backend, output_type=Invoice).run("Read it")
    assert result.ok and result.output == Invoice(customer="ACME", total=3.0, items=[])


def test_prose_answer_is_corrected_in_the_same_turn() -> None:
    backend = ScriptedBackend(["The customer is ACME.<turn|>", answer(GOOD)])
    events = list(_events(Agent(backend, output_type=Invoice), "Read it"))
    result = events[-1].result
    assert result.ok and result.output.customer == "ACME"
    assert any(isinstance(e, TextDelta) for e in events)  # the text still streamed
    second = backend.prompts[1]
    assert second.count("<|turn>model") == 1  # no extra user turn: the correction is a tool response
    assert "The customer is ACME.<|tool_response>response:final_result{error:" in second
    assert "call final_result with the result" in second
    # History renders back to the same bytes in a later turn (tool message without a call id, named).
    assert render_prompt(result.messages).count("response:final_result{error:") == 1


def test_later_turn_prompt_equals_a_full_rerender() -> None:
    backend = ScriptedBackend([answer(BAD_QTY), answer(GOOD), answer(GOOD)])
    agent = Agent(backend, output_type=Invoice)
    agent.run("first")
    agent.run("second")
    declarations = agent._declarations
    expected = render_prompt([*agent.messages[:-4], agent.messages[-4]], tools=declarations)
    assert backend.prompts[2] == expected


@pytest.mark.parametrize(
    ("output_type", "arguments", "expected"),
    [
        (int, {"value": 42}, 42),
        (list[str], {"value": ["a", "b"]}, ["a", "b"]),
        (Literal["yes", "no"], {"value": "no"}, "no"),
        (float | None, {"value": None}, None),
        (Point, {"x": 1, "y": 2}, Point(1, 2)),
        (Person, {"name": "Ada", "age": 36}, {"name": "Ada", "age": 36}),
        (list[Person], {"value": [{"name": "Ada", "age": 36}]}, [{"name": "Ada", "age": 36}]),
    ],
)
def test_scalar_dataclass_and_typeddict_outputs(output_type: object, arguments: dict[str, object], expected: object):
    backend = ScriptedBackend([answer(arguments)])
    result = Agent(backend, output_type=output_type).run("go")
    assert result.ok and result.output == expected
    assert type(result.output) is type(expected)


@settings(max_examples=40, deadline=None)
@given(
    st.builds(
        Invoice,
        customer=st.text(),
        total=st.floats(allow_nan=False, allow_infinity=False),
        items=st.lists(st.builds(Item, name=st.text(), qty=st.integers(min_value=1, max_value=10**12)), max_size=3),
        note=st.none() | st.text(),
    )
)
def test_any_invoice_written_as_a_native_call_validates_back_to_itself(invoice: Invoice) -> None:
    # Nested objects, floats, nulls and any unicode text survive the call syntax, the parser and validation;
    # the one change is the one the call syntax makes on purpose: a control-token look-alike in a string
    # (customer="<|") is written neutralized, so it comes back as that neutralized text, never as a token.
    backend = ScriptedBackend([answer(invoice.model_dump())], chunk_size=7)
    expected = Invoice.model_validate(neutralize(invoice.model_dump()))
    assert Agent(backend, output_type=Invoice).run("go").output == expected


def test_a_control_token_look_alike_in_an_answer_comes_back_neutralized() -> None:
    invoice = Invoice(customer="<|", total=0.0, items=[])  # hypothesis found it: the call syntax cannot carry "<|"
    output = Agent(ScriptedBackend([answer(invoice.model_dump())]), output_type=Invoice).run("go").output
    assert output is not None and output.customer == sanitize("<|") != "<|"


def test_scalar_declaration_wraps_the_value_and_typeddict_keeps_not_required() -> None:
    spec = output_spec(int, retries=1)
    assert spec is not None and spec.wrapped
    assert spec.declaration["function"]["parameters"] == {
        "type": "object",
        "properties": {"value": {"type": "integer"}},
        "required": ["value"],
    }
    person = output_spec(Person, retries=1)
    assert person is not None and not person.wrapped
    assert person.declaration["function"]["parameters"]["required"] == ["name", "age"]


def test_typeddict_required_keys_are_enforced() -> None:
    backend = ScriptedBackend([answer({"name": "Ada"}), answer({"name": "Ada", "age": "36", "email": "a@b"})])
    result = Agent(backend, output_type=Person).run("go")
    assert "age: Field required" in (result.tool_calls[0].error or "")
    assert result.output == {"name": "Ada", "age": 36, "email": "a@b"}


def test_scalar_text_answer_is_accepted() -> None:
    backend = ScriptedBackend(["42<turn|>"])
    assert Agent(backend, output_type=int).run("how many?").output == 42


def test_wrong_keys_for_a_wrapped_scalar_are_explained() -> None:
    backend = ScriptedBackend([answer({"answer": 3}), answer({"value": 3})])
    result = Agent(backend, output_type=int).run("go")
    assert "pass the whole answer as value=..., got answer" in (result.tool_calls[0].error or "")
    assert result.output == 3


def test_json_schema_dict_output() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "number", "minimum": -100}},
        "required": ["city", "temp"],
        "$defs": {},
    }
    backend = ScriptedBackend([answer({"city": "Paris", "temp": -200}), answer({"city": "Paris", "temp": 18})])
    result = Agent(backend, output_type=schema).run("weather")
    assert "temp: -200 is less than the minimum of -100" in (result.tool_calls[0].error or "")
    assert result.output == {"city": "Paris", "temp": 18}


def test_other_tools_run_first_and_approval_policies_do_not_gate_the_answer() -> None:
    @tool(side_effects=True)
    def lookup(customer: str) -> str:
        """Look a customer up."""
        return f"{customer} owes 12.5"

    calls = format_tool_call("lookup", {"customer": "ACME"}) + HAND_OVER
    backend = ScriptedBackend([calls, answer(GOOD)])
    agent = Agent(backend, tools=[lookup], output_type=Invoice, approval=lambda r: Approval.ALLOW)
    result = agent.run("Read it")
    assert [c.name for c in result.tool_calls] == ["lookup", "final_result"]
    assert result.output.total == 12.5

    denying = Agent(ScriptedBackend([answer(GOOD)]), output_type=Invoice, approval=lambda r: Approval.DENY)
    assert denying.run("Read it").ok


def test_run_without_an_answer_has_no_output() -> None:
    backend = ScriptedBackend([format_tool_call("nothing", {}) + HAND_OVER])
    result = Agent(backend, output_type=Invoice, max_steps=1).run("go")
    assert result.stop_reason == "max_steps" and result.output is None and not result.ok


def test_bad_output_types_are_refused_at_construction() -> None:
    backend = ScriptedBackend([])
    with pytest.raises(UserError, match="cannot be used for structured output"):
        Agent(backend, output_type=int | str)

    @tool
    def final_result(x: int) -> int:
        """Clash."""
        return x

    with pytest.raises(UserError, match="rename that tool"):
        Agent(backend, tools=[final_result], output_type=int)
    with pytest.raises(UserError, match="output_retries"):
        Agent(backend, output_type=int, output_retries=-1)
    with pytest.raises(UserError, match="not a valid JSON Schema"):
        Agent(backend, output_type={"type": "nonsense"})


def test_str_output_type_is_plain_text() -> None:
    backend = ScriptedBackend(["just text<turn|>"])
    agent = Agent(backend, output_type=str)
    assert agent.run("go").output == "just text"
    assert "final_result" not in backend.prompts[0]


def test_tool_call_events_carry_the_instance() -> None:
    events = list(_events(Agent(ScriptedBackend([answer(GOOD)]), output_type=Invoice), "go"))
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert isinstance(finished[0].result, Invoice)


def _events(agent: Agent, prompt: str) -> list[object]:
    import asyncio

    async def collect() -> list[object]:
        return [e async for e in agent.run_stream(prompt)]

    events = asyncio.run(collect())
    assert isinstance(events[-1], RunFinished)
    return events


def _partials(events: list[object]) -> list[object]:
    return [e.value for e in events if isinstance(e, PartialOutput)]


def test_run_stream_yields_the_answer_as_it_is_written() -> None:
    invoice = {"customer": "ACME Corp", "total": 12.5, "items": [{"name": "bolt", "qty": 2}]}
    backend = ScriptedBackend(["Reading. " + answer(invoice)], chunk_size=3)
    events = _events(Agent(backend, output_type=Invoice), "go")
    partials = _partials(events)
    assert len(partials) >= 3
    assert {"customer": "A"} in partials  # strings grow as they stream
    assert partials[-1] == {"customer": "ACME Corp", "items": [{"name": "bolt", "qty": 2}], "total": 12.5}
    # Every partial is the finished answer with fields missing or cut short, never something else.
    for partial in partials:
        assert isinstance(partial, dict) and set(partial) <= set(invoice)
        assert invoice["customer"].startswith(partial.get("customer", ""))
    assert events.index(next(e for e in events if isinstance(e, PartialOutput))) < events.index(
        next(e for e in events if isinstance(e, ToolCallFinished))
    )


def test_partial_scalars_unwrap_after_thinking_and_text_answers_stream_nothing() -> None:
    events = _events(
        Agent(ScriptedBackend([answer({"value": ["a", "bb"]})], chunk_size=2), output_type=list[str]), "go"
    )
    assert _partials(events)[-1] == ["a", "bb"]
    thought = "<|channel>thought\nThe answer is 7, not 1.<channel|>" + answer({"value": 7})
    events = _events(Agent(ScriptedBackend([thought], chunk_size=4), output_type=int, thinking=True), "go")
    assert _partials(events) == [7]
    assert events[-1].result.output == 7  # type: ignore[attr-defined]
    assert _partials(_events(Agent(ScriptedBackend(["42<turn|>"]), output_type=int), "go")) == []


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2),
            max_leaves=6,
        ),
    ),
    st.integers(min_value=1, max_value=9),
)
def test_partial_reader_ends_with_the_whole_call_for_any_split(arguments: dict[str, object], size: int) -> None:
    from agentkit.gemma4 import parse_response

    raw = answer(arguments)
    reader = PartialCallReader(wrapped=False)
    seen = [v for i in range(0, len(raw), size) if (v := reader.feed(raw[i : i + size])) is not None]
    assert seen and seen[-1] == parse_response(raw).tool_calls[0].arguments


@settings(max_examples=100, deadline=None)
@given(st.text() | st.from_regex(r"```(json)?\n?\{.*\}\n?```", fullmatch=True))
def test_any_text_answer_is_accepted_or_explained(text: str) -> None:
    from agentkit.errors import ToolError

    for output_type in (Invoice, int, list[str], Person):
        spec = output_spec(output_type, retries=0)
        assert spec is not None
        try:
            spec.validate_text(text)
        except ToolError as exc:  # the message the model is told: never empty
            assert str(exc)


def test_constraints_the_declaration_cannot_carry_are_said_in_words() -> None:
    import datetime
    from typing import Annotated

    class Event(BaseModel):
        title: str = Field(max_length=40, description="Short title")
        day: datetime.date
        score: Annotated[float, Field(gt=0, le=10)] | None = None

    backend = ScriptedBackend([answer({"title": "Launch", "day": "2026-11-27"})])
    assert Agent(backend, output_type=Event).run("go").output.day == datetime.date(2026, 11, 27)
    prompt = backend.prompts[0]
    assert 'title:{description:<|"|>Short title (max length 40)<|"|>' in prompt
    assert 'day:{description:<|"|>format date<|"|>' in prompt
    assert 'score:{description:<|"|>greater than 0; maximum 10<|"|>,nullable:true' in prompt
    nested = output_spec(Invoice, retries=0)
    assert nested is not None
    qty = nested.declaration["function"]["parameters"]["properties"]["items"]["items"]["properties"]["qty"]
    assert qty == {"type": "integer", "description": "minimum 1"}
    schema = output_spec({"type": "object", "properties": {"t": {"type": "number", "minimum": -100}}}, retries=0)
    assert schema is not None
    assert schema.declaration["function"]["parameters"]["properties"]["t"]["description"] == "minimum -100"


def test_a_long_answer_is_parsed_a_logarithmic_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    import agentkit.output as output_module

    parsed: list[int] = []
    real = output_module.parse_partial_object

    def counting(text: str) -> dict[str, object] | None:
        parsed.append(len(text))
        return real(text)

    monkeypatch.setattr(output_module, "parse_partial_object", counting)
    raw = answer({"value": [f"line {i}" for i in range(2000)]})  # about 30,000 characters
    reader = PartialCallReader(wrapped=True)
    seen = [v for i in range(0, len(raw), 3) if (v := reader.feed(raw[i : i + 3])) is not None]
    assert seen[-1] == [f"line {i}" for i in range(2000)]
    # Re-parsing on every 3-character piece would be 10,000 parses and ~150 million characters.
    assert len(parsed) < 120 and sum(parsed) < 12 * len(raw)


def test_the_last_partial_is_the_whole_call_when_it_ends_inside_a_large_piece() -> None:
    raw = "Sure. " + answer({"value": ["a", "b"]})
    reader = PartialCallReader(wrapped=True)
    # The call starts in a small piece; the rest (end marker and hand-over) comes in one large piece.
    cut = raw.index("[") + 2
    values = [reader.feed(raw[:cut]), reader.feed(raw[cut:])]
    assert values[-1] == ["a", "b"]


def test_with_toolsets_final_result_stays_declared_and_a_clashing_tool_is_renamed() -> None:
    from agentkit import Tool

    class OneToolset:  # the Toolset protocol over a fixed list
        name, version = "srv", 0

        def __init__(self, *tools: Tool) -> None:
            self.tools = list(tools)

        async def start(self) -> None:
            pass

        async def stop(self) -> None:
            pass

        def list_tools(self) -> list[Tool]:
            return self.tools

    @tool(name="final_result")
    def server_final_result(note: str) -> str:
        """A server's own tool that happens to share the name."""
        return f"noted {note}"

    toolset = OneToolset(server_final_result)
    calls = format_tool_call("srv.final_result", {"note": "x"}) + HAND_OVER
    backend = ScriptedBackend([calls, answer(GOOD)])
    agent = Agent(backend, output_type=Invoice, toolsets=[toolset])
    result = agent.run("Read it")
    assert result.output == Invoice(**GOOD)  # type: ignore[arg-type]
    assert (result.tool_calls[0].name, result.tool_calls[0].result) == ("srv.final_result", "noted x")
    prompt = backend.prompts[0]
    assert prompt.count("declaration:final_result{") == 1 and "declaration:srv.final_result{" in prompt
    assert "final_result" not in agent.tools and isinstance(agent.tools["srv.final_result"], Tool)
