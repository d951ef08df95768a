"""agentkit.tools' public surface: the names the acceptance checks import, and nothing private."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import agentkit.tools as tools
from agentkit import Agent
from agentkit.testing import ScriptedBackend
from agentkit.tools import FunctionToolset, Tool
from agentkit.toolsets import Toolset


def test_public_names() -> None:
    assert set(tools.__all__) >= {"web_search", "fetch_url", "Workspace", "PythonSandbox", "ExecResult", "Tool", "tool"}
    for name in tools.__all__:
        assert hasattr(tools, name) and not name.startswith("_")
    assert isinstance(tools.web_search, Tool) and isinstance(tools.fetch_url, Tool)
    assert not tools.fetch_url.side_effects and not tools.web_search.side_effects


def test_names_importable_before_the_sandbox_became_a_package_still_are() -> None:
    from agentkit.tools.sandbox import SANDBOX_WORKDIR, ExecResult, PythonSandbox

    assert (PythonSandbox, ExecResult, SANDBOX_WORKDIR) == (tools.PythonSandbox, tools.ExecResult, "/workspace")


def _double(n: int) -> int:
    """Double a number."""
    return 2 * n


@pytest.mark.parametrize("where", ["tools", "toolsets"])
def test_built_in_tools_are_toolsets_in_either_place(tmp_path: Path, where: str) -> None:
    """One style: the built-ins (and any FunctionToolset) go in tools= or toolsets= as they are."""
    sources: list[object] = [tools.Workspace(tmp_path), FunctionToolset([_double], name="math")]
    for source in sources:
        assert isinstance(source, Toolset)
    if shutil.which("bwrap"):
        sources.append(tools.PythonSandbox(tmp_path))
    call = "<|tool_call>call:_double{n:21}<tool_call|>"
    agent = Agent(ScriptedBackend([call, "42<turn|>"], chunk_size=1 << 20), **{where: sources})  # type: ignore[arg-type]
    result = agent.run("go")
    expected = {"read_file", "write_file", "edit_file", "list_dir", "find_files", "grep", "_double"}
    assert expected | ({"run_python"} if len(sources) == 3 else set()) == set(agent.tools)
    assert [c.result for c in result.tool_calls] == [42]


def test_a_toolset_makes_its_tools_once(tmp_path: Path) -> None:
    ws = tools.Workspace(tmp_path)
    assert ws.list_tools() is ws.list_tools() and ws.version == 0
    assert [t.name for t in ws.tools()] == [t.name for t in ws.list_tools()]


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="PythonSandbox needs bubblewrap")
def test_the_readme_tools_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Tools and safety", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {"Agent": Agent, "backend": ScriptedBackend(["ok<turn|>"])}
    exec(compile(code, "README.md", "exec"), scope)
    agent = scope["agent"]
    assert isinstance(agent, Agent)
    assert {"web_search", "fetch_url", "read_file", "write_file", "run_python"} <= set(agent.tools)
