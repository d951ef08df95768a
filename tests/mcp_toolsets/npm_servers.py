"""The npm MCP servers the interop tests start: where they are installed, and a skip (or, in CI, a failure) that
says how to install them when they are not.

They are the versions pinned in ``tests/mcp_toolsets/npm/`` (package.json and its lock), installed with
``npm ci`` into ``AGENTKIT_NPM_DIR`` (default ``~/.cache/agentkit-npm``), as ``.ci/run`` does. Each is run
with ``node`` directly, as a user's MCP client configuration would run it (npx only adds a download).
``AGENTKIT_REQUIRE_NPM=1`` (CI, which promised to install them) turns a missing install into a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from agentkit.mcp import MCPServerStdio

HERE = Path(__file__).parent
PINNED = HERE / "npm"
TS_SERVER = HERE / "ts_server.cjs"
NPM_DIR = Path(os.environ.get("AGENTKIT_NPM_DIR") or Path.home() / ".cache" / "agentkit-npm")
SCOPE = NPM_DIR / "node_modules" / "@modelcontextprotocol"
_ENTRIES = {"inspector": "cli/build/cli.js", "sdk": "package.json"}
INSTALL = f"mkdir -p {NPM_DIR} && cp {PINNED}/package*.json {NPM_DIR}/ && (cd {NPM_DIR} && npm ci)"


def _missing(reason: str) -> None:
    if os.environ.get("AGENTKIT_REQUIRE_NPM") == "1":
        pytest.fail(f"AGENTKIT_REQUIRE_NPM=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def node() -> str:
    """The ``node`` executable, or skip."""
    found = shutil.which("node")
    if found is None:
        _missing("node is not installed (the npm MCP server tests need Node.js 20 or newer)")
    assert found is not None
    return found


def entry(package: str) -> str:
    """The entry script of ``@modelcontextprotocol/<package>`` in the install, or skip saying how to install."""
    node()
    script = SCOPE / package / _ENTRIES.get(package, "dist/index.js")
    if not script.is_file():
        _missing(f"@modelcontextprotocol/{package} is not installed in {NPM_DIR}; install the pinned set: {INSTALL}")
    return str(script)


def everything(*args: str, **options: object) -> MCPServerStdio:
    return MCPServerStdio(node(), [entry("server-everything"), *args], **options)  # type: ignore[arg-type]


def filesystem(root: Path, **options: object) -> MCPServerStdio:
    return MCPServerStdio(node(), [entry("server-filesystem"), str(root)], **options)  # type: ignore[arg-type]


def memory(graph: Path, **options: object) -> MCPServerStdio:
    env = {"MEMORY_FILE_PATH": str(graph)}
    return MCPServerStdio(node(), [entry("server-memory")], env=env, **options)  # type: ignore[arg-type]


def ts_server(marker: Path, **options: object) -> MCPServerStdio:
    """Our own server on the official TypeScript SDK (tests/mcp_toolsets/ts_server.cjs); it notes in ``marker``
    when it starts and whether a call was cancelled."""
    entry("sdk")
    env = {"AGENTKIT_NPM_DIR": str(NPM_DIR), "MCP_TEST_MARKER": str(marker)}
    return MCPServerStdio(node(), [str(TS_SERVER)], env=env, **options)  # type: ignore[arg-type]


def children(pid: int | None = None, *, running: str = "") -> list[int]:
    """The live processes whose parent is ``pid`` (this one by default) and whose command line contains
    ``running``: the MCP servers it started."""
    parent = os.getpid() if pid is None else pid
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] != "Z" and running in cmdline:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
