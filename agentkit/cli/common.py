"""What every agent-running command shares: exit codes, backend and tool construction, error reporting.

Foreign and library errors are turned into exit codes and one readable line here, at the CLI's edge,
so no user mistake ever ends in a traceback.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from agentkit.errors import AgentkitError, BackendUnavailable, ModelNotFound, SessionNotFound, UserError

from .config import Settings, default_backend_url

if TYPE_CHECKING:
    from agentkit.backends.base import Backend

__all__ = [
    "EXIT_BACKEND",
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "exit_code_for",
    "format_arguments",
    "make_backend",
    "make_tools",
    "make_toolsets",
    "preview",
    "report_error",
    "safe_json",
    "terminal_safe",
    "to_jsonable",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """exit codes:
  0    success
  1    the run failed (model/tool error, step limit reached, a batch task failed)
  2    usage error (bad option, URL, config file or session id)
  3    backend unavailable (server not running, model not pulled, extra not installed)
  130  interrupted with Ctrl-C (the session is saved)"""


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an error that ended a command."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, BackendUnavailable | ModelNotFound):
        return EXIT_BACKEND
    if isinstance(exc, UserError):
        return EXIT_USAGE
    # SessionNotFound is the user naming a session that does not exist: a usage error too.
    if isinstance(exc, SessionNotFound):
        return EXIT_USAGE
    return EXIT_FAILED


# C0 controls but tab and newline, DEL, C1 controls (U+009B is a one-character CSI on many terminals), and the
# bidirectional embeddings, overrides and isolates that make text display in another order than it is read.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """``text`` that cannot drive the terminal: control characters shown as ``\\x1b``-style escapes.

    Everything the CLI prints that came from outside (answers, thinking, tool arguments and results, errors,
    session titles and file names) goes through here, so a web page or a file cannot write escape sequences
    (OSC 52 clipboard writes, cursor moves that overwrite an approval question, title changes) or reorder
    what is shown with bidi overrides. ``\\r\\n`` becomes ``\\n``; a lone ``\\r`` is escaped, since it returns
    to the start of the line and lets text overwrite what is already there.
    """
    if text.isascii() and text.isprintable():
        return text  # the common case, at once
    return _UNSAFE.sub(_escape, text.replace("\r\n", "\n"))


# What JSON leaves raw that a terminal may still obey (C1 controls, DEL, bidi overrides, line separators).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def safe_json(data: Any, **options: Any) -> str:
    """``json.dumps(data, ensure_ascii=False)`` with those characters as ``\\u`` escapes.

    JSON output may well land on a terminal; the escapes decode to the very same string in any JSON reader,
    so nothing is lost for programs.
    """
    text = json.dumps(data, ensure_ascii=False, **options)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def report_error(exc: BaseException, stream: TextIO | None = None) -> None:
    """One line (or a short block) on stderr; tracebacks only with ``AGENTKIT_DEBUG=1``."""
    out = stream or sys.stderr
    if isinstance(exc, AgentkitError):
        print(f"agentkit: error: {terminal_safe(str(exc))}", file=out)
    else:
        print(f"agentkit: internal error: {type(exc).__name__}: {terminal_safe(str(exc))}", file=out)
        print("  this is a bug; rerun with AGENTKIT_DEBUG=1 for the traceback and report it", file=out)
    if os.environ.get("AGENTKIT_DEBUG"):
        import traceback

        traceback.print_exception(exc, file=out)


def make_backend(settings: Settings) -> Backend:
    """Build the configured backend, or the automatic default when nothing is configured."""
    from agentkit import backend_from_url

    url = settings.backend_url
    if url is None:
        url = default_backend_url()
        # Say what was picked: loading (or downloading) a model nobody asked for should not be a mystery.
        print(
            f"agentkit: no backend configured; using {url} (choose one with --backend or AGENTKIT_BACKEND)",
            file=sys.stderr,
        )
    return backend_from_url(url)


def make_tools(settings: Settings) -> list[Any]:
    """The built-in tools named by ``--tools``; files (required) and python (optional) use ``--workspace``."""
    if not settings.tools:
        return []
    from agentkit.tools import PythonSandbox, Workspace, fetch_url, web_search

    tools: list[Any] = []
    workspace: Any = None
    if "files" in settings.tools and settings.workspace is None:
        raise UserError("the files tool needs a folder to work in: add --workspace DIR")
    if settings.workspace is not None:
        if settings.workspace.exists() and not settings.workspace.is_dir():
            raise UserError(f"--workspace {settings.workspace} is a file; give a folder (it is created if missing)")
        try:
            settings.workspace.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the workspace folder {settings.workspace}: {exc.strerror or exc}") from exc
        workspace = Workspace(settings.workspace)
    for name in settings.tools:
        if name == "search":
            tools.append(web_search)
        elif name == "fetch":
            tools.append(fetch_url)
        elif name == "files":
            tools.extend(workspace.tools())
        elif name == "python":
            # With --workspace the code sees those files; without, it gets a scratch folder thrown away after.
            tools.append(PythonSandbox(workspace).as_tool())
    return tools


def make_toolsets(settings: Settings) -> list[Any]:
    """The MCP servers from ``--mcp`` and ``[mcp.servers.NAME]``; started by the agent on its first request."""
    if not settings.mcp_servers:
        return []
    from agentkit.mcp import MCPServerHTTP, MCPServerStdio

    toolsets: list[Any] = []
    for spec in settings.mcp_servers:
        options: dict[str, Any] = {"name": spec.name}
        if spec.timeout_s is not None:
            options["timeout_s"] = spec.timeout_s
        if spec.url is not None:
            toolsets.append(MCPServerHTTP(spec.url, headers=spec.headers, **options))
        else:
            assert spec.command is not None
            toolsets.append(MCPServerStdio(spec.command, spec.args, env=spec.env, cwd=spec.cwd, **options))
    names = [t.name for t in toolsets]
    for i, toolset in enumerate(toolsets):
        if names.count(toolset.name) > 1:  # two --mcp of the same program: number them, keep both
            toolset.name = f"{toolset.name}{names[:i].count(toolset.name) + 1}"
    return toolsets


def to_jsonable(value: Any) -> Any:
    """Events and results as plain JSON values (dataclasses, pydantic models, enums, paths, dates)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump: Callable[..., Any] | None = getattr(value, "model_dump", None)
    if callable(dump):
        return to_jsonable(dump(mode="json"))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def format_arguments(arguments: dict[str, Any], limit: int | None = 120) -> str:
    """``query='gemma 4', max_results=5`` cut to ``limit`` characters (never, with None), terminal-safe."""
    text = terminal_safe(", ".join(f"{k}={v!r}" for k, v in arguments.items()))
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def preview(value: Any, limit: int = 200) -> str:
    """A tool result squeezed to one short line, terminal-safe."""
    text = value if isinstance(value, str) else json.dumps(to_jsonable(value), ensure_ascii=False)
    text = terminal_safe(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
