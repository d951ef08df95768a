"""tool_choice and the constraint switch in the agent loop: which grammar each step asks for, and clear errors.

The engines themselves are tested with real models in tests/backends (test_constrained_calls.py); here a scripted
backend records the requests, so the loop's part is checked exactly.
"""

from __future__ import annotations

from typing import Any

import pytest

from agentkit import Agent, tool
from agentkit.agent import allow_all
from agentkit.backends.base import Capabilities
from agentkit.backends.scripted import ScriptedBackend
from agentkit.errors import UserError

CALL = '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_response>'


@tool
def get_weather(city: str) -> str:
    """Weather for a city.

    Args:
        city: the city.
    """
    return f"sunny in {city}"


@tool
def get_time() -> str:
    """The time."""
    return "noon"


class ConstrainingBackend(ScriptedBackend):
    """A scripted backend that says it applies grammars (it records them; the text is scripted)."""

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(grammar=True)


def grammars(backend: ScriptedBackend) -> list[Any]:
    return [r.grammar for r in backend.requests]


def test_grammar_is_on_by_default_where_the_backend_constrains() -> None:
    backend = ConstrainingBackend([CALL, "Sunny.<turn|>"])
    agent = Agent(backend, tools=[get_weather, get_time], approval=allow_all)
    assert agent.constrained
    result = agent.run("weather?")
    assert result.ok
    first, second = grammars(backend)
    assert first is second  # the same cached grammar for every auto step
    assert (first.tool_choice, first.tool_names) == ("auto", ("get_weather", "get_time"))


def test_required_and_a_name_bind_the_first_step_then_auto() -> None:
    for choice in ("required", "get_weather"):
        backend = ConstrainingBackend([CALL, "Sunny.<turn|>"])
        agent = Agent(backend, tools=[get_weather, get_time], tool_choice=choice, approval=allow_all)
        assert agent.run("weather?").ok
        first, second = grammars(backend)
        assert first.tool_choice == choice and second.tool_choice == "auto"
        if choice == "get_weather":
            assert first.tool_names == ("get_weather",)


def test_none_binds_every_step() -> None:
    backend = ConstrainingBackend(["No tools needed.<turn|>", "Still none.<turn|>"])
    agent = Agent(backend, tools=[get_weather], tool_choice="none")
    agent.run("hi")
    agent.run("again")
    assert [g.tool_choice for g in grammars(backend)] == ["none", "none"]


def test_thinking_reaches_the_grammar() -> None:
    backend = ConstrainingBackend([CALL, "Sunny.<turn|>"])
    Agent(backend, tools=[get_weather], tool_choice="required", thinking=True, approval=allow_all).run("weather?")
    assert grammars(backend)[0].thinking is True


def test_switched_off_or_unsupported_sends_no_grammar() -> None:
    backend = ConstrainingBackend(["Hi.<turn|>"])
    agent = Agent(backend, tools=[get_weather], constrain_tool_calls=False)
    assert not agent.constrained
    agent.run("hi")
    plain = ScriptedBackend(["Hi.<turn|>"])
    Agent(plain, tools=[get_weather]).run("hi")
    assert grammars(backend) == [None] and grammars(plain) == [None]


def test_no_tools_and_auto_needs_no_grammar() -> None:
    backend = ConstrainingBackend(["Hi.<turn|>"])
    Agent(backend).run("hi")
    assert grammars(backend) == [None]


@pytest.mark.parametrize("choice", ["required", "get_weather", "none"])
def test_a_choice_the_backend_cannot_enforce_is_a_clear_error(choice: str) -> None:
    with pytest.raises(UserError, match=rf"tool_choice='{choice}' is enforced by grammar-constrained decoding"):
        Agent(ScriptedBackend([]), tools=[get_weather], tool_choice=choice)
    with pytest.raises(UserError, match="constrain_tool_calls=False turned it off"):
        Agent(ConstrainingBackend([]), tools=[get_weather], tool_choice=choice, constrain_tool_calls=False)


def test_ollama_says_why_it_cannot_constrain() -> None:
    from agentkit.backends.ollama import OllamaBackend

    backend = OllamaBackend("gemma4")
    with pytest.raises(UserError, match="Ollama has no way to pass a grammar"):
        Agent(backend, tools=[get_weather], tool_choice="required")
    with pytest.raises(UserError, match="constrain_tool_calls=True, but the ollama backend cannot constrain"):
        Agent(backend, tools=[get_weather], constrain_tool_calls=True)
    assert not Agent(backend, tools=[get_weather]).constrained  # the default just goes without


def test_bad_tool_choice_values_are_user_errors() -> None:
    with pytest.raises(UserError, match="neither a mode nor a declared tool"):
        Agent(ConstrainingBackend([]), tools=[get_weather], tool_choice="get_wether")
    with pytest.raises(UserError, match="needs at least one tool"):
        Agent(ConstrainingBackend([]), tool_choice="required")
    with pytest.raises(UserError, match="constrain_tool_calls must be True, False or None"):
        Agent(ConstrainingBackend([]), tools=[get_weather], constrain_tool_calls="yes")  # type: ignore[arg-type]


def test_a_toolset_tool_can_be_the_choice_once_the_toolset_started() -> None:
    """A toolset's tools are known only when it starts: the choice is checked on the first request, not before."""

    class OneTool:
        name, version = "extra", 0

        async def start(self) -> None:
            return None

        async def stop(self) -> None:
            return None

        def list_tools(self) -> list[Any]:
            return [get_time]

    backend = ConstrainingBackend(["<|tool_call>call:get_time{}<tool_call|><|tool_response>", "Noon.<turn|>"])
    agent = Agent(backend, tools=[get_weather], toolsets=[OneTool()], tool_choice="get_time", approval=allow_all)
    assert agent.run("time?").ok
    assert grammars(backend)[0].tool_names == ("get_time",)
    wrong = Agent(ConstrainingBackend([]), tools=[get_weather], toolsets=[OneTool()], tool_choice="get_tme")
    with pytest.raises(UserError, match="neither a mode nor a declared tool"):
        wrong.run("time?")


def test_structured_output_requires_a_call_at_every_step_where_the_backend_constrains() -> None:
    # The answer is a final_result call: no step may end in free text, so a constraining engine forces the call
    # (pydantic-ai asks for tool_choice "required" when text output is not allowed, for the same reason).
    answer = "<|tool_call>call:final_result{value:18}<tool_call|><|tool_response>"
    backend = ConstrainingBackend([CALL, answer])
    result = Agent(backend, tools=[get_weather], output_type=int, approval=allow_all).run("degrees?")
    assert result.output == 18
    assert [(g.tool_choice, g.tool_names) for g in grammars(backend)] == [
        ("required", ("get_weather", "final_result")),
        ("required", ("get_weather", "final_result")),
    ]
    # Asked for explicitly, "none" still means no calls at all (the answer is then JSON in text).
    assert Agent(ConstrainingBackend([]), output_type=int, tool_choice="none")._grammar(2).tool_choice == "none"
