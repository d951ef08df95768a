"""The ``agentkit`` command: chat, run, batch, sessions, models, doctor, demo and ``mcp serve``.

argparse keeps the command dependency-free and lets this module own every exit code: usage errors exit 2
(argparse's own convention), unavailable backends 3, Ctrl-C 130. Subcommand modules are imported only
when their command runs, so ``agentkit --help`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from agentkit import __version__
from agentkit.errors import AgentkitError

from .common import EXIT_CODES_HELP, EXIT_INTERRUPTED, exit_code_for, report_error, require_utf8
from .config import KNOWN_TOOLS, Settings, resolve_settings
from .otel import traces_from_environment

__all__ = ["build_parser", "main", "settings_from_args"]

_DESCRIPTION = "Agents on Gemma 4 with native function calling: a terminal assistant, one-shot runs and batches."

_START_HELP = """first steps:
  agentkit demo                      no model needed: a scripted model drives the real tools
  agentkit doctor                    what is there (server, model, sandbox) and what to start or install
  agentkit run -b URL "a task"       one task; agentkit models -b vllm://HOST:8000 lists a server's models
  agentkit chat                      the terminal assistant
  agentkit COMMAND --help            each command's options, with examples
"""

_CONFIG_HELP = """configuration (highest precedence first):
  flags (--backend, --model, --thinking, --tools, --workspace)
  environment (AGENTKIT_BACKEND, AGENTKIT_MODEL, AGENTKIT_THINKING, AGENTKIT_TOOLS, AGENTKIT_WORKSPACE)
  config file (--config, $AGENTKIT_CONFIG, or the platform config dir's agentkit/config.toml)
  otherwise: a local Ollama if it answers, else in-process transformers (gemma-4-E2B) if installed,
  downloaded only after you agree (~10 GB; --allow-download). No model at all? agentkit demo

backend URLs:
  ollama://localhost:11434/gemma4:e4b       vllm://HOST:8000/google/gemma-4-31B-it
  transformers:google/gemma-4-E2B-it        scripted:outputs.json (replays raw model outputs; for demos and tests)
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with the slips people make answered where they were made.

    An unknown option is reported by the command it was given to (``agentkit run: error: ...``, with that
    command's usage, not the top level's), and a misspelt option, command or choice gets the closest valid one
    (``--backnd`` → ``--backend``, ``rnu`` → ``run``); Python 3.11's argparse does neither.
    """

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        given = list(sys.argv[1:] if args is None else args)
        if given and given[0].startswith("-") and given[0].split("=", 1)[0] not in self._option_string_actions:
            # Before the command: argparse would only say that a COMMAND is required.
            self.error(f"unrecognized arguments: {self._with_guess(given[0])}; see {self.prog} --help")
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            target = self._innermost(parsed)
            hints = " ".join(target._with_guess(extra) for extra in extras)
            target.error(f"unrecognized arguments: {hints}; see {target.prog} --help")
        return parsed

    def error(self, message: str) -> NoReturn:
        # "the following arguments are required: ACTION" named no action: `agentkit sessions` left a newcomer
        # to guess list, show, ... (or to find --help).
        for action in self._actions:
            missing = isinstance(action, argparse._SubParsersAction) and action.metavar and action.choices
            if missing and message == f"the following arguments are required: {action.metavar}":
                names = ", ".join(action.choices or ())
                message = f"say which {str(action.metavar).lower()}: {names} (see {self.prog} --help)"
        super().error(message)

    def _with_guess(self, arg: str) -> str:
        """``--backnd`` → ``--backnd (did you mean --backend?)``; anything else as it is."""
        name = arg.split("=", 1)[0]
        if name.startswith("-"):
            close = difflib.get_close_matches(name, list(self._option_string_actions), n=1, cutoff=0.6)
            if close:
                return f"{name} (did you mean {close[0]}?)"
        return arg

    def _innermost(self, parsed: argparse.Namespace) -> _Parser:
        """The (sub)command parser that took the arguments: the one whose options a stray one was meant for."""
        parser = self  # subcommand parsers are of this class too (add_subparsers makes them with type(self))
        for dest in ("command", "action"):
            subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            chosen = getattr(parsed, dest, None)
            if not subparsers or chosen is None or chosen not in subparsers[0].choices:
                break
            chosen_parser = subparsers[0].choices[chosen]
            if not isinstance(chosen_parser, _Parser):
                break
            parser = chosen_parser
        return parser

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is not None and value not in choices and isinstance(value, str):
            close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
            if close:
                listed = ", ".join(repr(str(c)) for c in choices)
                raise argparse.ArgumentError(
                    action, f"invalid choice: {value!r}; did you mean {close[0]!r}? (choose from {listed})"
                )
        super()._check_value(action, value)


# What each command's --help shows first to copy: the forms the README's command section uses.
_EXAMPLES: dict[str, tuple[str, ...]] = {
    "chat": (
        "agentkit chat                                          # the backend from flags, environment or config",
        "agentkit chat -b vllm://HOST:8000/google/gemma-4-31B-it --tools files -w .",
        "agentkit chat --session 20261127-1432                  # resume (a unique start of the id)",
    ),
    "run": (
        'agentkit run "What is 2+2?"',
        'agentkit run -b ollama://localhost:11434/gemma4:e4b --tools search,fetch "What is new in Gemma 4?"',
        'agentkit run --tools files,python -w . "Summarise README.md"   # asks before running code',
        'echo "Translate to French: good morning" | agentkit run        # the task from stdin',
        'agentkit run -c "and in Spanish?"                              # continue the last session',
        'agentkit run --json "What is 2+2?" | jq -c .type               # every event as a JSON line',
        'agentkit run --schema invoice.schema.json "Extract: $(cat scan.txt)" > invoice.json',
    ),
    "batch": (
        "agentkit batch questions.txt -o results.jsonl --concurrency 8",
        "agentkit batch tasks.jsonl -o results.jsonl --retry-failed      # rerun the failed ones",
        "agentkit batch tasks.jsonl -o results.jsonl -b vllm://gpu-1:8000/M -b vllm://gpu-2:8000/M",
    ),
    "sessions": (
        "agentkit sessions list",
        "agentkit sessions show 20261127-1432 --thinking",
        "agentkit sessions export 20261127-1432 -o chat.json",
        'agentkit sessions rename 20261127-1432 "Trip planning"',
        "agentkit sessions delete 20261127-1432",
    ),
    "doctor": (
        "agentkit doctor                      # the configured backends, tools and sandbox",
        "agentkit doctor -b vllm://HOST:8000/google/gemma-4-31B-it --no-probe",
        "agentkit doctor --json",
    ),
    "models": (
        "agentkit models -b vllm://HOST:8000              # a server's models, before you know their names",
        "agentkit models -b ollama://localhost:11434",
        "agentkit models --json",
    ),
    "demo": ("agentkit demo", "agentkit demo --yes --keep", "agentkit demo --tui"),
    "mcp": ("agentkit mcp serve --tools python,files -w DIR",),
}


def _backend_options() -> argparse.ArgumentParser:
    """Which model to talk to (a parent parser): every command that reaches a backend takes these."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("backend options")
    g.add_argument(
        "--backend",
        "-b",
        metavar="URL",
        action="append",
        help="backend URL or a name from the config's [backends]; repeat it for replicas of one model (requests "
        "go to the least busy one)",
    )
    g.add_argument("--model", "-m", metavar="NAME", help="replace the model in the backend URL (gemma4:e2b, ...)")
    g.add_argument("--config", metavar="PATH", help="config file to read instead of the default one")
    g.add_argument(
        "--allow-download",
        action="store_true",
        help="with no backend configured and no Ollama, let the in-process default download its model (~10 GB)",
    )
    return p


def _agent_options() -> argparse.ArgumentParser:
    """What the agent gets (a parent parser, beside the backend options): commands that build an agent."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("agent options")
    g.add_argument(
        "--thinking", action=argparse.BooleanOptionalAction, default=None, help="let the model think before answering"
    )
    g.add_argument(
        "--tools", metavar="LIST", help=f"comma-separated built-in tools: {','.join(KNOWN_TOOLS)} ('' for none)"
    )
    g.add_argument("--workspace", "-w", metavar="DIR", help="folder the files and python tools work in")
    g.add_argument("--system", metavar="TEXT", help="system prompt")
    g.add_argument("--max-steps", type=int, metavar="N", help="most generation steps per task (default 20)")
    g.add_argument(
        "--mcp",
        action="append",
        default=[],
        metavar="'CMD ARGS'|URL",
        help="an MCP server whose tools the agent gets: a command (stdio) or an http(s) URL; repeatable",
    )
    return p


def _sampling_options() -> argparse.ArgumentParser:
    """Sampling and context size for the commands that generate (a parent parser); unset = Gemma 4's defaults."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("sampling options (default: Gemma 4's recommended temperature 1.0, top-p 0.95)")
    g.add_argument("--temperature", "-t", type=float, metavar="T", help="sampling temperature (0 = greedy)")
    g.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling threshold in (0, 1]")
    g.add_argument("--max-tokens", type=int, metavar="N", help="most tokens in one model reply (default 4096)")
    g.add_argument(
        "--num-ctx",
        type=int,
        metavar="N",
        help="context size in tokens (ollama and transformers; a vLLM server sets its own with --max-model-len)",
    )
    return p


