"""MCP (Model Context Protocol) for agentkit: servers' tools for an agent, and agentkit's tools as a server.

``Agent(backend, toolsets=[MCPServerStdio("uvx", ["mcp-server-time"])])`` gives the agent every tool of the
server, declared natively to Gemma 4; :mod:`agentkit.mcp.serve` runs the other way round. Needs the official
``mcp`` SDK (a dependency of agentkit).
"""

from __future__ import annotations

from .client import MCPServer, MCPServerHTTP, MCPServerStdio, MCPTool
from .results import result_value

__all__ = ["MCPServer", "MCPServerHTTP", "MCPServerStdio", "MCPTool", "result_value"]
