"""The backend picker given a server but no model (``vllm://HOST:8000``): it lists the server's models.

It used to refuse with "no model given after the host", and the only way to learn the name was a CLI command.
"""

from __future__ import annotations

from textual.widgets import Input, OptionList

from agentkit import SessionStore
from agentkit.errors import BackendUnavailable
from agentkit.testing import ScriptedBackend
from agentkit.tui import AgentkitApp
from agentkit.tui.widgets import PromptScreen

from .conftest import wait_for


class Server(ScriptedBackend):
    """A server that serves two models (what ``/v1/models`` or ``/api/tags`` would say)."""

    async def list_models(self) -> list[str]:
        return ["gemma4:26b", "gemma4:e4b"]


async def test_a_server_address_lists_its_models_to_pick_from(store: SessionStore) -> None:
    made: list[str] = []

    def factory(url: str) -> ScriptedBackend:
        made.append(url)
        return Server([], model=url.rsplit("/", 1)[-1])

    app = AgentkitApp(ScriptedBackend([]), store=store, backend_factory=factory)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), "the backend dialog")
        app.screen.query_one(Input).value = "ollama://box:11434"
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: isinstance(app.screen, PromptScreen) and "on ollama://box" in app.screen.title_text, "list"
        )
        screen = app.screen
        assert isinstance(screen, PromptScreen) and screen.error == ""
        assert screen.title_text == "2 models on ollama://box:11434"
        options = screen.query_one(OptionList)
        shown = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert shown == ["ollama://box:11434/gemma4:26b", "ollama://box:11434/gemma4:e4b"]
        screen.query_one(Input).value = "ollama://box:11434/gemma4:e4b"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.backend.model == "gemma4:e4b", "the switch")
    assert made == ["ollama://box:11434/MODEL", "ollama://box:11434/gemma4:e4b"]


async def test_a_server_that_does_not_answer_keeps_the_picker_open_with_the_reason(store: SessionStore) -> None:
    class Down(ScriptedBackend):
        async def list_models(self) -> list[str]:
            raise BackendUnavailable("Cannot reach vLLM at http://box:8000: start it", backend="vllm")

    app = AgentkitApp(ScriptedBackend([]), store=store, backend_factory=lambda url: Down([]))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), "the backend dialog")
        app.screen.query_one(Input).value = "vllm://box:8000"
        await pilot.press("enter")
        await wait_for(pilot, lambda: getattr(app.screen, "error", ""), "the reason")
        assert "Cannot list models: Cannot reach vLLM at http://box:8000" in app.screen.error  # type: ignore[attr-defined]
        assert app.screen.query_one(Input).value == "vllm://box:8000"
