"""Paths outside ``.git`` that a repository's own configuration makes git run or read as configuration.

Keeping ``.git`` read-only is not enough when the repository points elsewhere in the work tree: a ``.git``
*file* (``gitdir: meta``) makes ``meta/`` the repository, ``core.hooksPath = scripts/hooks`` runs the scripts
there on commit, and ``[include] path = ../team.gitconfig`` reads more configuration (``core.fsmonitor``
included) from a file the sandboxed code could write. This module reads those references from files that are
themselves protected (so the code cannot change them) and returns the targets, for the sandbox
(:mod:`agentkit.tools.sandbox`) and the file tools (:mod:`agentkit.tools._write_guard`) to protect too.

The parser covers the configuration syntax people write by hand (sections with subsections, ``key = value``,
quotes, comments); it does not follow includes of includes (one level is read).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["gitdir_target", "referenced_paths"]

_SECTION = re.compile(r'^\s*\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]\s*(.*)$')
_ENTRY = re.compile(r"^\s*([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*))?$")
_MAX_BYTES = 1_000_000


def _value(raw: str) -> str:
    """A config value without comments and quotes (backslash escapes kept as git reads them)."""
    out, quoted, i = [], False, 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            out.append({"n": "\n", "t": "\t", "b": "\b"}.get(raw[i + 1], raw[i + 1]))
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c in "#;" and not quoted:
            break
        else:
            out.append(c)
        i += 1
    return "".join(out).strip()


def _read(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(_MAX_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


def gitdir_target(dot_git_file: Path) -> Path | None:
    """Where a ``.git`` file (``gitdir: PATH``) points, resolved against its directory."""
    first = _read(dot_git_file).splitlines()[:1]
    if not first or not first[0].startswith("gitdir:"):
        return None
    target = first[0][len("gitdir:") :].strip()
    return Path(os.path.normpath(dot_git_file.parent / target)) if target else None


def referenced_paths(config: Path, worktree: Path) -> list[tuple[Path, str]]:
    """Hook directories and included files named in one git config file (absolute, normalized), with the key."""
    found: list[tuple[Path, str]] = []
    section = ""
    for line in _read(config).splitlines():
        if m := _SECTION.match(line):
            section = m.group(1).lower()
            line = m.group(3)  # a key may follow the header on the same line
            if not line.strip():
                continue
        m = _ENTRY.match(line)
        if m is None or m.group(2) is None:
            continue
        key, value = m.group(1).lower(), _value(m.group(2))
        if not value or value.startswith("~"):
            continue
        if section == "core" and key == "hookspath":
            found.append((Path(os.path.normpath(worktree / value)), "core.hooksPath"))  # relative to the work tree
        elif section in ("include", "includeif") and key == "path":
            found.append((Path(os.path.normpath(config.parent / value)), f"{section}.path"))  # relative to config
    return found
