"""``AgentOptions``: the Agent's settings as one frozen value, interchangeable with the keywords."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from agentkit import Agent, AgentOptions, SamplingParams, SessionStore, allow_all, tool
from agentkit.errors import UserError
from agentkit.testing import ScriptedBackend


@tool
def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: the first.
        b: the second.
    """
    return a + b


def settings_of(agent: Agent) -> dict[str, Any]:
    return {
        "tools": sorted(agent.tools),
        "system": agent.messages[0] if agent.messages else None,
        "thinking": agent.thinking,
        "max_steps": agent.max_steps,
        "sampling": agent.sampling,
        "approval": agent.approval,
        "max_repeated_calls": agent.max_repeated_calls,
        "max_output_tokens": agent.max_output_tokens,
        "tool_choice": agent.tool_choice,
        "store": agent.store,
    }


def test_the_options_are_exactly_the_agents_keywords_with_the_same_defaults() -> None:
    # The one list of settings: a keyword added to Agent without a field here (or the reverse) fails this.
    params = inspect.signature(Agent.__init__).parameters
    keywords = {name: p.default for name, p in params.items() if name not in ("self", "backend", "options")}
    fields = {f.name: f.default for f in dataclasses.fields(AgentOptions)}
    assert keywords == fields


def test_options_build_the_same_agent_as_keywords(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = SessionStore(tmp_path)
    settings: dict[str, Any] = {
        "system": "Be brief.",
        "thinking": True,
        "max_steps": 4,
        "sampling": {"temperature": 0.2},
        "approval": allow_all,
        "store": store,
        "max_repeated_calls": 2,
        "max_output_tokens": 300,
    }
    by_keywords = Agent(ScriptedBackend([]), [add], **settings)
    by_options = Agent(ScriptedBackend([]), options=AgentOptions(tools=[add], **settings))
    assert settings_of(by_options) == settings_of(by_keywords)
    assert by_options.sampling == SamplingParams(temperature=0.2)


def test_an_agent_built_from_options_runs() -> None:
    backend = ScriptedBackend(["<|tool_call>call:add{a:2,b:3}<tool_call|><|tool_response>", "5<turn|>"])
    agent = Agent(backend, options=AgentOptions(tools=(add,), approval=allow_all, max_steps=3))
    result = agent.run("2+3?")
    assert result.ok and result.output == "5" and [c.result for c in result.tool_calls] == [5]


def test_options_are_frozen_all_the_way_down() -> None:
    tools = [add]
    sampling = {"temperature": 0.5}
    options = AgentOptions(tools=tools, sampling=sampling)
    tools.append(add)
    sampling["temperature"] = 2.0
    assert options.tools == (add,) and options.sampling == {"temperature": 0.5}
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.thinking = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        options.sampling["temperature"] = 1.0  # type: ignore[index]
    assert dataclasses.replace(options, thinking=True).thinking is True and options.thinking is False


def test_settings_given_twice_are_refused_with_the_way_out() -> None:
    options = AgentOptions(thinking=True)
    with pytest.raises(UserError, match=r"max_steps= next to options=.*dataclasses.replace\(options, max_steps="):
        Agent(ScriptedBackend([]), options=options, max_steps=3)
    with pytest.raises(UserError, match="tools= next to options="):
        Agent(ScriptedBackend([]), [add], options=options)
    # Keywords left at their defaults are no conflict (they cannot be told from keywords not given).
    assert Agent(ScriptedBackend([]), (), options=options, thinking=False).thinking is True


def test_bad_values_in_options_get_the_agents_clear_errors() -> None:
    with pytest.raises(UserError, match="max_steps must be a whole number"):
        Agent(ScriptedBackend([]), options=AgentOptions(max_steps=0))
    with pytest.raises(UserError, match="unknown sampling setting"):
        Agent(ScriptedBackend([]), options=AgentOptions(sampling={"temprature": 0.1}))
    with pytest.raises(UserError, match="takes a list of tools"):
        AgentOptions(tools=add)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="takes an AgentOptions, got dict"):
        Agent(ScriptedBackend([]), options={"thinking": True})  # type: ignore[arg-type]
