"""Shared pieces of the TUI tests: a session store in a temp dir, test tools, and a bounded wait."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from agentkit import SessionStore, tool

Q = '<|"|>'


def call(name: str, **args: str) -> str:
    """A raw Gemma 4 tool call followed by the hand-over marker, as the model writes it."""
    body = ",".join(f"{k}:{Q}{v}{Q}" for k, v in sorted(args.items()))
    return f"<|tool_call>call:{name}{{{body}}}<tool_call|><|tool_response>"


class NoteBook:
    """A side-effecting tool that records what it was asked to write, so tests can see if it ran."""

    def __init__(self) -> None:
        self.notes: list[str] = []

        @tool(side_effects=True)
        def write_note(text: str) -> str:
            """Write a note to the notebook.

            Args:
                text: what to write.
            """
            self.notes.append(text)
            return f"wrote {len(text)} characters"

        self.tool = write_note


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path / "sessions")


@pytest.fixture
def notebook() -> NoteBook:
    return NoteBook()


async def wait_for(pilot: Pilot[None], predicate: Callable[[], bool], what: str, *, steps: int = 500) -> None:
    """Let the app run until ``predicate`` holds (bounded: fails with ``what`` instead of hanging)."""
    for _ in range(steps):
        if predicate():
            return
        await pilot.pause(0.01)
    raise AssertionError(f"the app never reached: {what}")