def _schema_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--schema`` for the commands that can ask for a structured answer (``{}`` in the help: what it names)."""
    what = "a JSON Schema file or a Python type"
    parser.add_argument("--schema", metavar="FILE|MODULE:CLASS", help=help_text.format(what))


def _ray_address(value: str) -> str:
    """``--ray``'s address: HOST:PORT or ray://HOST:PORT. ``auto`` (Ray's discovery) is refused: it joins whatever
    cluster a world-writable file names. Anything else is most likely the task file taken as the address
    (``--ray tasks.jsonl``), so say how to write it rather than report a missing TASKS."""
    if value.strip().lower() == "auto":
        raise argparse.ArgumentTypeError(
            "'auto' is not accepted: Ray's discovery joins whichever cluster /tmp/ray/ray_current_cluster names, a "
            "file any local user can write; give the cluster's address (--ray HOST:6379), or --ray alone for a new "
            "private local cluster"
        )
    if value == "" or value.startswith("ray://") or re.fullmatch(r"[\w.\-\[\]:]+:\d+", value):
        return value
    raise argparse.ArgumentTypeError(
        f"{value!r} is not a Ray address (HOST:PORT or ray://HOST:PORT); to use RAY_ADDRESS or a new local "
        "cluster, put --ray after the task file, or write --ray= before it"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="agentkit",
        description=_DESCRIPTION,
        epilog=f"{_START_HELP}\n{EXIT_CODES_HELP}\n\n{_CONFIG_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"agentkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    def command(name: str, **options: Any) -> argparse.ArgumentParser:
        # Every command's --help ends with examples to copy and the exit codes, its description's line breaks kept.
        lines = "\n".join(f"  {line}" for line in _EXAMPLES.get(name, ()))
        epilog = f"examples:\n{lines}\n\n{EXIT_CODES_HELP}" if lines else EXIT_CODES_HELP
        return sub.add_parser(name, epilog=epilog, formatter_class=fmt, **options)

    backend_only = _backend_options()
    common = [backend_only, _agent_options()]
    sampling = _sampling_options()

    chat = command("chat", parents=[*common, sampling], help="open the terminal assistant (TUI)")
    chat.add_argument("--session", "-s", metavar="ID", help="resume a saved session")

    run = command(
        "run",
        parents=[*common, sampling],
        help="run one task; the answer goes to stdout",
        description="Run one task. The answer streams to stdout; thinking and tool activity go to stderr.",
    )
    run.add_argument("task", nargs="?", help="the task; read from stdin when omitted or '-'")
    run.add_argument("--json", action="store_true", help="print every event as a JSON line on stdout")
    run.add_argument("--yes", "-y", action="store_true", help="approve side-effecting tool calls without asking")
    resume = run.add_mutually_exclusive_group()
    resume.add_argument(
        "--session", "-s", metavar="ID", help="continue a saved session (a unique start of its id will do)"
    )
    resume.add_argument("--continue", "-c", dest="continue_last", action="store_true", help="continue the last session")
    run.add_argument("--no-save", action="store_true", help="do not save this run as a session")
    run.add_argument(
        "--image",
        metavar="PATH",
        action="append",
        default=[],
        help="a picture the task is about (PNG, JPEG, ...); repeatable, placed before the task's text",
    )
    run.add_argument(
        "--audio",
        metavar="PATH",
        action="append",
        default=[],
        help="a sound clip the task is about (WAV, FLAC, OGG, MP3); repeatable, after the images",
    )
    _schema_option(run, "answer with JSON validated against {}; only that JSON goes to stdout")

    batch = command(
        "batch",
        parents=[*common, sampling],
        help="run many tasks from a file (one per line: plain text or JSON)",
        description=(
            'Run every task of a file, one per line: {"id": ..., "task": ...}, a JSON string, or plain text. '
            "Results are appended to OUTPUT one line per task as each finishes; rerunning the same command skips "
            "tasks already in OUTPUT. The exit status is 1 while any task's recorded result is a failure."
        ),
    )
    batch.add_argument("input", metavar="TASKS", help="tasks, one per line (plain text or JSON)")
    batch.add_argument("--output", "-o", required=True, metavar="RESULTS.jsonl", help="results file (appended to)")
    batch.add_argument("--concurrency", "-c", type=int, default=4, metavar="N", help="tasks at once (default 4)")
    batch.add_argument(
        "--timeout", type=float, default=600.0, metavar="SECONDS", help="per-task time limit (default 600)"
    )
    batch.add_argument("--yes", "-y", action="store_true", help="approve side-effecting tool calls (else denied)")
    batch.add_argument("--retry-failed", action="store_true", help="run again tasks whose recorded result is an error")
    batch.add_argument("--save-sessions", action="store_true", help="save each task as a session")
    _schema_option(batch, "answer each task with JSON validated against {} (the output field)")
    batch.add_argument(
        "--json", action="store_true", help="print progress as JSON lines on stdout (batch_progress, batch_finished)"
    )
    batch.add_argument(
        "--progress-every", type=float, default=5.0, metavar="SECONDS", help="seconds between --json progress events"
    )
    scale = batch.add_argument_group(
        "scale-out (in the agentkit checkout: pip install -e '.[ray]'; see docs/scale-out.md)"
    )
    scale.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        type=_ray_address,
        metavar="ADDRESS",
        help=(
            "run the tasks on a Ray cluster: the one at ADDRESS (HOST:6379 or ray://HOST:10001), else RAY_ADDRESS's, "
            "else a new private local cluster; an existing cluster is joined only by its address ('auto' is refused)"
        ),
    )
    scale.add_argument("--ray-workers", type=int, metavar="N", help="worker actors (default: the cluster's CPUs)")
    scale.add_argument(
        "--max-attempts",
        type=int,
        default=3,
        metavar="N",
        help="times a task may start when the worker running it dies (default 3)",
    )

    sessions = command(
        "sessions",
        help="list, show, export, rename or delete saved sessions",
    )
    ssub = sessions.add_subparsers(dest="action", metavar="ACTION", required=True)
    s_list = ssub.add_parser("list", help="saved sessions, newest first")
    s_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s_show = ssub.add_parser("show", help="print a conversation")
    s_show.add_argument("id", help="session id (a unique start of it will do)")
    s_show.add_argument("--thinking", action="store_true", help="include the model's thinking")
    s_del = ssub.add_parser("delete", help="delete a session")
    s_del.add_argument("id", help="session id (a unique start of it will do)")
    s_exp = ssub.add_parser("export", help="write a session as JSON")
    s_exp.add_argument("id", help="session id (a unique start of it will do)")
    s_exp.add_argument("--output", "-o", metavar="FILE", help="file to write (default: stdout)")
    s_ren = ssub.add_parser("rename", help="give a session a new title")
    s_ren.add_argument("id", help="session id (a unique start of it will do)")
    s_ren.add_argument("title", help="the new title")

    doctor = command(
        "doctor",
        parents=common,
        help="check backends, models, tool calling and the sandbox",
        description=(
            "Check every configured backend (reachable? model present? a one-call tool probe), the MCP servers, "
            "the tools and workspace (as run builds them) and the sandbox."
        ),
    )
    doctor.add_argument("--no-probe", action="store_true", help="skip the tool-calling probe (it runs the model)")
    doctor.add_argument("--json", action="store_true", help="print the checks as one JSON object on stdout")

    models = command(
        "models",
        parents=[backend_only],
        help="list the models the backend serves",
        description=(
            "List the models the backend serves (Ollama: pulled models; vLLM: served names; transformers: the "
            "configured model and whether it is on this machine), one per line on stdout."
        ),
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of one name per line")

    demo = command(
        "demo",
        help="try agentkit offline: a scripted model drives real tools in a temporary folder",
        description=(
            "A real agent session with no model server: a scripted stand-in for Gemma 4 (its replies are canned) "
            "reads a CSV in a temporary workspace, runs Python on it in the sandbox and writes a report. The tools, "
            "the approval questions, the sandbox and the streaming are the real ones."
        ),
    )
    demo.add_argument("--yes", "-y", action="store_true", help="approve the demo's tool calls without asking")
    demo.add_argument("--tui", action="store_true", help="run the demo in the terminal assistant (agentkit chat)")
    demo.add_argument("--keep", action="store_true", help="keep the demo's workspace folder afterwards")

    mcp = command(
        "mcp",
        help="serve agentkit's tools to MCP clients",
    )
    msub = mcp.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = msub.add_parser(
        "serve",
        help="serve the built-in tools over MCP on stdin/stdout",
        description=(
            "Serve agentkit's built-in tools (sandboxed python, workspace files, search, fetch) to any MCP client "
            "over stdio, e.g. in a client's config: command = agentkit, args = [mcp, serve, --tools, python,files, "
            "--workspace, DIR]."
        ),
        epilog=f"examples:\n  {_EXAMPLES['mcp'][0]}\n\n{EXIT_CODES_HELP}",
        formatter_class=fmt,
    )
    serve.add_argument(
        "--tools", metavar="LIST", help=f"comma-separated: {','.join(KNOWN_TOOLS)} (default python,files)"
    )
    serve.add_argument("--workspace", "-w", metavar="DIR", help="folder the files and python tools work in")
    serve.add_argument("--config", metavar="PATH", help="config file to read instead of the default one")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    return resolve_settings(
        backend=args.backend,
        model=args.model,
        thinking=getattr(args, "thinking", None),
        tools=getattr(args, "tools", None),
        workspace=getattr(args, "workspace", None),
        system=None if getattr(args, "system", None) is None else require_utf8(args.system, "--system"),
        max_steps=getattr(args, "max_steps", None),
        config=args.config,
        mcp=getattr(args, "mcp", ()),
        sampling={
            "temperature": getattr(args, "temperature", None),
            "top_p": getattr(args, "top_p", None),
            "max_tokens": getattr(args, "max_tokens", None),
        },
        num_ctx=getattr(args, "num_ctx", None),
        allow_download=getattr(args, "allow_download", False),
    )


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "mcp":
        from .mcp import mcp_command

        return mcp_command(args)
    if args.command == "sessions":
        from .sessions import sessions_command

        return sessions_command(args)
    if args.command == "demo":
        from .demo import demo_command

        return demo_command(args)
    try:
        settings = settings_from_args(args)
    except AgentkitError as exc:
        if args.command == "run" and args.json:
            # A run that cannot start ends its --json stream with the error line, whatever stopped it: here a
            # config file, a --tools name or an environment variable (run_command covers the later causes).
            from .printers import JsonEventPrinter

            JsonEventPrinter(sys.stdout).error(exc, None)
        elif args.command == "doctor" and args.json:
            # doctor --json always prints its one object: here nothing could be checked, and why.
            from .common import EXIT_USAGE, safe_json

            report = {"ok": False, "exit_code": EXIT_USAGE, "error": str(exc), "error_type": type(exc).__name__}
            print(safe_json({**report, "checks": []}, indent=2))
        raise
    with traces_from_environment():  # OTEL_EXPORTER_OTLP_ENDPOINT set: agents are traced (cli/otel.py)
        return _dispatch_agent_command(args, settings)


def _dispatch_agent_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "run":
        from .run import run_command

        return run_command(args, settings)
    if args.command == "batch":
        from .batch import batch_command

        return batch_command(args, settings)
    if args.command == "doctor":
        from .doctor import doctor_command

        return doctor_command(args, settings)
    if args.command == "models":
        from .models import models_command

        return models_command(args, settings)
    from .chat import chat_command

    return chat_command(args, settings)


def _one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    # Warnings meant for people (template drift, fallbacks) read as one line, not as a source location.
    return f"agentkit: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns (and, as a script, exits with) the exit code."""
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()  # `agentkit` alone: what it can do, not "the following arguments are required"
        return 0
    args = parser.parse_args(argv)
    previous_format = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("\nagentkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `agentkit run ... | head`: the reader went away; nothing more to say. Point stdout at /dev/null so
        # the interpreter's final flush does not fail again (the pattern the Python docs give for SIGPIPE).
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        report_error(exc)
        return exit_code_for(exc)
    finally:
        warnings.formatwarning = previous_format


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
