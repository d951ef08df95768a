"""The approval dialog: on a small terminal every line of the call can be read before it is allowed, and
Ctrl+C stops the answer there as it does everywhere else in the app.

At 60x24 (and even 100x30) a 20-line program used to be cut: the arguments kept their full height inside a
dialog that did not fit, the buttons were docked over their last rows, and the keys did nothing (the focus is on
Deny), so the last lines of the code could never be seen.
"""

from __future__ import annotations

import pytest
from textual.app import App
from textual.containers import Vertical, VerticalScroll

from agentkit import AgentOptions, SessionStore, ToolCallRequest
from agentkit.testing import ScriptedBackend
from agentkit.tui import AgentkitApp
from agentkit.tui.widgets import AgentTurn, ApprovalScreen, PromptArea

from .conftest import NoteBook, call, wait_for

CODE = "\n".join(f"print('line {i}')" for i in range(1, 21))
DESCRIPTION = (
    "Run a Python 3 program in a sandbox and return stdout, stderr and exit_code. Files persist in /workspace "
    "(the working directory); the sandbox has no network access; limits: 30 s, 512 MB. Print results to see them."
)


class OneDialog(App[None]):
    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code

    def on_mount(self) -> None:
        request = ToolCallRequest("c1", "run_python", {"code": self.code}, True, DESCRIPTION)
        self.push_screen(ApprovalScreen(request))


def fits(app: App[None]) -> bool:
    screen = app.screen
    args = screen.query_one(".approval-args", VerticalScroll)
    dialog = screen.query_one(Vertical)
    buttons = screen.query_one(".dialog-buttons")
    inside = dialog.content_region.bottom
    return args.region.bottom <= buttons.region.y and buttons.region.bottom <= inside and args.region.bottom <= inside


@pytest.mark.parametrize("size", [(60, 24), (100, 30)])
async def test_long_code_scrolls_inside_the_dialog_to_its_last_line(size: tuple[int, int]) -> None:
    app = OneDialog(CODE)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        args = screen.query_one(".approval-args", VerticalScroll)
        # The arguments' box lies wholly inside the dialog and above the buttons (once laid out: a loaded CI
        # machine may need more than one pause; the old code never got there at all)...
        await wait_for(pilot, lambda: fits(app), "a dialog whose arguments and buttons fit")
        # ...and scrolls over the whole program, from the keyboard, with Deny still focused.
        assert args.max_scroll_y == args.virtual_size.height - args.region.height > 0
        await pilot.press("end")
        assert args.scroll_y == args.max_scroll_y
        await pilot.press("pageup")
        assert args.scroll_y < args.max_scroll_y
        assert screen.focused is not None and screen.focused.id == "deny"


async def test_a_short_call_keeps_a_dialog_of_its_own_size() -> None:
    app = OneDialog("print(1)")
    async with app.run_test(size=(120, 50)) as pilot:
        args = app.screen.query_one(".approval-args", VerticalScroll)
        await wait_for(pilot, lambda: fits(app) and 0 < args.region.height < 6, "a dialog of its own size")
        assert args.max_scroll_y == 0
        await pilot.resize_terminal(60, 24)  # and it still fits when the terminal shrinks
        await wait_for(pilot, lambda: fits(app) and app.screen.size == (60, 24), "the dialog at 60x24")
        assert 0 < args.region.height < 6 and args.max_scroll_y == 0


async def test_ctrl_c_in_the_approval_dialog_denies_and_stops_the_answer(
    store: SessionStore, notebook: NoteBook
) -> None:
    # README: Ctrl+C stops the answer. With the dialog open it did nothing (the screen's copy binding took it).
    backend = ScriptedBackend([call("write_note", text="secret"), "Written.<turn|>"])
    app = AgentkitApp(backend, options=AgentOptions(tools=[notebook.tool]), store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        prompt = app.query_one("#prompt", PromptArea)
        prompt.focus()
        prompt.set_text("remember the secret")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval dialog")
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: not app.running, "the answer stopped")
        assert not isinstance(app.screen, ApprovalScreen)
        assert "Cancelled" in str(app.query_one(AgentTurn).query_one(".turn-status").render())
    assert notebook.notes == []  # the call was never run


async def test_the_fit_follows_the_terminal_as_it_grows_and_shrinks() -> None:
    # The screen is told its size more than once; a later telling must not undo the fit, and a bigger terminal
    # gives the arguments back their own height (up to their cap of 16 rows).
    app = OneDialog(CODE)
    async with app.run_test(size=(60, 24)) as pilot:
        args = app.screen.query_one(".approval-args", VerticalScroll)
        await wait_for(pilot, lambda: fits(app) and args.region.height < 16, "the arguments shrunk to fit")
        for _ in range(3):
            await pilot.pause(0.02)
        assert fits(app)  # and it stays so
        await pilot.resize_terminal(120, 50)
        await wait_for(pilot, lambda: fits(app) and args.region.height == 16, "the arguments at their own height")
        await pilot.resize_terminal(60, 24)
        await wait_for(pilot, lambda: fits(app) and args.region.height < 16, "the arguments shrunk again")
