"""The message box, driven by keys: multi-line input, history across app runs, completion, scrolling."""

from __future__ import annotations

import json
from pathlib import Path

from textual import events
from textual.containers import VerticalScroll

from agentkit import SessionStore
from agentkit.testing import ScriptedBackend
from agentkit.tui import AgentkitApp
from agentkit.tui.widgets import AgentTurn, CommandMenu, InfoMessage, PromptArea
from agentkit.tui.widgets import UserMessage as UserBubble

from .conftest import wait_for

SIZE = (80, 24)


def temp_files(folder: Path) -> list[str]:
    """What an interrupted atomic write would leave behind."""
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def make_app(store: SessionStore, outputs: list[str], **options: object) -> AgentkitApp:
    return AgentkitApp(ScriptedBackend(outputs), store=store, show_sidebar=False, **options)  # type: ignore[arg-type]


async def test_a_multi_line_paste_keeps_every_line_and_enter_sends_it_all(store: SessionStore) -> None:
    # The old one-line Input kept only the first line of a paste.
    backend = ScriptedBackend(["Got it.<turn|>"])
    app = AgentkitApp(backend, store=store)
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one(PromptArea)
        pasted = "def f(x):\n    return x * 2\n\nprint(f(21))"
        app.post_message(events.Paste(pasted))  # as the driver delivers a bracketed paste
        await wait_for(pilot, lambda: prompt.text == pasted, "the paste")  # pasting never sends
        assert not app.query(UserBubble)
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.running and bool(app.query(AgentTurn)), "the answer")
        assert [u.text for u in app.query(UserBubble)] == [pasted]
    assert "    return x * 2\n\nprint(f(21))" in backend.prompts[0]


async def test_newline_keys_insert_a_line_and_enter_sends(store: SessionStore) -> None:
    app = make_app(store, ["One.<turn|>"])
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one(PromptArea)
        # ctrl+j is what every terminal sends for Ctrl+J (a line feed); shift+enter and ctrl+enter come from
        # terminals with the kitty keyboard protocol; a trailing backslash continues the line, as in a shell.
        await pilot.press("a", "ctrl+j", "b", "shift+enter", "c", "ctrl+enter", "d", "\\", "enter", "e")
        assert prompt.text == "a\nb\nc\nd\ne"
        assert not app.query(UserBubble)
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.running and bool(app.query(AgentTurn)), "the answer")
        assert [u.text for u in app.query(UserBubble)] == ["a\nb\nc\nd\ne"]


async def test_history_walks_back_and_forth_and_survives_a_restart(store: SessionStore, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    app = make_app(store, ["1.<turn|>", "2.<turn|>"], history_path=history)
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one(PromptArea)
        for text in ("first question", "second\nmulti-line"):
            prompt.set_text(text)
            await pilot.press("enter")
            await wait_for(pilot, lambda: not app.running and prompt.text == "", "the answer")
    assert json.loads(history.read_text()) == ["first question", "second\nmulti-line"]
    assert temp_files(tmp_path) == []

    app = make_app(store, [], history_path=history)  # a new run of the app: the history is still there
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one(PromptArea)
        await pilot.press(*"draft")
        await pilot.press("up")
        assert prompt.text == "second\nmulti-line"
        await pilot.press("up")  # the cursor sits on the last line of the recalled text: Up moves it first
        assert prompt.text == "second\nmulti-line" and prompt.cursor_location[0] == 0
        await pilot.press("up")
        assert prompt.text == "first question"
        await pilot.press("up")  # nothing older: stays
        assert prompt.text == "first question"
        await pilot.press("down")
        assert prompt.text == "second\nmulti-line"  # recalled text puts the cursor at its end (last line)
        await pilot.press("down")
        assert prompt.text == "draft"  # past the newest entry, what was being typed comes back


async def test_a_damaged_history_file_is_left_alone_and_said_once(store: SessionStore, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    history.write_text("{not json")
    app = make_app(store, ["ok<turn|>"], history_path=history)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: any("history" in n.message for n in app._notifications), "the warning")
        prompt = app.query_one(PromptArea)
        prompt.set_text("hello")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.running and prompt.text == "", "the answer")
        await pilot.press("up")
        assert prompt.text == "hello"  # kept in memory
    assert history.read_text() == "{not json"


