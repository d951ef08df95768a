"""agentkit.tools' public surface: the names the acceptance checks import, and nothing private."""

from __future__ import annotations

import agentkit.tools as tools
from agentkit.tools import Tool


def test_public_names() -> None:
    assert set(tools.__all__) >= {"web_search", "fetch_url", "Workspace", "PythonSandbox", "ExecResult", "Tool", "tool"}
    for name in tools.__all__:
        assert hasattr(tools, name) and not name.startswith("_")
    assert isinstance(tools.web_search, Tool) and isinstance(tools.fetch_url, Tool)
    assert not tools.fetch_url.side_effects and not tools.web_search.side_effects
