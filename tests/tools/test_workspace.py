"""Workspace file tools: what they do, and every way out of the root they must refuse."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from agentkit.errors import ToolError, UserError
from agentkit.tools import PythonSandbox, Workspace


@pytest.fixture()
def layout(tmp_path: Path) -> tuple[Workspace, Path, Path]:
    """A workspace next to a 'host' directory holding a secret the tools must never reach."""
    host = tmp_path / "host"
    host.mkdir()
    secret = host / "secret.txt"
    secret.write_text("TOP-SECRET\n")
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("def main():\n    return 'hi'\n")
    (root / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    return Workspace(root, max_read_bytes=64, max_write_bytes=1000), root, secret


def test_root_accepts_a_home_relative_path_and_refuses_non_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "project").mkdir()
    assert Workspace("~/project").root == (tmp_path / "project").resolve()
    assert (
        PythonSandbox(workspace="~/project", allow_unsafe_unconfined=True).workspace == (tmp_path / "project").resolve()
    )
    with pytest.raises(UserError, match="must be a folder path, got int"):
        Workspace(1)  # type: ignore[arg-type]


def test_tools_are_named_and_marked(layout: tuple[Workspace, Path, Path]) -> None:
    ws, _, _ = layout
    tools = {t.name: t for t in ws.tools()}
    assert list(tools) == ["read_file", "write_file", "edit_file", "list_dir", "find_files", "grep"]
    assert {n for n, t in tools.items() if t.side_effects} == {"write_file", "edit_file"}
    assert tools["edit_file"].parameters["required"] == ["path", "old_text", "new_text"]


def test_read_write_edit_roundtrip(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    assert ws.read_file("notes.txt") == "alpha\nbeta\ngamma\n"
    assert ws.write_file("out/deep/new.txt", "one\ntwo\none\n") == "created out/deep/new.txt (12 bytes)"
    assert (root / "out/deep/new.txt").read_text() == "one\ntwo\none\n"
    with pytest.raises(ToolError, match="occurs 2 times"):
        ws.edit_file("out/deep/new.txt", "one", "1")
    with pytest.raises(ToolError, match="not found"):
        ws.edit_file("out/deep/new.txt", "three", "3")
    assert ws.edit_file("out/deep/new.txt", "two", "2") == "replaced 1 occurrence in out/deep/new.txt"
    assert ws.edit_file("out/deep/new.txt", "one", "1", replace_all=True).startswith("replaced 2 occurrences")
    assert (root / "out/deep/new.txt").read_text() == "1\n2\n1\n"
    assert ws.read_file(str(root / "notes.txt")) == "alpha\nbeta\ngamma\n"  # absolute inside the root is fine


def test_write_is_atomic_and_keeps_mode(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    script = root / "run.sh"
    script.write_text("old")
    script.chmod(0o750)
    inode = script.stat().st_ino
    ws.write_file("run.sh", "new")
    assert script.read_text() == "new"
    assert stat.S_IMODE(script.stat().st_mode) == 0o750
    assert script.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert not [p for p in root.iterdir() if "agentkit-tmp" in p.name]


def test_size_limits(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    with pytest.raises(ToolError, match="limit of 1000 bytes"):
        ws.write_file("big.txt", "x" * 1001)
    assert not (root / "big.txt").exists()
    (root / "long.txt").write_text("".join(f"line {i:02d}\n" for i in range(1, 31)))  # 8 bytes a line
    first = ws.read_file("long.txt")
    assert first.startswith("line 01\n") and "line 08\n" in first and "line 09" not in first
    assert "call read_file with start_line=9 to continue" in first
    assert ws.read_file("long.txt", start_line=29) == "line 29\nline 30\n"
    assert "has only 30 lines" in ws.read_file("long.txt", start_line=99)


def test_binary_files_are_refused(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    (root / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (root / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ToolError, match="binary file"):
        ws.read_file("img.png")
    with pytest.raises(ToolError, match="not UTF-8"):
        ws.read_file("latin1.txt")
    with pytest.raises(ToolError, match="binary file"):
        ws.edit_file("img.png", "PNG", "GIF")
    assert "img.png" not in ws.grep("PNG")


@pytest.mark.parametrize(
    "path", ["../host/secret.txt", "src/../../host/secret.txt", "/etc/passwd", "/proc/self/environ"]
)
def test_paths_outside_are_refused(layout: tuple[Workspace, Path, Path], path: str) -> None:
    ws, _, _ = layout
    for attempt in (lambda: ws.read_file(path), lambda: ws.write_file(path, "x"), lambda: ws.list_dir(path)):
        with pytest.raises(ToolError, match="outside the workspace"):
            attempt()


def test_symlinks_pointing_out_are_refused(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, secret = layout
    (root / "leak.txt").symlink_to(secret)
    (root / "hostdir").symlink_to(secret.parent)  # a symlinked intermediate directory
    (root / "dangling").symlink_to(secret.parent / "created-by-model.txt")
    for path in ("leak.txt", "hostdir/secret.txt"):
        with pytest.raises(ToolError, match="through a symlink"):
            ws.read_file(path)
        with pytest.raises(ToolError, match="through a symlink"):
            ws.edit_file(path, "TOP", "NOT")
    with pytest.raises(ToolError, match="through a symlink"):
        ws.write_file("dangling", "pwned")
    with pytest.raises(ToolError, match="through a symlink"):
        ws.write_file("hostdir/new.txt", "pwned")
    with pytest.raises(ToolError, match="through a symlink"):
        ws.list_dir("hostdir")
    assert secret.read_text() == "TOP-SECRET\n"
    assert sorted(p.name for p in secret.parent.iterdir()) == ["secret.txt"]
    # Searching never follows links, so the secret never shows up in results either.
    assert "TOP-SECRET" not in ws.grep("TOP")
    assert "secret" not in ws.find_files("*.txt")


def test_symlinks_inside_are_followed(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    (root / "alias.txt").symlink_to(root / "notes.txt")
    assert ws.read_file("alias.txt").startswith("alpha")
    ws.write_file("alias.txt", "changed\n")  # writes the real file, the link stays a link
    assert (root / "notes.txt").read_text() == "changed\n"
    assert (root / "alias.txt").is_symlink()


def test_special_files_are_refused(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    os.mkfifo(root / "pipe")
    with pytest.raises(ToolError, match="fifo"):
        ws.read_file("pipe")  # would block forever if it were opened for reading
    with pytest.raises(ToolError, match="fifo"):
        ws.write_file("pipe", "x")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "sock"))
        with pytest.raises(ToolError, match="socket"):
            ws.read_file("sock")
    finally:
        sock.close()
    if os.geteuid() == 0:  # only root can create device nodes
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        with pytest.raises(ToolError, match="device file"):
            ws.read_file("null")
    assert "(special file, not usable)" in ws.list_dir()


def test_system_directories_cannot_be_roots(tmp_path: Path) -> None:
    for root in ("/", "/proc", "/proc/self", "/sys", "/dev"):
        with pytest.raises(UserError):
            Workspace(root)
    with pytest.raises(UserError, match="not a directory"):
        Workspace(tmp_path / "missing")


def test_list_find_grep(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    (root / "src" / "util.py").write_text("import os\nHI = 'hi'\n")
    (root / ".git").mkdir()
    (root / ".git" / "config.py").write_text("hi\n")
    assert ws.list_dir() == ".git/\nnotes.txt  (17 bytes)\nsrc/"
    assert ws.find_files("*.py") == "src/app.py\nsrc/util.py"
    assert ws.find_files("src/**/*.py") == "src/app.py\nsrc/util.py"
    assert ws.find_files("app.py", path="src") == "src/app.py"
    assert ws.find_files("*.rs").startswith("no files match")
    assert ws.grep("hi") == "src/app.py:2:     return 'hi'\nsrc/util.py:2: HI = 'hi'"
    assert ws.grep("^hi", ignore_case=True) == "src/util.py:2: HI = 'hi'"
    assert ws.grep("alpha", glob="*.py").startswith("no lines match")
    assert ws.grep("gamma", path="notes.txt") == "notes.txt:3: gamma"
    with pytest.raises(ToolError, match="invalid regular expression"):
        ws.grep("(unclosed")


def test_results_are_capped(tmp_path: Path) -> None:
    ws = Workspace(tmp_path, max_results=5)
    for i in range(8):
        (tmp_path / f"f{i}.txt").write_text("match\n" * 3)
    assert ws.list_dir().endswith("[... 3 more entries not shown]")
    assert ws.find_files("*.txt").endswith("narrow the pattern]")
    out = ws.grep("match").splitlines()
    assert len(out) == 6 and out[-1].startswith("[... more than 5 matching lines")


async def test_tools_run_through_the_runtime(layout: tuple[Workspace, Path, Path]) -> None:
    ws, _, _ = layout
    tools = {t.name: t for t in ws.tools()}
    assert await tools["write_file"].acall({"path": "a.txt", "content": "hello"}) == "created a.txt (5 bytes)"
    assert await tools["read_file"].acall({"path": "a.txt"}) == "hello"
    with pytest.raises(ToolError, match="outside the workspace"):
        await tools["read_file"].acall({"path": "../host/secret.txt"})


def test_protected_paths_can_be_written_when_the_user_opts_in(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    ws = Workspace(tmp_path, allow_protected_writes=True)
    assert ws.write_file(".git/info/exclude", "*.log\n").startswith("created")
    assert (tmp_path / ".git" / "info" / "exclude").read_text() == "*.log\n"
    assert Workspace(tmp_path).read_file(".git/info/exclude") == "*.log\n"  # reading was never refused


def test_grep_speaks_python_regex_syntax_through_re2(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import os\nVALUE = 42\ndef run():\n    return VALUE\n")
    ws = Workspace(tmp_path)
    assert ws.grep(r"^def \w+\(\)") == "a.py:3: def run():"
    assert ws.grep(r"42\Z") == "a.py:2: VALUE = 42"  # Python's \Z, spelled \z in RE2
    assert ws.grep("value", ignore_case=True) == "a.py:2: VALUE = 42\na.py:4:     return VALUE"
    assert ws.grep(r"(?P<name>os)$") == "a.py:1: import os"


def test_grep_reports_a_long_line_once_with_its_own_number(tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("first\n" + "needle " * 40_000 + "\nlast needle\n")
    out = Workspace(tmp_path).grep("needle").splitlines()
    assert [line.split(": ", 1)[0] for line in out] == ["long.txt:2", "long.txt:3"]


def test_find_files_globs_keep_their_meaning(tmp_path: Path) -> None:
    for rel in ("src/a.py", "src/pkg/b.py", "src/pkg/c.txt", "docs/x^.md", "docs/ab.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    ws = Workspace(tmp_path)
    assert ws.find_files("src/**/*.py") == "src/a.py\nsrc/pkg/b.py"
    assert ws.find_files("[!b]*.py") == "src/a.py"
    assert ws.find_files("x[^].md") == "docs/x^.md"  # '^' in a glob class is a literal, not negation
    assert ws.find_files("?b.md") == "docs/ab.md"
    with pytest.raises(ToolError, match="invalid glob pattern"):
        ws.find_files("[z-a]")


def test_grep_ends_itself_at_its_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agentkit.tools.workspace as workspace_module

    (tmp_path / "a.txt").write_text("needle\n" * 10)
    monkeypatch.setattr(workspace_module, "_GREP_DEADLINE_S", -1.0)  # already past: the first line stops it
    assert Workspace(tmp_path).grep("needle") == "[... stopped after -1 s; simplify the pattern or narrow the path]"


def test_model_patterns_are_not_kept_in_re2s_cache(tmp_path: Path) -> None:
    import re2

    (tmp_path / "a.txt").write_text("x\n")
    ws = Workspace(tmp_path)
    for i in range(20):
        ws.grep(f"x{{{i}}}", glob=f"*{i}*")
        ws.find_files(f"[a-{chr(98 + i)}]*")
    assert re2._Regexp._make.cache_info().currsize == 0  # up to 8 MB of automaton each, if they were kept


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "package.json",
        "Makefile",
        "Cargo.toml",
        "build.rs",
        "conftest.py",
        ".env",
        ".nvmrc",
        ".python-version",
        "misc.toml",
        "docs/mise.md",
        "config/settings.toml",
        "venv-notes.txt",
    ],
)
def test_project_files_stay_writable(tmp_path: Path, path: str) -> None:
    """The line: the project's own definition is the model's to change, and the user's to review and run."""
    assert Workspace(tmp_path).write_file(path, "ok").startswith("created")
