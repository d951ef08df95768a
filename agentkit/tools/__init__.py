"""Tools for agents: the ``@tool`` runtime and the built-in tools, confined by default.

- :func:`web_search` — web search through ddgs (``make_web_search`` for region, safe search, time range);
- :func:`fetch_url` — fetch a page as readable text; local and private addresses refused (``make_fetch_url``);
- :class:`Workspace` — file tools (read, write, edit, list, find, grep) confined to one directory;
- :class:`PythonSandbox` — run Python under bubblewrap, no network, the workspace as the only writable place.

One style for all of them: each is an object to put in ``Agent(tools=[...])`` as it is — ``web_search`` and
``fetch_url`` are tools (``make_*`` makes them with other settings), ``Workspace`` and ``PythonSandbox`` are
:class:`FunctionToolset` s (a fixed set of tools under one name) that also go in ``toolsets=[...]``.
"""

from __future__ import annotations

from .fetch import fetch_url, make_fetch_url
from .runtime import CallContext, FunctionToolset, Tool, tool
from .sandbox import ExecResult, PythonSandbox
from .search import make_web_search, web_search
from .workspace import Workspace

__all__ = [
    "CallContext",
    "ExecResult",
    "FunctionToolset",
    "PythonSandbox",
    "Tool",
    "Workspace",
    "fetch_url",
    "make_fetch_url",
    "make_web_search",
    "tool",
    "web_search",
]
