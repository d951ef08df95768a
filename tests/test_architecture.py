"""The package's wiring, read statically from the source: no import cycle, no private module used across packages.

Both rules keep agentkit readable from the bottom up (README, "Architecture"): a module can be understood
from the modules it imports, and a package's ``_private`` modules can change without breaking another
package. The graph is built with :mod:`ast`, so a test run imports nothing it checks.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "agentkit"

# Private modules or names used across packages on purpose, each with the reason. Keep this empty unless a
# reason is stronger than "it was convenient".
ALLOWED_PRIVATE: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    if not _is_package(importer):
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements run when the module is imported: not function bodies, not ``if TYPE_CHECKING:`` blocks."""
    for stmt in body:
        if isinstance(stmt, ast.If):
            if not _is_type_checking(stmt.test):
                yield from _module_level(stmt.body)
            yield from _module_level(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            for block in (stmt.body, *(h.body for h in stmt.handlers), stmt.orelse, stmt.finalbody):
                yield from _module_level(block)
        elif isinstance(stmt, (ast.With, ast.ClassDef)):
            yield from _module_level(stmt.body)
        else:
            yield stmt


def _targets(importer: str, node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, str | None]]:
    """(module, imported name or None) for each agentkit module an import statement runs."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in MODULES:
                yield alias.name, None
        return
    module = _resolve(importer, node)
    if module not in MODULES:
        return
    for alias in node.names:
        sub = f"{module}.{alias.name}"
        yield (sub, None) if sub in MODULES else (module, alias.name)


def _imports(name: str, *, module_level: bool) -> Iterator[tuple[str, str | None]]:
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    nodes = _module_level(tree.body) if module_level else ast.walk(tree)
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield from _targets(name, node)


def import_graph() -> dict[str, set[str]]:
    """Module -> the agentkit modules its module-level imports run (``TYPE_CHECKING`` imports excluded)."""
    return {name: {target for target, _ in _imports(name, module_level=True)} - {name} for name in MODULES}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def _owner(module: str) -> str | None:
    """The package a private module or name belongs to: ``agentkit.backends`` for ``agentkit.backends._http``."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def private_imports_across_packages() -> list[str]:
    """Imports (anywhere in a module, lazy ones too) of a private module or name from outside its package."""
    found = []
    for name in MODULES:
        package = name if _is_package(name) else name.rpartition(".")[0]
        for target, imported in _imports(name, module_level=False):
            full = target if imported is None else f"{target}.{imported}"
            owner = _owner(target)
            if owner is None and imported is not None and imported.startswith("_") and not imported.startswith("__"):
                # A private name belongs to the package of the module defining it.
                owner = target if _is_package(target) else target.rpartition(".")[0]
            if owner is None:
                continue
            if package == owner or package.startswith(owner + "."):
                continue
            if (name, full) not in ALLOWED_PRIVATE:
                found.append(f"{name} imports {full}")
    return sorted(set(found))


def test_the_graph_sees_the_imports_it_must() -> None:
    # The checks below pass trivially on a graph with no edges: make sure known imports are in it.
    graph = import_graph()
    assert "agentkit.events" in graph["agentkit.agent.loop"]
    assert "agentkit.backends._http" in graph["agentkit.backends.ollama._backend"]
    assert "agentkit.messages" not in import_graph().get("agentkit.gemma4.render", set())


def test_find_cycles_finds_a_cycle() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    assert find_cycles(import_graph()) == []


def test_no_private_module_is_imported_across_packages() -> None:
    assert private_imports_across_packages() == []


