"""The curated public surface: every name in ``__all__`` exists, and nothing private leaks into it."""

from __future__ import annotations

import importlib

import pytest

PUBLIC_MODULES = [
    "agentkit",
    "agentkit.gemma4",
    "agentkit.backends",
    "agentkit.events",
    "agentkit.testing",
    "agentkit.tools",
    "agentkit.errors",
    "agentkit.mcp",
    "agentkit.toolsets",
    "agentkit.output",
    "agentkit.tracing",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_names_exist_and_are_public(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported, f"{name} has an empty __all__"
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names missing {item}"
        assert not item.startswith("_") or item == "__version__"


def test_readme_test_command_is_what_ci_runs() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    ci = (root / ".ci" / "run").read_text()
    block = readme.split("## Test", 1)[1].split("```bash", 1)[1].split("```", 1)[0].strip()
    assert block and block in ci, f"README test command {block!r} is not in .ci/run"
