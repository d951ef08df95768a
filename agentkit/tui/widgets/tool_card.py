"""A tool call as a card: what was called with what, whether it is still running, and what came back.

The card's clock counts only the call's own running time: while the person is deciding on an approval the
card says so and its clock stands still (:meth:`ToolCard.waiting`); the app subtracts the same wait from
the duration the agent reports, which is measured from before the approval was asked.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import Collapsible, Static

from ..text import literal, one_line, visible
from .arguments import arguments_view, block_arguments, short_arguments

__all__ = ["ToolCard", "format_args", "format_result", "result_title"]

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
RESULT_PREVIEW_CHARS = 4000


def format_args(arguments: dict[str, Any], limit: int = 200) -> str:
    """The arguments on one line for the card's header (multi-line values as their size)."""
    return short_arguments(arguments, limit)


def _plain(value: Any) -> Any:
    """Dataclass results (``ExecResult``) as dicts, so they print as JSON rather than as a repr."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def format_result(result: Any) -> str:
    """The result as a person reads it: strings as they are, everything else as indented JSON, cut short."""
    result = _plain(result)
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, indent=2, default=str)
    if len(text) > RESULT_PREVIEW_CHARS:
        text = text[:RESULT_PREVIEW_CHARS] + f"\n… ({len(text) - RESULT_PREVIEW_CHARS} more characters)"
    return visible(text)


def result_title(result: Any, limit: int = 56) -> str:
    """One line that says what came back, so the folded card is useful without opening it."""
    result = _plain(result)
    if isinstance(result, str):
        text = result if result.strip() else "(empty)"
    elif isinstance(result, dict) and all(isinstance(k, str) for k in result):
        text = f"{len(result)} fields: {short_arguments(result, limit)}"
    else:
        text = json.dumps(result, ensure_ascii=False, default=str)
        if isinstance(result, list | dict):
            text = f"{len(result)} {'items' if isinstance(result, list) else 'fields'}: {text}"
    return one_line(text, limit)


class ToolCard(Vertical):
    """Header line (status, name, arguments, duration) plus a folded result preview."""

    DEFAULT_CSS = """
    ToolCard {
        height: auto;
        margin: 0;
        padding: 0 1;
        border-left: outer $secondary;
        background: $boost;
    }
    ToolCard.-error {
        border-left: outer $error;
    }
    ToolCard > .tool-header {
        height: auto;
    }
    ToolCard > Collapsible {
        border: none;
        padding: 0;
        margin: 0;
        background: transparent;
    }
    ToolCard > Collapsible CollapsibleTitle {
        padding: 0;
        color: $text-muted;
    }
    ToolCard > Collapsible > Contents {
        padding: 0 0 0 2;
    }
    ToolCard .tool-result {
        color: $text-muted;
    }
    ToolCard > .tool-args {
        height: auto;
        padding: 0 0 0 2;
    }
    """
    ARGUMENT_LINES = 12  # a long program shows its start; the approval dialog and /export show all of it
    RESULT_LINES = 60  # per field of a result; /export has the rest

    def __init__(self, name: str, arguments: dict[str, Any]) -> None:
        super().__init__()
        self.tool_name = name
        self.arguments = arguments
        self.running = True
        self.error: str | None = None
        self.duration_s: float | None = None
        self._frame = 0
        self._started = time.monotonic()
        self._waited = 0.0  # seconds spent waiting for the person's approval, not counted as running time
        self._waiting_since: float | None = None
        self._header = Static(classes="tool-header")
        self._timer: Timer | None = None
        self._spin = True

    def compose(self) -> ComposeResult:
        yield self._header
        blocks = block_arguments(self.arguments)
        if blocks:
            dark = self.app.current_theme.dark
            view = arguments_view(self.tool_name, self.arguments, dark=dark, max_lines=self.ARGUMENT_LINES, only=blocks)
            yield Static(view, classes="tool-args")

    def waiting(self, on: bool, since: float | None = None) -> None:
        """The call waits for (``on``) or got (``off``) the person's approval; the clock stops meanwhile.

        ``since`` is when the wait began (``time.monotonic()``), which can be before the card existed.
        """
        now = time.monotonic()
        if on and self._waiting_since is None:
            self._waiting_since = max(self._started, since if since is not None else now)
        elif not on and self._waiting_since is not None:
            self._waited += now - self._waiting_since
            self._waiting_since = None
        if self.is_mounted:
            self._render_header()

    def elapsed(self) -> float:
        """Running time so far, without approval waits."""
        waiting = time.monotonic() - self._waiting_since if self._waiting_since is not None else 0.0
        return max(0.0, time.monotonic() - self._started - self._waited - waiting)

    def on_mount(self) -> None:
        # With animations off (TEXTUAL_ANIMATIONS=none: accessibility, recordings) the card holds still.
        self._spin = self.app.animation_level != "none"
        self._render_header()
        if self.running and self._spin:
            self._timer = self.set_interval(0.1, self._tick)

    def _tick(self) -> None:
        self._frame += 1
        self._render_header()

    def _render_header(self) -> None:
        if self.running and self._waiting_since is not None:
            status: tuple[str, str] = ("?", "bold yellow")
            elapsed = "  awaiting approval"
        elif self.running:
            status = (SPINNER[self._frame % len(SPINNER)] if self._spin else "…", "bold cyan")
            elapsed = f"  {self.elapsed():.1f}s" if self._spin else "  running"
        elif self.error is None:
            status, elapsed = ("✓", "bold green"), ""
        else:
            status, elapsed = ("✗", "bold red"), ""
        if self.duration_s is not None:
            elapsed = f"  {self.duration_s:.1f}s"
        self._header.update(
            Text.assemble(
                (status[0] + " ", status[1]),
                (visible(self.tool_name), "bold"),
                (f"({format_args(self.arguments)})", ""),
                (elapsed, "dim"),
            )
        )

    def finish(self, result: Any, error: str | None, duration_s: float | None) -> None:
        """Stop the spinner and show the outcome; a failed call shows its error right away."""
        self.running = False
        self._waiting_since = None
        self.error = error
        self.duration_s = duration_s
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self.is_mounted:
            self._render_header()
        if error is not None:
            self.add_class("-error")
            self.mount(Static(Text(visible(error), style="red"), classes="tool-error"))
        elif result is not None:
            plain = _plain(result)
            if isinstance(plain, dict) and plain and all(isinstance(k, str) for k in plain):
                # Field by field, like arguments: run_python's stdout reads as lines, not one escaped string.
                dark = self.app.current_theme.dark
                view = arguments_view(self.tool_name, plain, dark=dark, max_lines=self.RESULT_LINES)
                result_view = Static(view, classes="tool-result")
            else:
                result_view = Static(format_result(result), markup=False, classes="tool-result")
            self.mount(Collapsible(result_view, title=literal(result_title(result))))  # type: ignore[arg-type]