async def test_slash_menu_completes_and_runs_commands(store: SessionStore) -> None:
    app = make_app(store, [])
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one(PromptArea)
        menu = app.query_one(CommandMenu)
        await pilot.press("/")
        assert menu.is_open and len(menu.commands) > 5 and menu.display
        await pilot.press("t")
        assert [c.name for c in menu.commands] == ["tools", "think"]
        await pilot.press("down", "tab")  # pick /think, complete it
        assert prompt.text == "/think " and not menu.is_open
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.thinking, "thinking turned on")
        await pilot.press(*"/he")
        assert prompt.suggestion == "lp"  # ghost text for the one match; Enter runs the highlighted command
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(app.query(InfoMessage)), "the help text")
        assert "/export [FILE]" in app.query_one(InfoMessage).text
        await pilot.press("/", "escape")
        assert not menu.is_open and prompt.text == "/"
        assert not app.query(UserBubble)  # commands are never sent to the model


async def test_a_command_typed_in_one_burst_runs_that_command(store: SessionStore) -> None:
    # Seen in tmux (send-keys, as a fast typist or a key macro delivers them): "/export" and Enter ran /help,
    # the command the menu still highlighted for "/" because its update came after the keys.
    app = make_app(store, [])
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one(PromptArea)
        prompt.focus()
        menu = app.query_one(CommandMenu)
        for keys, thinking in (("think", True), ("th\t", False)):  # Enter runs what is typed; Tab completes it
            await pilot.press("slash")
            await wait_for(pilot, lambda: menu.is_open and menu.chosen is not None, "the menu, at /help")
            for key in keys:  # the rest in one burst, all queued before the first is handled
                prompt.post_message(events.Key({"\t": "tab"}.get(key, key), key))
            if keys.endswith("\t"):
                await wait_for(pilot, lambda: prompt.text in ("/think ", "/help "), "the completion")
                assert prompt.text == "/think "
            prompt.post_message(events.Key("enter", "\r"))
            await wait_for(pilot, lambda: prompt.text == "", f"{keys!r} handled")
            assert not app.query(InfoMessage)  # not /help
            await wait_for(pilot, lambda thinking=thinking: app.thinking is thinking, f"/think after {keys!r}")
        assert not app.query(InfoMessage)  # no /help
        assert [n.message for n in app._notifications][-1:] == ["Thinking off from the next message."]


async def test_page_keys_scroll_the_conversation_while_the_prompt_keeps_focus(store: SessionStore) -> None:
    answer = "\n\n".join(f"Paragraph {i}." for i in range(60))
    app = make_app(store, [answer + "<turn|>"])
    async with app.run_test(size=SIZE) as pilot:
        chat = app.query_one("#chat", VerticalScroll)
        prompt = app.query_one(PromptArea)
        prompt.set_text("long please")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.running, "the answer")
        await wait_for(pilot, lambda: chat.max_scroll_y > 0 and chat.scroll_y == chat.max_scroll_y, "the end")
        end = chat.scroll_y
        await pilot.press("pageup")
        await wait_for(pilot, lambda: chat.scroll_y < end, "scrolled up a page")
        await pilot.press("ctrl+home")
        await wait_for(pilot, lambda: chat.scroll_y == 0, "the top")
        await pilot.press("pagedown")
        await wait_for(pilot, lambda: chat.scroll_y > 0, "scrolled down a page")
        await pilot.press("ctrl+end")
        await wait_for(pilot, lambda: chat.scroll_y == chat.max_scroll_y, "the end again")
        assert app.focused is prompt


async def test_history_walks_past_a_recalled_slash_command(store: SessionStore, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    history.write_text(json.dumps(["older question", "/help"]))
    app = make_app(store, [], history_path=history)
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one(PromptArea)
        await pilot.press("up")
        assert prompt.text == "/help" and not app.query_one(CommandMenu).is_open
        await pilot.press("up")
        assert prompt.text == "older question"
        await pilot.press("down", "backspace")  # editing a recalled command opens the menu again
        assert prompt.text == "/hel" and app.query_one(CommandMenu).is_open


async def test_up_inside_a_wrapped_line_moves_the_cursor_not_the_history(store: SessionStore, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    history.write_text(json.dumps(["earlier"]))
    app = make_app(store, [], history_path=history)
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one(PromptArea)
        long_line = "word " * 40  # one line of text, drawn on several rows
        prompt.set_text(long_line)
        await wait_for(pilot, lambda: prompt.wrapped_document.height > 1, "the line wrapped to the box's width")
        await pilot.press("up")
        assert prompt.text == long_line  # the cursor went up a row
        for _ in range(prompt.wrapped_document.height):
            await pilot.press("up")
        assert prompt.text == "earlier"
