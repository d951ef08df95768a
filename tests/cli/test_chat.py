"""``agentkit chat`` builds the TUI from the same settings as every other command."""

from __future__ import annotations

from typing import Any

import pytest

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
