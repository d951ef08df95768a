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
    "agentkit.options",
    "agentkit.assemble",
    "agentkit.display",
    "agentkit.batch",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_names_exist_and_are_public(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported, f"{name} has an empty __all__"
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names missing {item}"
        assert not item.startswith("_") or item == "__version__"


def _bash_commands(readme: str, heading: str) -> list[str]:
    """The commands of every ```bash block in one README section, in order (comments dropped)."""
    section = readme.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = [part.split("```", 1)[0] for part in section.split("```bash\n")[1:]]
    return [line.split("  #", 1)[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_install_and_test_commands_are_what_ci_runs_in_a_fresh_venv() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    ci = (root / ".ci" / "run").read_text()
    install, test = _bash_commands(readme, "Install"), _bash_commands(readme, "Test")
    assert install and test == ["python3 -m pytest -q"]
    ci_lines = [line.strip() for line in ci.splitlines()]
    # Each README command is a whole line of .ci/run, in the README's order, after the venv is activated.
    positions = []
    for command in [*install, *test]:
        assert command in ci_lines, f"README command {command!r} is not a line of .ci/run"
        positions.append(ci_lines.index(command))
    assert positions == sorted(positions), "the README's commands run in another order in .ci/run"
    venv = next(i for i, line in enumerate(ci_lines) if line.startswith(". ") and "/bin/activate" in line)
    assert "mktemp -d /tmp/" in ci and "python3 -m venv" in ci and venv < positions[0]


def test_every_install_hint_installs_from_the_checkout_not_pypi() -> None:
    """The package called agentkit on PyPI is another project (README, Install): "pip install 'agentkit[otel]'",
    which the tracing section, the OpenTelemetry and Ray errors and a --help group said, installs that one."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    texts = [root / "README.md", *(root / "docs").glob("*.md"), *(root / "agentkit").rglob("*.py")]
    wrong = re.compile(r"pip install (-U )?['\"]?agentkit\b")
    found = [f"{path.relative_to(root)}: {m.group()}" for path in texts for m in wrong.finditer(path.read_text())]
    assert found == []


def test_the_backends_import_without_the_transformers_extra() -> None:
    """In a '.[dev]' venv (no torch) every public name resolves, and the in-process backend says what to install."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['torch'] = sys.modules['transformers'] = None  # as if the extra were not installed\n"
        "import agentkit.backends as b\n"
        "[getattr(b, n) for n in b.__all__]\n"
        "try:\n"
        "    b.TransformersBackend('x')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "pip install -e '.[transformers]'" in proc.stdout


def test_the_command_line_and_the_assistant_use_only_public_names() -> None:
    # They are clients of the library like any other: a private module or name imported there would be API
    # the library cannot change, and a sign that a user could not build the same thing.
    import ast
    from pathlib import Path

    root = Path(__file__).parents[1] / "agentkit"
    private = []
    for path in [*root.glob("cli/**/*.py"), *root.glob("tui/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module != "__future__":
                parts = [*node.module.split("."), *(alias.name for alias in node.names)]
                if node.module.startswith("agentkit") and any(p.startswith("_") for p in parts if p != "__version__"):
                    private.append(f"{path.relative_to(root)}: from {node.module} import ...")
    assert private == []
