"""Asking the person at the terminal before a tool call runs: the call shown whole and safe, then y/a/N.

Its own module because what a person approves must be exactly what runs: every argument shown (long ones and
code as numbered blocks, never cut), model text made terminal-safe, and the answer read without blocking the
event loop the other calls run on.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text

from agentkit.toolsets import field_hint, field_value

from .common import format_arguments, terminal_safe
from .printers import EventPrinter

if TYPE_CHECKING:
    from agentkit import Approval, ToolCallRequest
    from agentkit.toolsets import InputRequest

__all__ = ["TerminalAsk", "call_for_approval"]


async def _read_line(stream: TextIO) -> str:
    """Read a line without blocking the event loop, so Ctrl-C during a question still cancels at once."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    fd = stream.fileno()

    def ready() -> None:
        if not future.done():
            future.set_result(stream.readline())

    loop.add_reader(fd, ready)
    try:
        return await future
    finally:
        loop.remove_reader(fd)


# An argument longer than this, or with a line break, is shown as a block of its own (code, file content).
_INLINE = 80
_CODE_ARGUMENTS = {"code", "source", "script", "program"}


def _argument_block(request: ToolCallRequest, key: str, value: str) -> RenderableType:
    """A long string argument in full: syntax-highlighted when it is code, line-numbered, never cut.

    The newline that ends the last line is not drawn as a numbered empty line of its own, so the numbers end
    at the count the heading gives (``str.splitlines``); a blank line before it still shows.
    """
    text = terminal_safe(value.removesuffix("\n"))
    path = request.arguments.get("path")
    if key in _CODE_ARGUMENTS or "python" in request.name:
        lexer = "python"
    elif isinstance(path, str) and path:
        lexer = Syntax.guess_lexer(path, code=text)  # write_file content: highlighted as the file it becomes
    else:
        lexer = "text"
    return Syntax(text, lexer, line_numbers=True, word_wrap=True, theme="ansi_dark", background_color="default")


def call_for_approval(request: ToolCallRequest) -> tuple[RenderableType, int]:
    """The whole call a person is asked to approve, and how many lines it takes (to decide on paging).

    Nothing is cut: what is approved is what is shown. Short arguments stay on the question's line; long
    or multi-line strings (``run_python`` code, ``write_file`` content) follow as numbered blocks.
    """
    inline = {k: v for k, v in request.arguments.items() if not _is_block(v)}
    blocks = {k: v for k, v in request.arguments.items() if _is_block(v)}
    description = terminal_safe(" ".join(request.description.split()))
    shown = [format_arguments(inline, None)] if inline else []
    shown += [f"{terminal_safe(k)}=<shown below>" for k in blocks]
    parts: list[RenderableType] = [
        Text.assemble(
            ("? ", "bold yellow"),
            "allow ",
            (terminal_safe(request.name), "bold"),
            f"({', '.join(shown)})",
            (f" — {description}" if description else "", "dim"),
        )
    ]
    lines = 1
    if request.reason:  # why this call, of a tool otherwise harmless, needs a person (fetch_url's URL check)
        parts.append(Text(f"  why: {terminal_safe(request.reason)}", "yellow"))
        lines += 1
    for key, value in blocks.items():
        parts.append(Text(f"  {terminal_safe(key)} ({len(value.splitlines()) or 1} lines, {len(value)} characters):"))
        parts.append(_argument_block(request, key, value))
        lines += 1 + max(1, len(value.splitlines())) + value.count("\t")
    return Group(*parts), lines


def _is_block(value: Any) -> bool:
    return isinstance(value, str) and ("\n" in value or len(value) > _INLINE)


class TerminalAsk:
    """The ``ask`` callback for a person at the terminal: y = once, a = always (this session), else no.

    It shares the printer's stderr line state, so a question never starts in the middle of streamed
    thinking, and the printer skips the "⚙ name(...)" line of a call the question already showed.
    The call is shown whole (:func:`call_for_approval`); one taller than the terminal opens in a pager
    first, so no line of it scrolls away unseen.
    """

    def __init__(self, printer: EventPrinter) -> None:
        self.printer = printer

    async def __call__(self, request: ToolCallRequest) -> Approval:
        from agentkit import Approval

        self.printer.end_lines()
        self.printer.asked.add(request.call_id)
        console = self.printer.console
        shown, lines = call_for_approval(request)
        if console.is_terminal:
            # Rows as drawn, not lines of text: one line of 20,000 characters wraps to hundreds of rows, and the
            # start of the code (the part that matters) scrolled off the top before the question was asked.
            lines = max(lines, len(console.render_lines(shown, console.options, pad=False)))
        if console.is_terminal and lines > console.height - 3:
            with console.pager(styles=False):  # plain text: a pager shows colour codes as garbage without -R
                console.print(shown, soft_wrap=False)
            console.print(
                Text.assemble(
                    ("? ", "bold yellow"),
                    "allow ",
                    (terminal_safe(request.name), "bold"),
                    f" with the {lines} lines shown in the pager",
                )
            )
        else:
            console.print(shown, soft_wrap=False)  # wrapped, never cropped at the terminal's edge
        if request.repair:
            console.print(Text(f"  the model wrote this call out of format; recovered: {request.repair}", style="dim"))
        console.print(Text("  [y]es once / [a]lways this session / [N]o: ", style="yellow"), end="")
        answer = (await _read_line(sys.stdin)).strip().lower()
        if answer in {"y", "yes"}:
            return Approval.ALLOW
        if answer in {"a", "always"}:
            return Approval.ALWAYS
        return Approval.DENY

    async def elicit(self, request: InputRequest) -> dict[str, Any] | None:
        """An MCP server's form (``elicitation/create``), field by field; None when the person declines.

        The same channel as approvals: the server's message is shown as the server's, never as agentkit's, and
        nothing is sent before the person said yes to answering.
        """
        self.printer.end_lines()
        console = self.printer.console
        console.print(
            Text.assemble(
                ("? ", "bold yellow"),
                "MCP server ",
                (terminal_safe(request.source), "bold"),
                " asks you: ",
                terminal_safe(request.message),
            ),
            soft_wrap=False,
        )
        console.print(Text("  answer it? [y]es / [N]o: ", style="yellow"), end="")
        if (await _read_line(sys.stdin)).strip().lower() not in {"y", "yes"}:
            return None
        properties = request.schema.get("properties") or {}
        required = set(request.schema.get("required") or ())
        answer: dict[str, Any] = {}
        for key, spec in properties.items():
            spec = spec if isinstance(spec, dict) else {}
            label = spec.get("title") or key
            hint = field_hint(spec, key in required)
            for _ in range(3):
                shown = Text.assemble(("  ", ""), (terminal_safe(str(label)), "bold"), f" {terminal_safe(hint)}: ")
                console.print(shown, end="")
                text = (await _read_line(sys.stdin)).strip()
                if not text and "default" in spec:
                    answer[key] = spec["default"]
                    break
                if not text and key not in required:
                    break
                try:
                    answer[key] = field_value(spec, text)
                    break
                except ValueError as exc:
                    console.print(Text(f"  {exc}", style="red"))
            else:
                return None  # three wrong answers: declined rather than a guess sent
        return answer
