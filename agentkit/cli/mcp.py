"""``agentkit mcp serve``: agentkit's built-in tools for any MCP client, over stdin/stdout.

stdout belongs to the protocol, so nothing else may be printed there; problems go to stderr before the
server starts (a missing workspace, an unknown tool), as for every other command.
"""

from __future__ import annotations

import argparse

from agentkit.assemble import build_tools

from .common import EXIT_OK
from .config import resolve_settings

__all__ = ["mcp_command"]


def mcp_command(args: argparse.Namespace) -> int:
    settings = resolve_settings(
        tools=args.tools if args.tools is not None else "python,files",
        workspace=args.workspace,
        config=args.config,
    )
    tools = build_tools(settings)
    from agentkit.mcp.serve import build_server

    build_server(tools).run()
    return EXIT_OK
