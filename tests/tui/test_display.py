"""What the screen shows: inert outside text, highlighted arguments, honest timings, session dates."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.syntax import Syntax
from textual.app import App

from agentkit import AgentOptions, RunResult, RunTimings, SessionStore, Usage, tool
from agentkit.testing import ScriptedBackend
from agentkit.tui import AgentkitApp
from agentkit.tui.app import turn_stats
from agentkit.tui.text import visible
from agentkit.tui.widgets import AgentTurn, ApprovalScreen, PromptScreen, SessionItem, ToolCard
from agentkit.tui.widgets.arguments import argument_lexer, arguments_view, short_arguments
from agentkit.tui.widgets.sidebar import when

from .conftest import NoteBook, call, wait_for

SIZE = (100, 40)
# What must never reach the terminal from outside text: C0 (but tab/newline), DEL, C1, bidi controls.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
EVIL = "A\x1b]0;PWNED\x07B\x1b[2JC\x9b31mD\u202eE\rF\x08G [b]not bold[/b] [@click=app.quit]no action[/]"
Q = '<|"|>'


def screen_text(app: App[Any]) -> str:
    """Every character the compositor would write for the current screen (what reaches the terminal)."""
    return "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())


@given(st.text())
def test_visible_leaves_nothing_that_acts_on_a_terminal(text: str) -> None:
    shown = visible(text)
    assert not UNSAFE.search(shown)
    assert shown.count("\n") == text.count("\n")  # line structure kept
    if not UNSAFE.search(text):
        assert shown == text  # ordinary text untouched


async def test_model_and_tool_text_cannot_inject_escapes_or_markup(store: SessionStore) -> None:
    @tool(side_effects=True)
    def shout(text: str) -> str:
        """Echo text back.

        Args:
            text: what to echo.
        """
        return "result " + EVIL

    @tool
    def fail(text: str) -> str:
        """Always fails.

        Args:
            text: anything.
        """
        raise ValueError("error " + EVIL)

    outputs = [
        f"<|channel>thought\nthinking {EVIL}<channel|>"
        f"<|tool_call>call:shout{{text:{Q}arg {EVIL}{Q}}}<tool_call|><|tool_response>",
        f"<|tool_call>call:fail{{text:{Q}x{Q}}}<tool_call|><|tool_response>",
        f"answer {EVIL}\n\n```\ncode {EVIL}\n```<turn|>",
    ]
    app = AgentkitApp(
        ScriptedBackend(outputs, model=f"model {EVIL}"),
        options=AgentOptions(tools=[shout, fail], thinking=True),
        store=store,
    )
    async with app.run_test(size=(100, 80)) as pilot:  # tall enough to show the whole turn at once
        prompt = app.query_one("#prompt")
        prompt.set_text(f"user {EVIL}")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval dialog")
        await wait_for(pilot, lambda: "arg A␛" in screen_text(app), "the dialog drawn")
        dialog = screen_text(app)
        assert "arg A␛]0;PWNED␇B" in dialog and not UNSAFE.search(dialog)
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.running, "the answer")
        for block in app.query("ThinkingBlock"):
            block.collapsed = False  # type: ignore[attr-defined]
        for fold in app.query("ToolCard Collapsible"):
            fold.collapsed = False  # type: ignore[attr-defined]
        app.notify("notice " + visible(EVIL), markup=False)
        places = (
            "user A␛",
            "thinking A␛",
            "result A␛",
            "raised ValueError: error",
            "answer A␛",
            "code A␛",
            "no action[/] (scripted) │",  # the model's name: its end, where the status line has no room for all
        )
        await wait_for(pilot, lambda: all(p in screen_text(app) for p in places), "everything opened and drawn")
        shown = screen_text(app)
        assert not UNSAFE.search(shown), [m.group() for m in UNSAFE.finditer(shown)]
        assert shown.count("A␛]0;PWNED␇B␛[2JC<U+009B>31mD<U+202E>E") >= 8  # shown, not obeyed or dropped
        assert shown.count("[b]not bold[/b]") >= 4  # markup shown as typed, not applied
        assert "[@click=app.quit]no action[/]" in shown
        await pilot.press("f2")  # the rename dialog shows the title (the first message) in an Input
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), "the rename dialog")
        await wait_for(pilot, lambda: "user A␛" in screen_text(app), "the rename dialog drawn")
        dialog = screen_text(app)
        assert "user A␛]0;PWNED␇B" in dialog and not UNSAFE.search(dialog)
        await pilot.press("escape")
        title = app.query_one(ToolCard).query_one("CollapsibleTitle")
        assert not any(span.style for span in title.render().spans if "click" in str(span.style))  # type: ignore[attr-defined]


def test_code_arguments_are_highlighted_in_their_language() -> None:
    assert argument_lexer("run_python", "code", {"code": "print(1)"}) == "python"
    assert argument_lexer("exec_sql", "code", {}) == "sql"
    assert argument_lexer("write_file", "content", {"path": "src/main.rs", "content": ""}) == "rust"
    assert argument_lexer("write_file", "content", {"path": "notes", "content": ""}) is None
    assert argument_lexer("shell", "command", {}) == "bash"
    assert argument_lexer("save_note", "title", {}) is None
    code = "import math\n\nfor i in range(3):\n    print(math.sqrt(i))"
    view = arguments_view("run_python", {"code": code})
    assert any(isinstance(r, Syntax) and r.lexer is not None and r.lexer.name == "Python" for r in view.renderables)
    console = Console(width=80, record=True, color_system=None)
    console.print(arguments_view("save", {"title": "t", "lines": code, "n": 3, "tags": ["a", "b"]}))
    text = console.export_text()
    assert "for i in range(3):\n    print(math.sqrt(i))" in text  # real lines, not "\\n" escapes
    assert "n: 3" in text and '"a",' in text
    assert short_arguments({"code": code, "n": 3}) == "code=‹4 lines›, n=3"


def test_long_code_is_cut_in_cards_but_not_in_the_approval_dialog() -> None:
    code = "\n".join(f"x{i} = {i}" for i in range(40))
    console = Console(width=80, record=True, color_system=None)
    console.print(arguments_view("run_python", {"code": code}, max_lines=12))
    cut = console.export_text()
    assert "x11 = 11" in cut and "x12 = 12" not in cut and "… 28 more lines" in cut
    console.print(arguments_view("run_python", {"code": code}))
    assert "x39 = 39" in console.export_text()


def test_turn_stats_leave_out_the_approval_wait() -> None:
    result = RunResult(
        output="ok",
        messages=[],
        thinking="",
        usage=Usage(prompt_tokens=50, completion_tokens=120),
        timings=RunTimings(total_s=9.0, generation_s=2.0, tools_s=6.5),
        steps=2,
        stop_reason="completed",
    )
    assert turn_stats(result, waited_s=6.0) == "3.0s · 120 tokens · 60 tok/s · +6.0s awaiting approval"
    assert turn_stats(result, waited_s=0.0) == "9.0s · 120 tokens · 60 tok/s"


async def test_tool_card_time_excludes_the_wait_for_approval(store: SessionStore, notebook: NoteBook) -> None:
    # Seen before: a call that ran in milliseconds showed the seconds the person took to decide.
    backend = ScriptedBackend([call("write_note", text="hi"), "Done.<turn|>"])
    app = AgentkitApp(backend, options=AgentOptions(tools=[notebook.tool]), store=store)
    hold_s = 0.3
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one("#prompt")
        prompt.set_text("write hi")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval dialog")
        card = app.query_one(ToolCard)
        assert "awaiting approval" in str(card.query_one(".tool-header").render())
        await pilot.pause(hold_s)  # the person thinks for a while: the dialog stays open at least this long
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.running, "the answer")
        stats = str(app.query_one(AgentTurn).query_one(".turn-stats").render())
        session_id = app.session_id
    recorded = store.load(session_id).tool_calls[0]["duration_s"]  # the agent's time leaves the wait out too
    assert card.duration_s is not None
    assert round(card.duration_s, 6) == recorded < hold_s  # the wait was taken out, by the agent, once
    waited = float(re.search(r"\+([\d.]+)s awaiting approval", stats).group(1))  # type: ignore[union-attr]
    assert waited >= hold_s - 0.05  # shown rounded to 0.1 s


@pytest.fixture
def utc() -> Iterator[None]:
    import os

    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_session_dates_read_like_people_say_them(utc: None) -> None:
    now = 1_790_000_000.0  # Mon 2026-09-21 14:13 UTC
    assert when(now - 60, now) == "today 14:12"
    assert when(now - 86400, now) == "yesterday 14:13"
    assert when(now - 3 * 86400, now) == "Fri 14:13"
    assert when(now - 30 * 86400, now) == "Aug 22"
    assert when(now - 400 * 86400, now) == "2025-08-17"


async def test_sidebar_shows_when_each_session_was_last_used(store: SessionStore) -> None:
    from agentkit import Agent

    agent = Agent(ScriptedBackend(["ok<turn|>"]), store=store)
    await agent.arun("a question")
    app = AgentkitApp(ScriptedBackend([]), store=store, show_sidebar=True)
    async with app.run_test(size=SIZE) as pilot:
        listed = lambda: any(i.session_id == agent.session_id for i in app.query(SessionItem))  # noqa: E731
        await wait_for(pilot, listed, "the session listed")
        item = next(i for i in app.query(SessionItem) if i.session_id == agent.session_id)
        assert item.date.startswith("today ")
        await wait_for(pilot, lambda: item.date in screen_text(app), "its date drawn")


async def test_a_dict_result_reads_field_by_field(store: SessionStore) -> None:
    @tool
    def run(code: str) -> dict[str, object]:
        """Pretend to run code.

        Args:
            code: the program.
        """
        return {"stdout": "North    0.41\nSouth    0.33\n", "exit_code": 0}

    app = AgentkitApp(
        ScriptedBackend([call("run", code="print(1)"), "Done.<turn|>"]), options=AgentOptions(tools=[run]), store=store
    )
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one("#prompt")
        prompt.set_text("go")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.running, "the answer")
        app.query_one("ToolCard Collapsible").collapsed = False  # type: ignore[attr-defined]
        await wait_for(pilot, lambda: "exit_code: 0" in screen_text(app), "the opened result drawn")
        shown = screen_text(app)
    assert "North    0.41" in shown and "South    0.33" in shown and "exit_code: 0" in shown
    assert "\\n" not in shown.split("Done.")[0].split("▼", 1)[1]  # no escaped newlines in the opened result


async def test_deleting_a_session_with_a_hostile_title_shows_it_inert(store: SessionStore) -> None:
    """A session's title is outside text (a session file, a batch task's first line): the "Deleted" notice
    parsed it as markup and wrote its escapes to the terminal (OSC 0 set the window title, [@click] an action)."""
    from agentkit import Session
    from agentkit.tui.widgets import ConfirmScreen

    store.save(Session(id="keep", title="keep"))
    store.save(Session(id="evil", title="title " + EVIL))
    app = AgentkitApp(ScriptedBackend([]), store=store, session_id="keep")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.action_delete_session("evil")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: not store.exists("evil"), "the deletion")
        await wait_for(pilot, lambda: any("Deleted" in str(n.message) for n in app._notifications), "the notice")
        await wait_for(pilot, lambda: bool(app.screen.query("Toast")), "the toast on screen")
        await pilot.pause()
        shown = screen_text(app)
        assert not UNSAFE.search(shown), [m.group() for m in UNSAFE.finditer(shown)]
        [note] = [n for n in app._notifications if "Deleted" in n.message]
        assert not note.markup and "title A␛]0;PWNED␇B" in note.message and "[b]not bold[/b]" in note.message
        assert "Deleted “title" in shown and app.is_running  # drawn, and the app still there


async def test_the_reason_a_call_needs_approval_is_shown_inert(store: SessionStore) -> None:
    """A tool's approval_check says why a call needs a person, and may quote its arguments: the TUI's dialog
    drew that reason with its escapes (the command line's question showed them as text)."""

    def check(args: dict[str, Any], context: Any) -> str:
        return f"it names {args['text']}"

    @tool(approval_check=check)
    def note(text: str) -> str:
        """Note text.

        Args:
            text: what to note.
        """
        return "noted"

    app = AgentkitApp(
        ScriptedBackend([call("note", text=f"why {EVIL}"), "ok<turn|>"]),
        options=AgentOptions(tools=[note]),
        store=store,
    )
    async with app.run_test(size=(100, 40)) as pilot:
        app.query_one("#prompt").set_text("go")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval dialog")
        await pilot.pause()
        shown = screen_text(app)
        assert "it names why A␛]0;PWNED␇B" in shown and not UNSAFE.search(shown)
        await pilot.press("n")
