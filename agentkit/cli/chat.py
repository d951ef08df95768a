"""``agentkit chat``: the Textual terminal assistant, started with the resolved settings."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys

from agentkit import SessionStore
from agentkit.assemble import build_backend
from agentkit.errors import UserError

from .common import EXIT_OK, agent_factory, resolve_backend_url, resolve_session_id
from .config import Settings

__all__ = ["chat_command", "has_terminal"]


def has_terminal() -> bool:
    """The TUI draws on stdout and reads keys from stdin; both must be a terminal."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def chat_command(args: argparse.Namespace, settings: Settings) -> int:
    from agentkit.tui import AgentkitApp

    if not has_terminal():
        # Otherwise the app would write screen codes into a pipe and wait forever for keys.
        raise UserError('agentkit chat needs a terminal; in scripts and pipes use agentkit run "task" instead')
    # Resolve the backend before the screen takes over, so "nothing to talk to" prints as a normal error.
    settings = dataclasses.replace(settings, backend_url=resolve_backend_url(settings))
    store = SessionStore()
    if args.session:
        args.session = resolve_session_id(store, args.session)
        store.load(args.session)  # a wrong id is a usage error here, not a blank screen
    agents = agent_factory(settings)  # the same backend, tools, MCP servers and options as agentkit run
    app = AgentkitApp(
        agents.backend,
        options=agents.options,
        store=store,
        session_id=args.session,
        backend_url=settings.backend_url,
        backend_choices=list(settings.named_backends.values()),
        # A backend picked in the app gets the same engine options (--num-ctx) as the one it replaces.
        backend_factory=functools.partial(build_backend, num_ctx=settings.num_ctx),
    )
    app.run()
    return EXIT_OK