_ABOVE_BACKENDS = ("agent", "assemble", "cli", "mcp", "options", "sessions", "tools", "toolsets", "tracing", "tui")


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        # The protocol layer is pure: it imports nothing of agentkit outside itself.
        ("agentkit.gemma4", ("agentkit.gemma4",)),
        # The typed conversation sits on the protocol alone.
        ("agentkit.messages", ("agentkit.messages", "agentkit.media", "agentkit.errors", "agentkit.gemma4")),
        ("agentkit.media", ("agentkit.media", "agentkit.errors")),
        # Engines turn a request into events; what the tools are and how they run is the loop's business.
        (
            "agentkit.backends",
            tuple(m for m in MODULES if not any(m.startswith(f"agentkit.{p}") for p in _ABOVE_BACKENDS)),
        ),
    ],
)
def test_layer_boundaries(package: str, allowed: tuple[str, ...]) -> None:
    """Every import of the layer, lazy ones too, stays within what the layer may know (README, "Architecture")."""
    offenders = [
        f"{name} imports {target}"
        for name in MODULES
        if name == package or name.startswith(package + ".")
        for target, _ in _imports(name, module_level=False)
        if not any(target == a or target.startswith(a + ".") for a in allowed)
    ]
    assert offenders == []


# The layers of README's diagram, top to bottom: a module may import its own layer and those below it, never one
# above. A new top-level module must be placed here (and in the diagram) before this test passes.
LAYERS: dict[str, int] = {
    "cli": 7,
    "tui": 7,
    "batch": 6,  # batches of agent runs (run_batch, agentkit batch): a library the command line drives
    "assemble": 6,
    "testing": 6,
    "agent": 5,
    "options": 5,
    "output": 5,
    "tracing": 5,
    "_sync": 5,
    "tools": 4,
    "toolsets": 4,
    "mcp": 4,
    "events": 4,
    "sessions": 4,
    "_session": 4,
    "display": 4,
    "_jsonschema": 4,  # JSON Schema validators that fetch no reference, for mcp/ and output.py
    "backends": 3,
    "messages": 2,
    "media": 2,  # the media parts and their reader, beside the conversation that carries them
    "gemma4": 1,
    "errors": 0,
}


def _layer(module: str) -> int:
    top = module.split(".")[1]
    assert top in LAYERS, f"{module}: place agentkit.{top} in LAYERS (and README's diagram)"
    return LAYERS[top]


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = []
    for name in MODULES:
        if name == "agentkit":
            continue  # the public surface: it names everything, lazily
        for target, imported in _imports(name, module_level=False):
            if target == "agentkit":
                # The public names are the CLI's and TUI's (and tests') way in; below them only the version.
                if imported != "__version__" and _layer(name) < LAYERS["testing"]:
                    upward.append(f"{name} imports agentkit.{imported}")
            elif _layer(target) > _layer(name):
                upward.append(f"{name} imports {target}")
    assert sorted(set(upward)) == []


def test_the_private_rule_sees_what_it_must() -> None:
    # A private module is its package's: visible to the package and its subpackages, to nobody else.
    assert _owner("agentkit.backends._http") == "agentkit.backends"
    assert _owner("agentkit.tools.sandbox._cgroup") == "agentkit.tools.sandbox"
    assert _owner("agentkit.backends.base") is None
    used = {target for target, _ in _imports("agentkit.backends.ollama._backend", module_level=False)}
    assert "agentkit.backends._http" in used  # seen, and allowed: ollama/ is inside backends/


def test_readme_names_modules_that_exist() -> None:
    """The architecture section's reading list and diagram name modules and packages that are there."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(agentkit(?:[./][A-Za-z_0-9]+)+)(?:\.py)?/?`", section))
    assert len(named) >= 10
    missing = [n for n in sorted(named) if n.replace("/", ".").removesuffix(".py") not in MODULES]
    assert missing == []


def test_every_exception_is_raised_somewhere_or_is_a_base() -> None:
    """An exception nobody raises (``ParseError`` was one) is API that promises a failure mode that never comes."""
    import agentkit.errors as errors

    used: set[str] = set()
    for name, path in MODULES.items():
        if name != "agentkit.errors":
            tree = ast.parse(path.read_text(encoding="utf-8"))
            used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            used |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    unused = [name for name in errors.__all__ if name not in used and not getattr(errors, name).__subclasses__()]
    assert unused == []
