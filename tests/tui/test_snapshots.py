"""Snapshots of the TUI's main states at 80x24 (pytest-textual-snapshot; update with --snapshot-update).

Animations are off so spinners and timers hold still; conversations come from saved sessions (replayed),
whose durations are fixed, and the clock the sessions are saved and dated by is pinned (in UTC), so each
screen renders the same on every machine and every day.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from textual.pilot import Pilot

from agentkit import AgentOptions, SessionStore
from agentkit.testing import ScriptedBackend
from agentkit.tui import AgentkitApp
from agentkit.tui.widgets import ApprovalScreen, PromptArea, sidebar

from .conftest import NoteBook, call, wait_for

SIZE = (80, 24)
NOW = 1_790_000_400.0  # Mon 2026-09-21 14:20 UTC, just after the demo's last session


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Sessions saved a second apart (in order) and dated against a fixed "now", in UTC."""
    ticks = itertools.count()
    monkeypatch.setattr("agentkit.sessions.time.time", lambda: NOW - 100 + next(ticks))
    monkeypatch.setattr(sidebar, "clock", lambda: NOW)
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


DEMO = Path(__file__).resolve().parents[2] / "examples" / "tui_demo.py"


def _demo() -> ModuleType:
    if "tui_demo" not in sys.modules:
        spec = importlib.util.spec_from_file_location("tui_demo", DEMO)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["tui_demo"] = module
        spec.loader.exec_module(module)
    return sys.modules["tui_demo"]


def still(app: AgentkitApp) -> AgentkitApp:
    app.animation_level = "none"
    return app


SnapCompare = Callable[..., bool]


def test_new_chat(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = still(AgentkitApp(ScriptedBackend([]), store=SessionStore(tmp_path / "sessions"), show_sidebar=False))
    assert snap_compare(app, terminal_size=SIZE)


def test_replayed_conversation_with_sidebar(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = still(_demo().build_demo_app(tmp_path, session_id="demo-laptop", show_sidebar=True))
    assert snap_compare(app, terminal_size=SIZE)


def test_replayed_conversation_light_theme_expanded_result(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = still(_demo().build_demo_app(tmp_path, session_id="demo-laptop", show_sidebar=False))

    async def open_first_result(pilot: Pilot[Any]) -> None:
        app.theme = "textual-light"
        chat = app.query_one("#chat")
        chat.scroll_home(animate=False)
        await pilot.pause()
        await pilot.click("ToolCard CollapsibleTitle")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_first_result)


def test_approval_dialog(snap_compare: SnapCompare, tmp_path: Path) -> None:
    notebook = NoteBook()
    backend = ScriptedBackend([call("write_note", text="Buy oat milk and coffee beans."), "Done.<turn|>"])
    app = still(
        AgentkitApp(
            backend,
            options=AgentOptions(tools=[notebook.tool]),
            store=SessionStore(tmp_path / "sessions"),
            show_sidebar=False,
        )
    )

    async def ask(pilot: Pilot[Any]) -> None:
        app.query_one(PromptArea).set_text("Add milk to my shopping note")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval dialog")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=ask)
    assert notebook.notes == []


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
def test_backend_picker(snap_compare: SnapCompare, tmp_path: Path, theme: str) -> None:
    app = still(
        AgentkitApp(
            ScriptedBackend([]),
            store=SessionStore(tmp_path / "sessions"),
            backend_url="ollama://localhost:11434/gemma4:e4b",
            backend_choices=["vllm://gpu-box:8000/google/gemma-4-31B-it", "transformers:google/gemma-4-E2B-it"],
            show_sidebar=False,
        )
    )

    async def pick(pilot: Pilot[Any]) -> None:
        app.theme = theme
        await pilot.press("ctrl+l")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=pick)


def test_slash_command_menu(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = still(AgentkitApp(ScriptedBackend([]), store=SessionStore(tmp_path / "sessions"), show_sidebar=False))
    assert snap_compare(app, terminal_size=SIZE, press=["/", "t"])


def test_multi_line_prompt(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = still(AgentkitApp(ScriptedBackend([]), store=SessionStore(tmp_path / "sessions"), show_sidebar=False))
    assert snap_compare(app, terminal_size=SIZE, press=[*"Fix this:", "ctrl+j", *"def f(x):", "ctrl+j", *"  retrun x"])


def test_approval_dialog_highlights_code(snap_compare: SnapCompare, tmp_path: Path) -> None:
    from agentkit import tool

    @tool(side_effects=True)
    def run_python(code: str) -> str:
        """Run a Python program in the sandbox.

        Args:
            code: the program.
        """
        return ""

    program = "import math\n\nfor r in (1, 2, 3):\n    print(r, math.pi * r**2)"
    backend = ScriptedBackend([call("run_python", code=program), "Done.<turn|>"])
    app = still(
        AgentkitApp(
            backend,
            options=AgentOptions(tools=[run_python]),
            store=SessionStore(tmp_path / "sessions"),
            show_sidebar=False,
        )
    )

    async def ask(pilot: Pilot[Any]) -> None:
        app.query_one(PromptArea).set_text("Areas of circles with radius 1 to 3?")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval dialog")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=ask)


def test_replayed_code_card(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = still(_demo().build_demo_app(tmp_path, session_id="demo-sales", show_sidebar=False))
    assert snap_compare(app, terminal_size=SIZE)
