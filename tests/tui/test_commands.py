"""Slash commands, each run through the prompt as a person types it."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList

from agentkit import AgentOptions, SessionStore
from agentkit.testing import ScriptedBackend
from agentkit.tui import AgentkitApp
from agentkit.tui.commands import as_message, completions, parse
from agentkit.tui.widgets import AgentTurn, InfoMessage, PromptArea, PromptScreen
from agentkit.tui.widgets import UserMessage as UserBubble

from .conftest import NoteBook, wait_for

SIZE = (80, 24)


async def type_and_send(pilot: Pilot[None], app: AgentkitApp, text: str) -> None:
    prompt = app.query_one(PromptArea)
    prompt.set_text(text)
    await pilot.press("enter")
    await wait_for(pilot, lambda: prompt.text == "" and not app.running, f"{text!r} was handled")


def notes(app: AgentkitApp) -> list[str]:
    return [n.message for n in app._notifications]


def test_parse_tells_commands_paths_and_messages_apart() -> None:
    help_command = parse("/help")
    assert not isinstance(help_command, str) and help_command is not None and help_command[0].name == "help"
    system = parse("/system  Be brief.\nUse metric units. ")
    assert not isinstance(system, str) and system is not None and system[1] == "Be brief.\nUse metric units."
    assert parse("hello /help") is None
    assert parse("/etc/hosts is empty, why?") is None  # a path, not a command
    assert parse("//help me") is None and as_message("//help me") == "/help me"
    assert as_message("\n    indented()\nnext  \n\n") == "    indented()\nnext"  # pasted code keeps its indent
    unknown = parse("/tolls")
    assert isinstance(unknown, str) and "/tools" in unknown and "//" in unknown
    assert [c.name for c in completions("/t")] == ["tools", "think"]
    assert completions("/tools x") == [] and completions("hi") == []


async def test_unknown_command_is_not_sent_and_the_text_stays(store: SessionStore) -> None:
    backend = ScriptedBackend([])
    app = AgentkitApp(backend, store=store)
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one(PromptArea)
        prompt.set_text("/frobnicate now")
        await pilot.press("escape", "enter")  # Esc closes the (empty) menu; Enter tries to run it
        await wait_for(pilot, lambda: any("unknown command /frobnicate" in n for n in notes(app)), "the warning")
        assert prompt.text == "/frobnicate now" and not app.query(UserBubble)
    assert backend.requests == []


async def test_tools_and_help_answer_in_the_chat_not_to_the_model(store: SessionStore, notebook: NoteBook) -> None:
    backend = ScriptedBackend([])
    app = AgentkitApp(backend, options=AgentOptions(tools=[notebook.tool]), store=store)
    async with app.run_test(size=SIZE) as pilot:
        await type_and_send(pilot, app, "/tools")
        info = app.query(InfoMessage).last()
        assert "write_note" in info.text and "⚠" in info.text and "Write a note" in info.text
        await type_and_send(pilot, app, "/help")
        assert "Ctrl+J" in app.query(InfoMessage).last().text
    assert backend.requests == []
    assert store.list() == []  # nothing was saved: command output is not conversation


async def test_think_on_off_and_toggle(store: SessionStore) -> None:
    app = AgentkitApp(ScriptedBackend([]), store=store)
    async with app.run_test(size=SIZE) as pilot:
        await type_and_send(pilot, app, "/think on")
        assert app.thinking and app.agent.thinking
        await type_and_send(pilot, app, "/think")
        assert not app.thinking
        await type_and_send(pilot, app, "/think maybe")
        assert any("on or off" in n for n in notes(app)) and not app.thinking


async def test_system_sets_the_prompt_for_this_chat_and_reaches_the_model(store: SessionStore) -> None:
    backend = ScriptedBackend(["First.<turn|>", "Second.<turn|>"])
    app = AgentkitApp(backend, options=AgentOptions(system="Be kind."), store=store)
    async with app.run_test(size=SIZE) as pilot:
        await type_and_send(pilot, app, "/system")
        assert "Be kind." in app.query(InfoMessage).last().text
        await type_and_send(pilot, app, "hello")
        await type_and_send(pilot, app, "/system Answer in French.")
        await type_and_send(pilot, app, "again")
        session_id = app.session_id
    assert "Be kind." in backend.prompts[0]
    assert "Answer in French." in backend.prompts[1] and "Be kind." not in backend.prompts[1]
    saved = store.load(session_id)
    assert saved.messages[0] == {"role": "system", "content": "Answer in French."}
    assert [m["content"] for m in saved.messages if m["role"] == "user"] == ["hello", "again"]


async def test_retry_replaces_the_last_answer(store: SessionStore) -> None:
    backend = ScriptedBackend(["Paris.<turn|>", "A bad answer.<turn|>", "Lyon is second.<turn|>"])
    app = AgentkitApp(backend, store=store)
    async with app.run_test(size=SIZE) as pilot:
        await type_and_send(pilot, app, "capital of France?")
        await type_and_send(pilot, app, "second city?")
        await type_and_send(pilot, app, "/retry")
        await wait_for(pilot, lambda: not app.running and app.query(AgentTurn).last().text != "", "the new answer")
        assert [t.text for t in app.query(AgentTurn)] == ["Paris.", "Lyon is second."]
        assert [u.text for u in app.query(UserBubble)] == ["capital of France?", "second city?"]
        session_id = app.session_id
    saved = store.load(session_id)
    assert [m["content"] for m in saved.messages] == ["capital of France?", "Paris.", "second city?", "Lyon is second."]
    assert "A bad answer." not in backend.prompts[2]  # the replaced answer is not in the retried prompt


async def test_export_writes_markdown_atomically_and_copy_takes_the_last_answer(
    store: SessionStore, notebook: NoteBook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import call

    backend = ScriptedBackend([call("write_note", text="x = 1\nprint(x)"), "Saved it. Use ``` fences.<turn|>"])
    app = AgentkitApp(backend, options=AgentOptions(tools=[notebook.tool]), store=store)
    monkeypatch.chdir(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await type_and_send(pilot, app, "/export")
        assert any("Nothing to export" in n for n in notes(app))
        await type_and_send(pilot, app, "/copy")
        assert any("no answer to copy" in n for n in notes(app))
        prompt = app.query_one(PromptArea)
        prompt.set_text("note it")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ApprovalScreen", "the approval")
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.running, "the answer")
        await type_and_send(pilot, app, "/export out/chat.md")
        await wait_for(
            pilot, lambda: any("folder out does not exist" in n for n in notes(app)), "the error (no such folder)"
        )
        (tmp_path / "out").mkdir()
        await type_and_send(pilot, app, "/export out/chat.md")
        await type_and_send(pilot, app, "/export out")
        await type_and_send(pilot, app, "/copy")
        assert app.clipboard == "Saved it. Use ``` fences."
    text = (tmp_path / "out" / "chat.md").read_text()
    assert text.startswith("# note it\n")
    assert "## You\n\nnote it" in text and "## Gemma\n\nSaved it." in text
    assert '"text": "x = 1\\nprint(x)"' in text and "wrote 14 characters" in text
    others = [p.name for p in (tmp_path / "out").iterdir()]
    assert sorted(others) == sorted(["chat.md", f"note-it-{app.session_id}.md"])  # no temp files left


async def test_model_lists_the_servers_models_and_switches(store: SessionStore) -> None:
    made: list[str] = []

    def factory(url: str) -> ScriptedBackend:
        made.append(url)
        return ScriptedBackend(["From the other model.<turn|>"], model=url.rsplit("/", 1)[-1])

    app = AgentkitApp(
        ScriptedBackend([], model="gemma4:e4b"),
        store=store,
        backend_url="ollama://box:11434/gemma4:e4b",
        backend_factory=factory,
    )
    async with app.run_test(size=SIZE) as pilot:
        await type_and_send(pilot, app, "/model")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), "the model list")
        options = app.screen.query_one(OptionList)
        assert [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)] == [
            "ollama://box:11434/gemma4:e4b"  # ScriptedBackend lists its one model
        ]
        assert app.screen.title_text == "1 model on this server"  # was "1 models"
        await pilot.press("escape")
        await type_and_send(pilot, app, "/model gemma4:26b")
        await wait_for(pilot, lambda: app.backend.model == "gemma4:26b", "the switch")
        assert made == ["ollama://box:11434/gemma4:26b"]
        assert "gemma4:26b" in str(app.query_one("#status").render())


async def test_retry_after_a_failed_request_sends_that_message_again(store: SessionStore) -> None:
    # The agent drops a turn that produced nothing, so the last *saved* message is an older one: retrying
    # that would answer the wrong question.
    backend = ScriptedBackend(["Paris.<turn|>"])
    app = AgentkitApp(backend, store=store)
    async with app.run_test(size=SIZE) as pilot:
        await type_and_send(pilot, app, "capital of France?")
        await type_and_send(pilot, app, "and of Peru?")  # no output left: the backend fails
        assert app.query(AgentTurn).last().query(".turn-status.-error")
        backend.add("Lima.<turn|>")
        await type_and_send(pilot, app, "/retry")
        await wait_for(pilot, lambda: not app.running and app.query(AgentTurn).last().text == "Lima.", "the answer")
        assert [u.text for u in app.query(UserBubble)] == ["capital of France?", "and of Peru?"]
        session_id = app.session_id
    saved = store.load(session_id)
    assert [m["content"] for m in saved.messages] == ["capital of France?", "Paris.", "and of Peru?", "Lima."]
