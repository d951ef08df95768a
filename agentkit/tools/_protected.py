"""Workspace paths that programs on the host execute or obey: the sandbox and the file tools leave them alone.

A workspace is shared with the user's own tools. Some files in it are not data but instructions that the host
runs later without asking: ``.git/config`` (``core.fsmonitor``, ``core.hooksPath``, aliases, filters) and
``.git/hooks`` run on the user's next ``git status``/``commit``; direnv runs ``.envrc`` on ``cd``; editors run
``.vscode/tasks.json`` or ``.idea`` run configurations. Model-written content there would be host code execution,
so by default the sandbox mounts these read-only and the file tools refuse to write them (the user can opt in).

The list is one place, used by both the sandbox (``PythonSandbox``) and the file tools (``Workspace``).
"""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = ["PROTECTED_NAMES", "is_protected"]

# Top-level names in a workspace (a directory protects everything below it).
PROTECTED_NAMES: tuple[str, ...] = (
    ".git",  # config (fsmonitor, hooksPath, aliases, filters), hooks/, info/attributes
    ".gitmodules",  # submodule URLs and update commands (``update = !cmd``)
    ".hg",  # Mercurial: .hg/hgrc [hooks] run on hg commands
    ".githooks",  # a common core.hooksPath target
    ".husky",  # git hooks installed by husky
    ".pre-commit-config.yaml",  # hooks pre-commit runs on commit
    ".envrc",  # direnv: runs on cd
    ".vscode",  # tasks.json, launch.json, settings.json (interpreter and tool paths)
    ".idea",  # JetBrains run configurations and external tools
    ".devcontainer",  # container build and postCreate commands
)


def is_protected(rel: str | PurePosixPath) -> bool:
    """True when a path relative to the workspace root is, or lies under, a protected name.

    Matched case-insensitively, since some host filesystems (and editors) treat ``.GIT`` as ``.git``.
    """
    parts = PurePosixPath(rel).parts
    if not parts:
        return False
    first = parts[0].lower()
    return any(first == name.lower() for name in PROTECTED_NAMES)
