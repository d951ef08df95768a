"""The Toolset protocol in the loop: tools merged per request, collisions prefixed, lifecycle with the agent."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agentkit import Agent, Tool, Toolset, tool
from agentkit.backends.scripted import ScriptedBackend
from agentkit.errors import UserError
from agentkit.toolsets import callable_name, merge_tools


class DictToolset:
    """A toolset of plain Python tools whose list can be changed between requests."""

    def __init__(self, name: str, *tools: Tool) -> None:
        self.name = name
        self.tools = list(tools)
        self.version = 0
        self.events: list[str] = []

    async def start(self) -> None:
        if not self.events or self.events[-1] == "stop":
            self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")

    def list_tools(self) -> Sequence[Tool]:
        return self.tools

    def replace(self, *tools: Tool) -> None:
        self.tools = list(tools)
        self.version += 1


@tool
def ping() -> str:
    """Answer pong."""
    return "pong"


@tool(name="ping")
def other_ping() -> str:
    """Answer pong from elsewhere."""
    return "other pong"


@tool
def extra() -> str:
    """A tool added later."""
    return "extra"


def test_collisions_are_prefixed_and_the_agents_own_tools_keep_their_names() -> None:
    a, b = DictToolset("alpha", other_ping), DictToolset("beta", other_ping)
    assert isinstance(a, Toolset)
    merged = merge_tools([ping], [a, b])
    assert list(merged) == ["ping", "alpha.ping", "beta.ping"]
    assert merged["ping"] is ping and merged["alpha.ping"].fn is other_ping.fn
    assert list(merge_tools([], [a, DictToolset("alpha", other_ping)])) == ["ping", "alpha.ping"]
    assert callable_name("my server/v2 (beta)") == "my_server_v2_beta"


async def test_tool_list_changes_reach_the_next_request_and_the_prompt_cache_is_dropped() -> None:
    ts = DictToolset("box", other_ping)
    backend = ScriptedBackend(["one<turn|>", "two<turn|>"])
    async with Agent(backend, toolsets=[ts]) as agent:
        await agent.arun("first")
        ts.replace(other_ping, extra)
        await agent.arun("second")
    assert "declaration:extra{" not in backend.prompts[0]
    assert "declaration:extra{" in backend.prompts[1]
    assert backend.prompts[1].startswith(backend.prompts[0].split("<|turn>user")[0].split("<|tool>")[0])
    assert ts.events == ["start", "stop"]


def test_bad_toolsets_argument_says_what_to_pass() -> None:
    with pytest.raises(UserError, match=r"goes in Agent\(\.\.\., toolsets=\[\.\.\.\]\)"):
        Agent(ScriptedBackend([]), tools=[DictToolset("x")])  # type: ignore[list-item]
    with pytest.raises(UserError, match="toolsets= takes Toolset objects"):
        Agent(ScriptedBackend([]), toolsets=[ping])  # type: ignore[list-item]
    with pytest.raises(UserError, match="two toolsets are named 'x'"):
        Agent(ScriptedBackend([]), toolsets=[DictToolset("x"), DictToolset("x")])


async def test_a_drifted_call_to_a_toolset_tool_is_recovered_once_the_tool_is_declared() -> None:
    # The parser recovers calls only to declared names; a toolset's tools count once the agent took them.
    ts = DictToolset("box", other_ping)
    backend = ScriptedBackend(["call:extra{}<turn|>", "call:extra{}<turn|>", "Done.<turn|>"])
    async with Agent(backend, toolsets=[ts]) as agent:
        before = await agent.arun("first")
        ts.replace(other_ping, extra)
        after = await agent.arun("second")
    assert before.tool_calls == [] and before.output == "call:extra{}"  # not declared yet: prose
    assert [(c.name, c.result, c.repair) for c in after.tool_calls] == [("extra", "extra", "no <|tool_call> opener")]
    assert after.output == "Done."
