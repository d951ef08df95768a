"""What ``agentkit run`` shows of a run: the answer on stdout, the rest on stderr, or one JSON event per line.

Its own module because the printers are the run's view and nothing else (``agentkit demo`` and the benches use
them too): they take typed events and write them, every piece of model or tool text made terminal-safe first.
"""

from __future__ import annotations

from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

from agentkit import events
from agentkit.events import EVENT_NAMES, AgentEvent, ToolCallFinished
from agentkit.output import FINAL_RESULT

from .common import format_arguments, preview, safe_json, terminal_safe, to_jsonable

__all__ = ["ERROR_EVENT", "EventPrinter", "JsonEventPrinter", "event_to_json"]


def _json_line(data: Any) -> str:
    return safe_json(data) + "\n"


ERROR_EVENT = "error"  # the "type" of the last --json line when a run ends in an error


def event_to_json(event: AgentEvent) -> dict[str, Any]:
    """``{"type": "text_delta", ...fields}`` (names from ``EVENT_NAMES``); the result flattened for scripts."""
    kind = EVENT_NAMES.get(type(event))
    if kind is None:
        raise TypeError(f"not an agent event: {type(event).__name__}")
    match event:
        case events.RunFinished(result=r):
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

    def __init__(self, out: TextIO, *, saved: bool = True) -> None:
        self.out = out
        self.saved = saved  # --no-save: the run's id names no session a later run could continue

    def handle(self, event: AgentEvent) -> None:
        data = event_to_json(event)
        if not self.saved and "session_id" in data:
            data["session_id"] = None
        self.out.write(_json_line(data))
        self.out.flush()

    def error(self, exc: BaseException, session_id: str | None, message: str | None = None) -> None:
        """The last line when the run ends in an error, so a reading program learns why without stderr;
        ``message`` for an exception that has none of its own (Ctrl-C's ``KeyboardInterrupt``)."""
        text = str(exc) if message is None else message
        self.out.write(
            _json_line({"type": ERROR_EVENT, "error": text, "error_type": type(exc).__name__, "session_id": session_id})
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
            case events.ThinkingDelta(text=text):
                self.console.print(Text(terminal_safe(text), style="dim italic"), end="")
                self._err_line_open = not text.endswith("\n")
            case events.TextDelta(text=text):
                self._end_err_line()
                self.out.write(terminal_safe(text))
                self.out.flush()
                if text:
                    self._out_last = text[-1]
            case events.ToolCallStarted():
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
            case events.ToolCallFinished():
                self._tool_finished(event)
            case events.RunFinished(result=r):
                self.end_lines()
                parts = [f"{r.steps} step{'s' if r.steps != 1 else ''}", f"{r.usage.completion_tokens} tokens"]
                parts.append(f"{r.timings.total_s:.1f}s")
                if r.call_counts.repaired or r.call_counts.malformed:
                    counts = r.call_counts
                    parts.append(f"tool calls out of format: {counts.repaired} recovered, {counts.malformed} lost")
                if r.session_id and self.saved:
                    parts.append(f"session {r.session_id} (continue with: agentkit run -s {r.session_id} ...)")
                self.console.print(Text("— " + " · ".join(parts), style="dim"))
            case events.Notice():
                self._end_err_line()
                style = {"error": "bold red", "warning": "yellow"}.get(event.level, "blue")
                self.console.print(Text(f"! {terminal_safe(event.message)}", style=style))
            case events.StepFinished() | events.PartialOutput():
                pass  # nothing to show: the step's figures are in the summary, the output when it is validated

    def _tool_finished(self, event: ToolCallFinished) -> None:
        # final_result's result is the answer itself (its own "ok" field is the user's data, not a failure).
        failure = _result_failure(event.result) if event.error is None and event.name != FINAL_RESULT else None
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
