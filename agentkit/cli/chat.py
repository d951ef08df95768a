"""``agentkit chat``: the Textual terminal assistant, started with the resolved settings."""

from __future__ import annotations

import argparse

from agentkit import SessionStore

from .common import EXIT_OK, make_backend, make_tools
from .config import Settings

__all__ = ["chat_command"]


def chat_command(args: argparse.Namespace, settings: Settings) -> int:
    from agentkit.tui import AgentkitApp

    # Resolve the backend before the screen takes over, so "nothing to talk to" prints as a normal error.
    backend = make_backend(settings)
    store = SessionStore()
    if args.session:
        store.load(args.session)  # a wrong id is a usage error here, not a blank screen
    choices = list(dict.fromkeys([f"{backend.name}:{backend.model}", *settings.named_backends.values()]))
    app = AgentkitApp(
        backend,
        tools=make_tools(settings),
        system=settings.system,
        thinking=settings.thinking,
        max_steps=settings.max_steps,
        store=store,
        session_id=args.session,
        backend_choices=[settings.backend_url or "", *choices],
    )
    app.run()
    return EXIT_OK
