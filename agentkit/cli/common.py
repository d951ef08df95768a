"""What every agent-running command shares: exit codes, backend and tool construction, error reporting.

Foreign and library errors are turned into exit codes and one readable line here, at the CLI's edge,
so no user mistake ever ends in a traceback.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import TYPE_CHECKING, Any, TextIO

from agentkit.backends.registry import is_server_address
from agentkit.display import terminal_safe
from agentkit.errors import (
    AgentkitError,
    BackendUnavailable,
    ModelNotFound,
    SessionNotFound,
    UserError,
    WorkersUnavailable,
)
from agentkit.events import STOP_REASONS, describe_stop, to_jsonable

from .config import (
    DEFAULT_TRANSFORMERS_SIZE,
    Settings,
    default_backend_url,
    hf_model_available,
    no_backend_help,
    ollama_host,
)

if TYPE_CHECKING:
    from agentkit import SessionStore
    from agentkit.assemble import AgentFactory
    from agentkit.backends.base import Backend

__all__ = [
    "EXIT_BACKEND",
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "STOP_REASONS",
    "agent_factory",
    "confirm_download",
    "describe_stop",
    "exit_code_for",
    "format_arguments",
    "make_backend",
    "preview",
    "report_error",
    "resolve_backend_url",
    "resolve_session_id",
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
  1    the run failed (model/tool error, step limit reached, a batch task failed, an MCP server did not start)
  2    usage error (bad option, URL, config file or session id)
  3    backend unavailable (server not running, model not pulled, extra not installed, no Ray workers)
  130  interrupted with Ctrl-C (the session is saved)"""


def require_utf8(text: str, what: str) -> str:
    """``text`` from the command line, refused when it is not UTF-8.

    Python keeps bytes that are not UTF-8 in arguments as lone surrogates, which fail only later, when the
    session is saved or the request encoded (an "internal error", or one blamed on the server).
    """
    bad = next((i for i, ch in enumerate(text) if "\udc80" <= ch <= "\udcff"), None)
    if bad is not None:
        raise UserError(
            f"{what} is not UTF-8 text (character {bad + 1} is the byte {ord(text[bad]) - 0xDC00:#04x} of another "
            "encoding); convert it, e.g. with iconv -t UTF-8"
        )
    return text


def missing_package(exc: BaseException) -> bool:
    """Whether ``exc`` is an optional dependency that is not installed (an extra), not a bug in agentkit itself:
    an ImportError for a module outside agentkit, raised directly or re-raised with the extra to install."""
    if not isinstance(exc, ImportError):
        return False
    names = [getattr(e, "name", None) for e in (exc, exc.__cause__)]
    return not any(name and name.split(".")[0] == "agentkit" for name in names)


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an error that ended a command."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, BackendUnavailable | ModelNotFound | WorkersUnavailable) or missing_package(exc):
        return EXIT_BACKEND
    if isinstance(exc, UserError):
        return EXIT_USAGE
    # SessionNotFound is the user naming a session that does not exist: a usage error too.
    if isinstance(exc, SessionNotFound):
        return EXIT_USAGE
    return EXIT_FAILED


# What JSON leaves raw that a terminal may still obey (C1 controls, DEL, bidi overrides, line separators).
# Lone surrogates too: no UTF-8 stream takes them (writing one raised UnicodeEncodeError).
_JSON_UNSAFE = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufff9-\ufffb\ud800-\udfff]"
)


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
    elif missing_package(exc):  # README: exit 3, "extra not installed"; the message names what to install
        hint = "" if "pip install" in str(exc) else " (install the agentkit extra that provides it: README, Install)"
        print(f"agentkit: error: {terminal_safe(str(exc))}{hint}", file=out)
    else:
        print(f"agentkit: internal error: {type(exc).__name__}: {terminal_safe(str(exc))}", file=out)
        print("  this is a bug; rerun with AGENTKIT_DEBUG=1 for the traceback and report it", file=out)
    if os.environ.get("AGENTKIT_DEBUG"):
        import traceback

        traceback.print_exception(exc, file=out)


