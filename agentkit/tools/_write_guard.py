"""Which workspace paths the file tools must not write: the host-executed config of ``_protected``, however reached.

:func:`~agentkit.tools._protected.is_protected` names the paths (``.git``, ``.envrc``, ``.vscode``, ...). A
model can reach the same files under other names, so a path to write is refused when

- any of its components (not only the first: a nested repository's ``sub/.git/config`` runs just the same)
  is a protected name after folding the spellings a host filesystem may treat as equal: letter case
  (``.GIT`` on macOS), Unicode compatibility forms, the code points HFS+ ignores (``.g\u200cit``), trailing dots
  and spaces (Windows) and the 8.3 short name ``GIT~1`` — the same spellings git itself refuses in trees;
- its real location (symlinks already resolved by the caller) lies in the target of a protected top-level
  entry that is a symlink, or in the git directory a ``.git`` *file* names (``gitdir: meta``);
- it lies in the directory git's ``core.hooksPath`` points at (hooks there run on the next commit), or is a
  file the repository's config includes (``include.path``, ``includeIf``): :mod:`agentkit.tools._gitpaths`.

Hard links need no rule: writes replace the file, so a link to ``.git/config`` is cut, never written through.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from agentkit.tools._gitpaths import gitdir_target, referenced_paths
from agentkit.tools._protected import is_protected

__all__ = ["fold", "protected_reason"]

# Code points HFS+ ignores in names (git's is_hfs_dotgit list): ".g\u200cit" opens .git there.
_IGNORED = frozenset(
    [chr(c) for c in range(0x200C, 0x2010)]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x206A, 0x2070)]
    + ["\ufeff"]
)


def fold(name: str) -> str:
    """A name as a case-insensitive, normalizing, forgiving host filesystem may see it."""
    text = "".join(c for c in unicodedata.normalize("NFKC", name) if c not in _IGNORED)
    text = text.casefold().rstrip(" .")
    return ".git" if text == "git~1" else text


def protected_reason(root: Path, rel: str) -> str | None:
    """What makes ``rel`` (a symlink-free path relative to ``root``) protected, or None when it may be written."""
    parts = () if rel == "." else tuple(rel.split("/"))
    hit = next((part for part in parts if is_protected(fold(part))), None)
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
        candidates = [e for e in entries if is_protected(fold(e.name))]
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
