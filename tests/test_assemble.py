"""``agentkit.assemble``: from plain values (URL, tool names, workspace, MCP servers, options) to live agents."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from agentkit import AgentOptions, SessionStore, allow_all, register_backend
from agentkit.assemble import AgentConfig, AgentFactory, MCPServerSpec, assemble, build_backend, build_tools
from agentkit.errors import UserError
from agentkit.testing import ScriptedBackend


def test_a_config_becomes_a_factory_whose_agents_share_backend_tools_and_servers(tmp_path: Path) -> None:
    backend = ScriptedBackend([])
    config = AgentConfig(
        tools=("files",),
        workspace=tmp_path,
        mcp_servers=(MCPServerSpec(name="time", command=sys.executable, args=("-c", "pass")),),
        options=AgentOptions(system="Be brief.", max_steps=3, sampling={"temperature": 0.1}),
    )
    factory = assemble(config, backend=backend)
    first, second = factory.agent(), factory.agent(approval=allow_all, session_id=None)
    assert first.backend is second.backend is backend
    assert first.toolsets == second.toolsets and [t.name for t in first.toolsets] == ["time"]
    assert set(first.tools) == set(second.tools) and "read_file" in first.tools
    assert first.messages[0] == {"role": "system", "content": "Be brief."} and first.max_steps == 3
    assert (first.sampling.temperature, second.approval) == (0.1, allow_all)
    # (not run: the server is a stand-in that exits; running agents is below)


def test_agents_made_one_after_another_take_turns_on_the_shared_backend() -> None:
    factory = assemble(
        AgentConfig(options=AgentOptions(max_steps=2)), backend=ScriptedBackend(["One.<turn|>", "Two.<turn|>"])
    )
    assert factory.agent().run("hi").output == "One." and factory.agent().run("hi").output == "Two."


def test_tools_given_in_the_options_come_first(tmp_path: Path) -> None:
    def ping() -> str:
        """Answer pong."""
        return "pong"

    config = AgentConfig(tools=("search",), options=AgentOptions(tools=(ping,)))
    assert list(assemble(config, backend=ScriptedBackend([])).agent().tools) == ["ping", "web_search"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (AgentConfig(tools=("files",)), "the files tool needs a folder to work in"),
        (AgentConfig(tools=("shell",)), "unknown tool(s) shell; choose from search, fetch, python, files"),
        (
            AgentConfig(
                tools=("files",), workspace=Path("/nonexistent/ws"), sources={"workspace": "AGENTKIT_WORKSPACE"}
            ),
            "the workspace folder /nonexistent/ws does not exist (AGENTKIT_WORKSPACE)",
        ),
    ],
)
def test_tool_mistakes_are_clear_errors_before_any_backend_is_built(config: AgentConfig, message: str) -> None:
    def never(config: AgentConfig) -> Any:
        pytest.fail("a backend was built before the tools were checked")

    with pytest.raises(UserError) as info:
        assemble(config, make_backend=never)
    assert message in str(info.value)


def test_a_workspace_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is not a folder"):
        build_tools(AgentConfig(tools=("files",), workspace=tmp_path / "f"))


def test_without_a_backend_url_the_error_says_what_to_give() -> None:
    with pytest.raises(UserError, match="no backend given"):
        assemble(AgentConfig())


def test_the_backend_comes_from_the_open_registry_with_the_context_size() -> None:
    made: list[tuple[str, dict[str, Any]]] = []

    def factory(url: str, **options: Any) -> ScriptedBackend:
        made.append((url, options))
        return ScriptedBackend(["Hi.<turn|>"], model=url.split(":", 1)[1])

    register_backend("assemblytest", factory, replace=True)
    backend = assemble(AgentConfig(backend_url="assemblytest:m1")).backend
    assert (backend.model, made) == ("m1", [("assemblytest:m1", {})])
    ollama = build_backend("ollama://127.0.0.1:9/gemma4:e4b", num_ctx=8192)
    assert ollama._options == {"num_ctx": 8192}  # type: ignore[attr-defined]
    with pytest.raises(
        UserError, match=r"context size \(--num-ctx, num_ctx\) applies to the ollama and transformers backends"
    ):
        build_backend("assemblytest:m1", num_ctx=8192)


def test_per_agent_settings_with_a_typo_name_the_real_ones() -> None:
    factory = AgentFactory(ScriptedBackend([]))
    with pytest.raises(UserError, match=r"sesion_id.*session_id"):
        factory.agent(sesion_id="x")


def test_with_options_and_with_backend_leave_the_original_as_it_was(tmp_path: Path) -> None:
    first, second = ScriptedBackend([], model="a"), ScriptedBackend([], model="b")
    factory = AgentFactory(first, AgentOptions(system="A", store=SessionStore(tmp_path)))
    changed = factory.with_options(system="B").with_backend(second)
    assert factory.agent().messages[0]["content"] == "A" and factory.backend is first
    assert changed.agent().messages[0]["content"] == "B" and changed.agent().backend is second


async def test_aclose_stops_the_servers_and_closes_the_backend() -> None:
    events: list[str] = []

    class Server:
        name = "s"

        async def start(self) -> None: ...

        async def stop(self) -> None:
            events.append("stopped")

        def list_tools(self) -> list[Any]:
            return []

        @property
        def version(self) -> int:
            return 0

    backend = ScriptedBackend([])

    async def closed() -> None:
        events.append("closed")

    backend.aclose = closed  # type: ignore[method-assign]
    await AgentFactory(backend, AgentOptions(toolsets=(Server(),))).aclose()  # type: ignore[arg-type]
    assert events == ["stopped", "closed"]
