"""Grammar-constrained tool calls on the tiny random-weight Gemma 4, in process, end to end through Agent.

A random-weight model writes noise; left alone it almost never writes a call, and never a well-formed one. With the
grammar every call it writes must parse and validate, whatever the sampler picks: that is what these tests check,
over a modest number of seeded runs (the bench, tools/bench/toolcall_reliability.py, runs hundreds).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pytest.importorskip("xgrammar")

import jsonschema  # noqa: E402
import pydantic  # noqa: E402

from agentkit import Agent, SamplingParams  # noqa: E402
from agentkit.agent import allow_all  # noqa: E402
from agentkit.backends.transformers import TransformersBackend  # noqa: E402
from agentkit.tools.runtime import Tool  # noqa: E402

pytestmark = [pytest.mark.transformers, pytest.mark.filterwarnings("ignore::UserWarning")]

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
    },
    "required": ["city"],
}


class WeatherArgs(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    city: Annotated[str, pydantic.Field(max_length=24)]
    unit: Literal["celsius", "fahrenheit"] = "celsius"
    days: int = 1


def weather(city: str, unit: str = "celsius", days: int = 1) -> str:
    return f"sunny in {city}"


TOOLS = [
    Tool("get_weather", "Weather for a city.", WEATHER_SCHEMA, weather, validator=WeatherArgs),
    Tool("get_time", "The time.", {"type": "object", "properties": {}}, lambda: "noon"),
]


@pytest.fixture(scope="module")
def tiny(tiny_gemma4_with_drafter: Path) -> Iterator[Path]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny_gemma4_with_drafter
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def backend(tiny: Path) -> TransformersBackend:
    return TransformersBackend(tiny / "model")


def run(backend: TransformersBackend, choice: str, seed: int, **kwargs: Any) -> Any:
    sampling = SamplingParams(seed=seed, max_tokens=kwargs.pop("max_tokens", 400))
    agent = Agent(backend, tools=TOOLS, tool_choice=choice, sampling=sampling, approval=allow_all, **kwargs)
    try:
        return agent.run("What is the weather in Paris?")
    finally:
        agent.close()


def assert_valid(call: Any) -> None:
    assert call.error is None, call.error
    if call.name == "get_weather":
        jsonschema.validate(call.arguments, {**WEATHER_SCHEMA, "additionalProperties": False})
    else:
        assert call.arguments == {}


def test_capabilities_report_the_grammar(backend: TransformersBackend) -> None:
    assert backend.capabilities.grammar and not backend.capabilities.grammar_note


def test_required_calls_always_parse_and_validate(backend: TransformersBackend) -> None:
    calls = 0
    for seed in range(8):
        result = run(backend, "required", seed, max_steps=1)
        assert result.tool_calls, f"seed {seed}: required, but no call ({result.stop_reason})"
        for call in result.tool_calls:
            assert_valid(call)
        calls += len(result.tool_calls)
    assert calls >= 8


def test_unconstrained_the_same_model_writes_no_valid_call(backend: TransformersBackend) -> None:
    # The baseline the grammar is measured against: the same seeds, no grammar.
    for seed in range(3):
        agent = Agent(
            backend,
            tools=TOOLS,
            constrain_tool_calls=False,
            max_steps=1,
            sampling=SamplingParams(seed=seed, max_tokens=200),
            approval=allow_all,
        )
        assert not [c for c in agent.run("What is the weather in Paris?").tool_calls if c.error is None]
        agent.close()


def test_a_named_tool_is_the_only_one_called(backend: TransformersBackend) -> None:
    for seed in range(4):
        result = run(backend, "get_time", seed, max_steps=1)
        assert result.tool_calls and {c.name for c in result.tool_calls} == {"get_time"}
        for call in result.tool_calls:
            assert_valid(call)


def test_none_never_calls(backend: TransformersBackend) -> None:
    for seed in range(3):
        result = run(backend, "none", seed, max_tokens=120)
        assert result.tool_calls == []
        assert "<|tool_call>" not in str(result.messages[-1].get("content"))


def test_constraint_keeps_the_kv_cache_across_rounds(backend: TransformersBackend) -> None:
    backend.reset_cache()
    result = run(backend, "required", 3, max_steps=2, max_tokens=200)
    assert result.steps == 2 and result.tool_calls
    assert result.usage.cached_tokens > 0  # round two prefilled only the results, with the grammar on


def test_constraint_composes_with_the_drafter(tiny: Path, backend: TransformersBackend) -> None:
    spec = TransformersBackend(tiny / "model", assistant_model=tiny / "drafter")
    drafts: list[int] = []
    spec._assistant.register_forward_hook(lambda *_: drafts.append(1))
    for seed in range(3):
        result = run(spec, "required", seed, max_steps=1)
        assert result.tool_calls
        for call in result.tool_calls:
            assert_valid(call)
    assert drafts, "the drafter was never asked for candidates"
    # Greedy: speculative decoding verifies every drafted token, so constrained output is the same as without it.
    greedy = SamplingParams(temperature=0.0, max_tokens=120)
    plain = Agent(backend, tools=TOOLS, tool_choice="required", sampling=greedy, max_steps=1, approval=allow_all)
    fast = Agent(spec, tools=TOOLS, tool_choice="required", sampling=greedy, max_steps=1, approval=allow_all)
    a, b = plain.run("Weather in Oslo?"), fast.run("Weather in Oslo?")
    assert [(c.name, c.arguments) for c in a.tool_calls] == [(c.name, c.arguments) for c in b.tool_calls]
    assert a.tool_calls
    plain.close()
    fast.close()


def test_structured_output_forced_through_final_result(backend: TransformersBackend) -> None:
    # output_type declares final_result; tool_choice="final_result" makes the grammar write that call, so even a
    # random-weight model answers with a value of the declared type on the first step. The string's max_length
    # reaches the grammar (kept in the declaration, not rendered): without it, noise runs on to max_tokens.
    class Forecast(pydantic.BaseModel):
        city: Annotated[str, pydantic.Field(max_length=16)]
        unit: Literal["celsius", "fahrenheit"]
        days: int

    for seed in range(3):
        agent = Agent(
            backend,
            output_type=Forecast,
            tool_choice="final_result",
            sampling=SamplingParams(seed=seed, max_tokens=300),
            approval=allow_all,
        )
        try:
            result = agent.run("Forecast for Paris?")
        finally:
            agent.close()
        assert isinstance(result.output, Forecast), result.stop_reason


def test_structured_output_is_a_call_by_default_where_the_backend_constrains(backend: TransformersBackend) -> None:
    # No tool_choice given: with an output_type every step must call a tool, so the random-weight model, which on
    # its own writes noise (test_unconstrained_the_same_model_writes_no_valid_call), answers with a valid value.
    class Reading(pydantic.BaseModel):
        degrees: int
        raining: bool

    for seed in range(3):
        agent = Agent(backend, output_type=Reading, sampling=SamplingParams(seed=seed, max_tokens=120))
        try:
            result = agent.run("Weather in Paris?")
        finally:
            agent.close()
        assert isinstance(result.output, Reading), result.stop_reason
