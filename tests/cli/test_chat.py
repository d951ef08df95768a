"""``agentkit chat`` builds the TUI from the same settings as every other command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentkit import Agent, SamplingParams
from agentkit.assemble import AgentFactory
from agentkit.cli import chat, main
from agentkit.tui import AgentkitApp


@pytest.fixture(autouse=True)
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat, "has_terminal", lambda: True)  # pytest captures stdin/stdout: pretend a terminal


def test_chat_opens_the_app_with_resolved_settings(scripted, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    opened: list[AgentkitApp] = []

    def fake_run(self: AgentkitApp, *args: Any, **kwargs: Any) -> None:
        opened.append(self)  # no terminal in tests: record the app instead of taking over the screen

    monkeypatch.setattr(AgentkitApp, "run", fake_run)
    url = scripted(["hi<turn|>"])
    assert main(["chat", "--backend", url, "--thinking", "--system", "Be brief."]) == 0
    (app,) = opened
    assert app.backend_url == url and app.backend.name == "scripted"
    assert app.thinking is True and app.agents.options.system == "Be brief."


def test_chat_with_an_unknown_session_is_a_usage_error(scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["chat", "--backend", scripted([]), "--session", "nope"]) == 2
    assert "no session 'nope'" in capsys.readouterr().err


def test_chat_without_a_terminal_is_a_usage_error_not_a_hang(
    scripted, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(chat, "has_terminal", lambda: False)
    assert main(["chat", "--backend", scripted([])]) == 2
    assert "needs a terminal" in capsys.readouterr().err


def agent_settings(agent: Agent) -> dict[str, Any]:
    """What a flag or config value can change about an agent, as far as a test can read it."""
    return {
        "backend": (agent.backend.name, agent.backend.model),
        "system": [m for m in agent.messages if m.get("role") == "system"],
        "thinking": agent.thinking,
        "max_steps": agent.max_steps,
        "sampling": agent.sampling,
        "tools": sorted(agent.tools),
        "toolsets": [t.name for t in agent.toolsets],
    }


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[Agent]:
    """Every agent the commands make, recorded; the TUI is not started (no terminal in tests)."""
    agents: list[Agent] = []
    make = AgentFactory.agent

    def record(self: AgentFactory, **settings: Any) -> Agent:
        agents.append(make(self, **settings))
        return agents[-1]

    monkeypatch.setattr(AgentFactory, "agent", record)
    monkeypatch.setattr(AgentkitApp, "run", lambda self, *a, **k: None)
    return agents


@pytest.mark.parametrize(
    ("flags", "config", "env", "expected"),
    [
        pytest.param(
            ["--temperature", "0.3", "--top-p", "0.8", "--max-tokens", "99", "--thinking", "--max-steps", "5"],
            "",
            {},
            {"sampling": SamplingParams(temperature=0.3, top_p=0.8, max_tokens=99), "thinking": True, "max_steps": 5},
            id="sampling-flags",
        ),
        pytest.param(
            ["--system", "Be brief.", "--tools", "search,fetch"],
            "",
            {},
            {"system": [{"role": "system", "content": "Be brief."}], "tools": ["fetch_url", "web_search"]},
            id="agent-flags",
        ),
        pytest.param(
            [],
            'system = "From the file."\nmax_steps = 7\nthinking = true\ntools = ["fetch"]\n'
            '[mcp.servers.clock]\ncommand = "mcp-clock"\n',
            {},
            {"max_steps": 7, "thinking": True, "tools": ["fetch_url"], "toolsets": ["clock"]},
            id="config-file",
        ),
        pytest.param(
            [],
            "temperature = 0.3\ntop_p = 0.5\nmax_tokens = 64\n",
            {},
            {"sampling": SamplingParams(temperature=0.3, top_p=0.5, max_tokens=64)},
            id="config-sampling",
        ),
        pytest.param(
            [],
            "",
            {"AGENTKIT_THINKING": "1", "AGENTKIT_TOOLS": "search"},
            {"thinking": True, "tools": ["web_search"]},
            id="environment",
        ),
        pytest.param(
            ["--mcp", "uvx mcp-server-time", "--mcp", "http://127.0.0.1:9/mcp"],
            "",
            {},
            {"toolsets": ["time", "127.0.0.1"]},
            id="mcp-flags",
        ),
    ],
)
def test_chat_builds_the_same_agent_as_run_from_the_same_flags_config_and_environment(
    flags: list[str],
    config: str,
    env: dict[str, str],
    expected: dict[str, Any],
    built: list[Agent],
    scripted,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "config.toml").write_text(config, encoding="utf-8")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url = scripted(["Fine.<turn|>"])
    assert main(["chat", "--backend", url, *flags]) == 0
    assert main(["run", "--no-save", "--backend", url, *flags, "hi"]) in (0, 1)  # MCP stand-ins may not start
    chat_agent, run_agent = built
    assert agent_settings(chat_agent) == agent_settings(run_agent)
    assert {key: agent_settings(chat_agent)[key] for key in expected} == expected  # and what was asked for


def test_chat_takes_the_context_size_and_keeps_it_for_a_backend_picked_in_the_app(
    built: list[Agent], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[AgentkitApp] = []
    monkeypatch.setattr(AgentkitApp, "run", lambda self, *a, **k: opened.append(self))
    assert main(["chat", "--backend", "ollama://127.0.0.1:9/gemma4:e4b", "--num-ctx", "16384"]) == 0
    (app,) = opened
    assert app.backend._options == {"num_ctx": 16384}  # type: ignore[attr-defined]
    picked = app.backend_factory("ollama://127.0.0.1:9/gemma4:26b")
    assert picked._options == {"num_ctx": 16384}  # type: ignore[attr-defined]
