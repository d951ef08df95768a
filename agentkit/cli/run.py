"""``agentkit run``: one task, the answer on stdout, everything else on stderr.

Keeping stdout for the answer alone (or for JSON events with ``--json``) is what makes the command
composable: ``agentkit run "summarise" < notes.txt > summary.md`` works, and the person watching still
sees thinking and tool calls on the terminal. What is printed is :mod:`agentkit.cli.printers`, the question
before a call runs :mod:`agentkit.cli.approve`; this module reads the task, builds the agent and runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkit.errors import AgentkitError, UserError
from agentkit.events import RunFinished
from agentkit.media import read_media_file, sniff_media

from .approve import TerminalAsk, call_for_approval
from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    agent_factory,
    describe_stop,
    require_utf8,
    resolve_session_id,
)
from .config import Settings
from .printers import ERROR_EVENT, EventPrinter, JsonEventPrinter, event_to_json
from .schema import load_output_type, structured_json

if TYPE_CHECKING:
    from agentkit import Agent, RunResult
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


def _read_task(task: str | None) -> str:
    if task is not None and task != "-":
        text = require_utf8(task, "the task")
    elif sys.stdin.isatty():
        raise UserError('give the task as an argument (agentkit run "what to do") or pipe it on stdin')
    else:
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(
                f"the task on stdin is not UTF-8 text (byte {exc.start}: {exc.reason}); convert it, e.g. with "
                "iconv -t UTF-8"
            ) from exc
    if not text.strip():
        raise UserError("the task is empty")
    return text


def _with_media(task: str, images: list[str], audio: list[str]) -> str | list[dict[str, Any]]:
    """The task as content parts when media come with it: images, then audio, then the text (as Gemma 4's model
    card advises). Parts name their files (a saved session stays small) with their fingerprint; the backend reads
    them when it sends."""
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
            # Pinned to the bytes it has now: read back from the session file, it is sent only while it has them.
            digest = hashlib.sha256(read_media_file(path, f"the {kind}")).hexdigest()
            parts.append({"type": kind, "path": str(path.resolve()), "sha256": digest})
    return [*parts, {"type": "text", "text": task}]


def _check_media_kind(kind: str, raw: str, path: Path) -> None:
    """Refuse a file that is not media agentkit sends, or the other kind (naming the flag it needs), here rather
    than as an error when the backend reads it."""
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise UserError(f"--{kind} {raw}: cannot read it ({exc.strerror})") from exc
    if not head:
        raise UserError(f"--{kind} {raw}: the file is empty")
    found = sniff_media(head)
    if found is None:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            formats = "PNG, JPEG, GIF, WebP, BMP or TIFF" if kind == "image" else "WAV, FLAC, Ogg, MP3 or M4A"
            raise UserError(
                f"--{kind} {raw}: the file is not {kind} in a format agentkit sends ({formats}); convert it first"
            ) from None
        raise UserError(f"--{kind} {raw}: the file is text, not {kind}; put text in the task itself")
    if found[0] != kind:
        flag = f"; pass it with --{found[0]}" if found[0] in ("image", "audio") else ""
        raise UserError(f"--{kind} {raw}: the file is {found[1]}, not {kind}{flag}")


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
        # Closed here, not left to asyncio.run's shutdown: when the printer fails (`| head` went away) or the
        # run is interrupted, the shutdown would close the nested generators (the turn, the backend's stream)
        # all at once, each under the other, and print their tracebacks.
        async with contextlib.aclosing(agent.run_stream(task)) as events:  # type: ignore[type-var]
            async for event in events:
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
        printer: EventPrinter | JsonEventPrinter = human
        if args.json:
            printer = JsonEventPrinter(sys.stdout, saved=not args.no_save)
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
    except KeyboardInterrupt as exc:
        if args.json:  # the stream ends with a line that says so, as for any run that did not finish
            saved = None if args.no_save else agent.session_id
            message = "interrupted (Ctrl-C)" + (f"; session {saved} is saved" if saved else "")
            with contextlib.suppress(OSError):
                JsonEventPrinter(sys.stdout).error(exc, saved, message)
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
