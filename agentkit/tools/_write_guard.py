"""Which workspace paths the file tools must not write: the host-executed config of ``_protected``, however reached.

:mod:`agentkit.tools._protected` names the paths (``.git``, ``.envrc``, ``.npmrc``, ``.cargo``, ...). A
model can reach the same files under other names, so a path to write is refused when

- any of its components (not only the first: a nested repository's ``sub/.git/config`` runs just the same)
  is a protected name after folding the spellings a host filesystem may treat as equal
  (:func:`~agentkit.tools._protected.fold`: ``.GIT``, ``.g\u200cit``, ``.git.``, ``GIT~1``);
- its real location (symlinks already resolved by the caller) lies in the target of a protected top-level
  entry that is a symlink, or in the git directory a ``.git`` *file* names (``gitdir: meta``);
- it lies in the directory git's ``core.hooksPath`` points at (hooks there run on the next commit), or is a
  file the repository's config includes (``include.path``, ``includeIf``): :mod:`agentkit.tools._gitpaths`.

Hard links need no rule: writes replace the file, so a link to ``.git/config`` is cut, never written through.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentkit.tools._gitpaths import gitdir_target, referenced_paths
from agentkit.tools._protected import fold, is_protected_name, protected_part

__all__ = ["protected_reason"]


def protected_reason(root: Path, rel: str) -> str | None:
    """What makes ``rel`` (a symlink-free path relative to ``root``) protected, or None when it may be written."""
    hit = protected_part(() if rel == "." else tuple(rel.split("/")))
    if hit is not None:
        return hit
    for target, label in _redirected(root):
        target_rel = os.path.relpath(target, root).replace(os.sep, "/")
        if target_rel == "." or target_rel.startswith("../"):
            continue  # the root itself, or outside: nothing the file tools can reach
        if rel == target_rel or rel.startswith(target_rel + "/"):
            return label
    return None


def _redirected(root: Path) -> list[tuple[str, str]]:
    """(real path, why) of every place outside the protected names that the host still runs or obeys."""
    found: list[tuple[str, str]] = []
    git_dir: str | None = None
    with os.scandir(root) as entries:
        candidates = [e for e in entries if is_protected_name(e.name)]
    for entry in candidates:
        is_git = fold(entry.name) == ".git"
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            found.append((target, entry.name))
            git_dir = target if is_git else git_dir
        elif is_git and entry.is_dir(follow_symlinks=False):
            git_dir = entry.path
        elif is_git and entry.is_file(follow_symlinks=False):
            named = gitdir_target(Path(entry.path))
            if named is not None:
                git_dir = os.path.realpath(named)
                found.append((git_dir, entry.name))
    if git_dir is not None:
        for named_path, key in referenced_paths(Path(git_dir) / "config", root):
            found.append((os.path.realpath(named_path), key))
    return found
