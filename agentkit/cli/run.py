"""``agentkit run``: one task, the answer on stdout, everything else on stderr.

Keeping stdout for the answer alone (or for JSON events with ``--json``) is what makes the command
composable: ``agentkit run "summarise" < notes.txt > summary.md`` works, and the person watching still
sees thinking and tool calls on the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text

from agentkit.errors import AgentkitError, UserError
from agentkit.events import (
    EVENT_NAMES,
    AgentEvent,
    Notice,
    PartialOutput,
    RunFinished,
    StepFinished,
    TextDelta,
    ThinkingDelta,
    ToolCallFinished,
    ToolCallStarted,
)

from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    agent_factory,
    describe_stop,
    format_arguments,
    preview,
    resolve_session_id,
    safe_json,
    terminal_safe,
    to_jsonable,
)
from .config import Settings
from .schema import load_output_type, structured_json

if TYPE_CHECKING:
    from agentkit import Agent, Approval, RunResult, ToolCallRequest
    from agentkit.backends.base import Backend

__all__ = [
    "ERROR_EVENT",
    "EventPrinter",
    "JsonEventPrinter",
    "TerminalAsk",
    "call_for_approval",
    "event_to_json",
    "run_command",
]


def _json_line(data: Any) -> str:
    return safe_json(data) + "\n"


ERROR_EVENT = "error"  # the "type" of the last --json line when a run ends in an error


def event_to_json(event: AgentEvent) -> dict[str, Any]:
    """``{"type": "text_delta", ...fields}`` (names from ``EVENT_NAMES``); the result flattened for scripts."""
    kind = EVENT_NAMES.get(type(event))
    if kind is None:
        raise TypeError(f"not an agent event: {type(event).__name__}")
    match event:
        case RunFinished(result=r):
            return {
                "type": kind,
                "output": r.output,
                "stop_reason": r.stop_reason,
                "ok": r.ok,
                "steps": r.steps,
                "session_id": r.session_id,
                "thinking": r.thinking,
                "usage": to_jsonable(r.usage),
                "timings": to_jsonable(r.timings),
                "call_counts": to_jsonable(r.call_counts),
            }
        case _:
            return {"type": kind, **to_jsonable(event)}


class JsonEventPrinter:
    """Every event as one JSON line, flushed at once so a reading process sees it live."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def handle(self, event: AgentEvent) -> None:
        self.out.write(_json_line(event_to_json(event)))
        self.out.flush()

    def error(self, exc: BaseException, session_id: str | None) -> None:
        """The last line when the run ends in an error, so a reading program learns why without stderr."""
        self.out.write(
            _json_line(
                {"type": ERROR_EVENT, "error": str(exc), "error_type": type(exc).__name__, "session_id": session_id}
            )
        )
        self.out.flush()

    def close(self) -> None:
        pass