def confirm_download(url: str, settings: Settings, *, stdin: TextIO | None = None, err: TextIO | None = None) -> None:
    """Let the automatic in-process default download its model only with consent: a flag, or a yes at a terminal.

    Nobody asked for that model by name, and a first run fetches gigabytes: starting that silently (and, offline,
    retrying for a minute) is the worst first contact. Raises ``BackendUnavailable`` when nobody can say yes.
    """
    model = url.split(":", 1)[1]
    if hf_model_available(model):
        return
    stdin = stdin or sys.stdin
    err = err or sys.stderr
    what = f"{model} ({DEFAULT_TRANSFORMERS_SIZE}) from Hugging Face"
    others = no_backend_help(ollama_host(), with_install=False)
    if settings.allow_download:
        print(f"agentkit: downloading {what} (--allow-download)", file=err)
        return
    if stdin.isatty() and err.isatty():
        print(
            f"agentkit: no backend configured and no Ollama found. The in-process backend would download {what}.",
            file=err,
        )
        print("  download it now? [y/N] ", end="", file=err, flush=True)
        if stdin.readline().strip().lower() in {"y", "yes"}:
            return
        raise BackendUnavailable("nothing downloaded. Other ways to run:\n" + others, backend="auto")
    raise BackendUnavailable(
        f"no backend configured and no Ollama found; the in-process default {model} is not downloaded yet "
        f"({DEFAULT_TRANSFORMERS_SIZE}). Do one of:\n"
        f"  - download it: rerun with --allow-download (or --backend transformers:{model})\n" + others,
        backend="auto",
    )


def resolve_backend_url(settings: Settings) -> str:
    """The configured backend URL, or the automatic default (named on stderr, its download agreed to first)."""
    url = settings.backend_url
    if url is not None:
        if is_server_address(url):  # "vllm://HOST:PORT": a server serving one model needs no more
            from .models import only_served_model

            return only_served_model(url)
        return url
    url = default_backend_url()
    if url.startswith("transformers:"):
        confirm_download(url, settings)
    # Say what was picked: loading a model nobody asked for should not be a mystery.
    print(
        f"agentkit: no backend configured; using {url} (choose one with --backend or AGENTKIT_BACKEND)",
        file=sys.stderr,
    )
    return url


def make_backend(settings: Settings) -> Backend:
    """Build the configured backend, or the automatic default when nothing is configured."""
    from agentkit.assemble import backend_options, build_backend

    if settings.backend_replicas:  # several servers of one model: a load-balancing backend over them
        from agentkit.backends import backend_from_urls

        first = settings.backend_replicas[0]
        return backend_from_urls(settings.backend_replicas, **backend_options(first, num_ctx=settings.num_ctx))
    url = resolve_backend_url(settings)
    return build_backend(url, num_ctx=settings.num_ctx)


def agent_factory(settings: Settings, *, backend: Backend | None = None) -> AgentFactory:
    """The backend, tools and MCP servers the settings describe, for the commands that make agents.

    Every agent-making command goes through here (and so through :func:`agentkit.assemble.assemble`), so a
    flag or config value that works for one works for all of them.
    """
    from agentkit.assemble import assemble

    return assemble(settings, backend=backend, make_backend=lambda _: make_backend(settings))


def resolve_session_id(store: SessionStore, given: str) -> str:
    """A saved session's id from the id or a unique start of it (``agentkit run -s 2026``), as git takes hashes."""
    if store.exists(given):
        return given
    matches = sorted(p.stem for p in store.root.glob("*.json") if p.stem.startswith(given)) if given else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
        raise UserError(f"session id {given!r} is ambiguous: it starts {len(matches)} sessions ({shown}); give more")
    return given  # loading it says that it does not exist, and where it looked


def format_arguments(arguments: dict[str, Any], limit: int | None = 120) -> str:
    """``query='gemma 4', max_results=5`` cut to ``limit`` characters (never, with None), terminal-safe."""
    text = terminal_safe(", ".join(f"{k}={v!r}" for k, v in arguments.items()))
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def preview(value: Any, limit: int = 200) -> str:
    """A tool result squeezed to one short line, terminal-safe."""
    text = value if isinstance(value, str) else json.dumps(to_jsonable(value), ensure_ascii=False)
    text = terminal_safe(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