class EventPrinter:
    """The human view: answer text on ``out``; thinking (dimmed), tool calls and notices on ``err``.

    Everything shown came from the model, a tool, a file or a web page, so all of it goes through
    :func:`terminal_safe`: none of it may drive the terminal.
    """

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.console = Console(file=err, highlight=False, soft_wrap=True)
        self._err_line_open = False  # stderr holds a line without its newline (thinking in progress)
        self._out_last = "\n"
        self.asked: set[str] = set()  # calls a question already showed (see TerminalAsk)
        self.saved = True  # whether the run is saved as a session (so its id is worth showing)
        # Tools that were denied because nobody can be asked (no terminal, no --yes): say how to allow them.
        self.unaskable: set[str] | None = None  # None: someone can be asked (a terminal, or --yes)
        self._hinted = False

    def end_lines(self) -> None:
        """Finish any half-written line on stdout and stderr before printing something else."""
        self._end_err_line()
        self._end_out_line()

    def _end_err_line(self) -> None:
        if self._err_line_open:
            self.console.print()
            self._err_line_open = False

    def handle(self, event: AgentEvent) -> None:
        match event:
            case ThinkingDelta(text=text):
                self.console.print(Text(terminal_safe(text), style="dim italic"), end="")
                self._err_line_open = not text.endswith("\n")
            case TextDelta(text=text):
                self._end_err_line()
                self.out.write(terminal_safe(text))
                self.out.flush()
                if text:
                    self._out_last = text[-1]
            case ToolCallStarted():
                self.end_lines()
                if event.call_id in self.asked:
                    return
                self.console.print(
                    Text.assemble(
                        ("⚙ ", "cyan"),
                        (terminal_safe(event.name), "bold cyan"),
                        f"({format_arguments(event.arguments)})",
                    )
                )
            case ToolCallFinished():
                self._tool_finished(event)
            case RunFinished(result=r):
                self.end_lines()
                parts = [f"{r.steps} step{'s' if r.steps != 1 else ''}", f"{r.usage.completion_tokens} tokens"]
                parts.append(f"{r.timings.total_s:.1f}s")
                if r.call_counts.repaired or r.call_counts.malformed:
                    counts = r.call_counts
                    parts.append(f"tool calls out of format: {counts.repaired} recovered, {counts.malformed} lost")
                if r.session_id and self.saved:
                    parts.append(f"session {r.session_id} (continue with: agentkit run -s {r.session_id} ...)")
                self.console.print(Text("— " + " · ".join(parts), style="dim"))
            case Notice():
                self._end_err_line()
                style = {"error": "bold red", "warning": "yellow"}.get(event.level, "blue")
                self.console.print(Text(f"! {terminal_safe(event.message)}", style=style))
            case StepFinished() | PartialOutput():
                pass  # nothing to show: the step's figures are in the summary, the output when it is validated

    def _tool_finished(self, event: ToolCallFinished) -> None:
        failure = _result_failure(event.result) if event.error is None else None
        if failure is not None:
            # The call returned, but its result says it failed (code that exited non-zero, a sandbox that could
            # not start): a ✓ there would tell the person it worked.
            line = Text.assemble(
                ("✗ ", "red"), (terminal_safe(event.name), "bold"), f" {event.duration_s:.1f}s  ", (failure, "red")
            )
        elif event.error is None:
            line = Text.assemble(
                ("✓ ", "green"),
                (terminal_safe(event.name), "bold"),
                f" {event.duration_s:.1f}s  ",
                (preview(event.result, 100), "dim"),
            )
        else:
            line = Text.assemble(
                ("✗ ", "red"),
                (terminal_safe(event.name), "bold"),
                f" {event.duration_s:.1f}s  ",
                (terminal_safe(event.error), "red"),
            )
        self.console.print(line)
        if event.error is not None and event.name in (self.unaskable or ()) and not self._hinted:
            self._hinted = True
            self.console.print(
                Text("  no terminal to ask for approval: rerun with --yes to allow tools with side effects", "dim")
            )

    def _end_out_line(self) -> None:
        if self._out_last != "\n":
            self.out.write("\n")
            self.out.flush()
            self._out_last = "\n"

    def close(self) -> None:
        self._end_err_line()
        self._end_out_line()


def _result_failure(result: Any) -> str | None:
    """What went wrong, when a tool's result reports a failure itself (an object or mapping with ``ok`` false)."""
    ok = result.get("ok") if isinstance(result, dict) else getattr(result, "ok", None)
    if ok is not False:
        return None

    def field(name: str) -> Any:
        return result.get(name) if isinstance(result, dict) else getattr(result, name, None)

    parts = []
    if field("timed_out"):
        parts.append("timed out")
    elif field("exit_code") is not None:
        parts.append(f"exit code {field('exit_code')}")
    stderr = field("stderr")
    if isinstance(stderr, str) and stderr.strip():
        parts.append(stderr.strip().splitlines()[-1])
    return preview(": ".join(parts) if parts else "the result says it failed", 160)


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


def _read_task(task: str | None) -> str:
    if task is not None and task != "-":
        text = task
    elif sys.stdin.isatty():
        raise UserError('give the task as an argument (agentkit run "what to do") or pipe it on stdin')
    else:
        text = sys.stdin.read()
    if not text.strip():
        raise UserError("the task is empty")
    return text


def _with_media(task: str, images: list[str], audio: list[str]) -> str | list[dict[str, Any]]:
    """The task as content parts when media come with it: images, then audio, then the text (as Gemma 4's model
    card advises). Parts name their files (a saved session stays small); the backend reads them when it sends."""
    if not images and not audio:
        return task
    parts: list[dict[str, Any]] = []
    for kind, paths in (("image", images), ("audio", audio)):
        for raw in paths:
            path = Path(raw).expanduser()
            if not path.is_file():
                problem = "is a directory" if path.is_dir() else "does not exist"
                raise UserError(f"--{kind} {raw}: the file {problem}")
            _check_media_kind(kind, raw, path)
            parts.append({"type": kind, "path": str(path.resolve())})
    return [*parts, {"type": "text", "text": task}]


# Leading bytes of the common formats, to catch a picture given as --audio (or a clip as --image) here, with the
# flag to use, rather than as a server's decoding error. Formats not listed here are passed on unjudged.
_MEDIA_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image", "a PNG image"),
    (b"\xff\xd8\xff", 0, "image", "a JPEG image"),
    (b"GIF8", 0, "image", "a GIF image"),
    (b"WEBP", 8, "image", "a WebP image"),
    (b"BM", 0, "image", "a BMP image"),
    (b"WAVE", 8, "audio", "a WAV clip"),
    (b"fLaC", 0, "audio", "a FLAC clip"),
    (b"OggS", 0, "audio", "an Ogg clip"),
    (b"ID3", 0, "audio", "an MP3 clip"),
)


def _check_media_kind(kind: str, raw: str, path: Path) -> None:
    """Refuse a file that is plainly the other kind of media (or text), naming the flag it needs."""
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise UserError(f"--{kind} {raw}: cannot read it ({exc.strerror})") from exc
    for signature, offset, found, what in _MEDIA_SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            if found != kind:
                raise UserError(f"--{kind} {raw}: the file is {what}, not {kind}; pass it with --{found}")
            return
    if not head:
        raise UserError(f"--{kind} {raw}: the file is empty")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return  # binary in a format not listed above: the backend decides
    raise UserError(f"--{kind} {raw}: the file is text, not {kind}; put text in the task itself")


def build_agent(
    args: argparse.Namespace,
    settings: Settings,
    *,
    ask: TerminalAsk | None,
    output_type: Any = None,
    backend: Backend | None = None,
) -> Agent:
    """The agent for one ``run``: its approvals come from ``--yes``, the terminal, or are denied."""
    from agentkit import SessionStore, allow_all

    store = None if args.no_save else SessionStore()
    session_id = args.session
    if store is not None and session_id is not None:
        session_id = resolve_session_id(store, session_id)
        store.load(session_id)  # a wrong id is a usage error now, before a model is loaded
    elif store is not None and getattr(args, "continue_last", False):
        last = store.list()
        if not last:
            raise UserError(f'no saved session to continue in {store.root}; start one with agentkit run "..."')
        session_id = last[0].id
    return agent_factory(settings, backend=backend).agent(
        approval=allow_all if args.yes else None,
        ask=None if args.yes else ask,
        store=store,
        session_id=session_id,
        output_type=output_type,
    )


async def _run(
    agent: Agent,
    task: str | list[dict[str, Any]],
    printer: EventPrinter | JsonEventPrinter,
    finished: list[RunResult] | None = None,
) -> int:
    ok = False
    try:
        if isinstance(printer, EventPrinter) and printer.unaskable is not None:
            await agent.refresh_tools()  # MCP servers start now, so their tools count among those nobody can approve
            printer.unaskable = {name for name, t in agent.tools.items() if t.side_effects}
        async for event in agent.run_stream(task):
            printer.handle(event)
            if isinstance(event, RunFinished):
                ok = event.result.ok
                if finished is not None:
                    finished.append(event.result)
    except AgentkitError as exc:
        if isinstance(printer, JsonEventPrinter):
            printer.error(exc, agent.session_id if agent.store is not None else None)
        raise
    finally:
        printer.close()
        await agent.aclose()
    return EXIT_OK if ok else EXIT_FAILED


def run_command(args: argparse.Namespace, settings: Settings, *, backend: Backend | None = None) -> int:
    """``backend`` replaces the configured one (``agentkit demo`` runs this same path on a scripted model)."""
    try:
        if (args.session or getattr(args, "continue_last", False)) and args.no_save:
            flag = "--session" if args.session else "--continue"
            raise UserError(f"{flag} continues a saved session and saves the new turn; drop --no-save to continue it")
        output_type = load_output_type(args.schema) if getattr(args, "schema", None) else None
        task = _with_media(_read_task(args.task), getattr(args, "image", []), getattr(args, "audio", []))
        # Questions need a person at a terminal; a task piped on stdin leaves no way to answer.
        interactive = sys.stdin.isatty() and sys.stderr.isatty()
        # With --schema, stdout carries only the validated JSON; any text the model writes goes to stderr.
        human = EventPrinter(sys.stderr if output_type is not None else sys.stdout, sys.stderr)
        human.saved = not args.no_save
        printer: EventPrinter | JsonEventPrinter = JsonEventPrinter(sys.stdout) if args.json else human
        agent = build_agent(
            args, settings, ask=TerminalAsk(human) if interactive else None, output_type=output_type, backend=backend
        )
    except (AgentkitError, ImportError) as exc:
        # A run that cannot start (no backend, a bad session id, a missing --image) ends the --json stream with
        # the same error line as one that fails midway, so a program reading stdout always learns why.
        if args.json:
            JsonEventPrinter(sys.stdout).error(exc, None)
        raise
    if not interactive and not args.yes:
        human.unaskable = set()  # filled in once the MCP servers have started and listed their tools
    try:
        finished: list[RunResult] = []
        code = asyncio.run(_run(agent, task, printer, finished))
    except KeyboardInterrupt:
        if not args.no_save:
            print(
                f"\nagentkit: interrupted; session {agent.session_id} is saved "
                f"(continue with: agentkit run --session {agent.session_id} ...)",
                file=sys.stderr,
            )
        else:
            print("\nagentkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if code != EXIT_OK and not args.json:
        stop_reason = finished[-1].stop_reason if finished else "cancelled"
        print(f"agentkit: the run did not finish: {describe_stop(stop_reason)}", file=sys.stderr)
    if output_type is not None and code == EXIT_OK and not args.json:
        print(structured_json(output_type, finished[-1].output))
    return code
