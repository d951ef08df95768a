"""What a sandbox run may not change in its workspace: host-executed configuration and the interpreter itself.

The workspace is shared with the user's own tools, and some of it is not data but instructions the host runs
later without asking (:mod:`agentkit.tools._protected`: ``.git``, ``.envrc``, ``.vscode``, ...). For one run,
:class:`RunGuard` works out, before it starts,

- the entries to bind read-only over the workspace: protected names at any depth (names folded as a host
  filesystem may see them, as the file tools do), what the repositories' config points at in the work tree
  (hooks, included files, a ``.git`` file's gitdir: :mod:`agentkit.tools._gitpaths`), and the interpreter's
  directories where they lie inside the workspace (a project's ``.venv``: agentkit's next start runs it);
- the absent top-level names that programs on the host read while the run goes on (``LIVE_NAMES``: git polled
  by editors, the editors' own config), which the sandbox covers with an empty read-only directory for the run
  so the code cannot create them (``.git/config`` with ``core.fsmonitor`` in a fresh workspace).

A mount cannot forbid creating a name deeper down, and a placeholder per protected name would litter the
user's directory during every run, so after the run the workspace is searched again: a
protected entry that was not there before (told apart by device and inode, not by path, so renaming a parent
away and making a new ``.git`` at the old path is caught) is first renamed to a name nothing runs, then
deleted, and reported. A protected name that is a symlink, or a git target that is missing or reached through
a symlink, refuses the run: the code could swap what the host follows.

Concurrent runs on one workspace share the placeholders (a count per path, in this process); the last run
using one removes the empty directory bwrap made as its mount point.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

from agentkit.errors import SandboxError
from agentkit.tools._gitpaths import gitdir_target, referenced_paths
from agentkit.tools._protected import LIVE_NAMES, fold, is_protected_name

from ._writes import find_named

__all__ = ["RunGuard"]

_PLACEHOLDERS: dict[Path, int] = {}  # placeholder path -> runs of this process holding it now
_PLACEHOLDER_LOCK = threading.Lock()


class RunGuard:
    """The read-only entries and placeholders of one run; :meth:`before` then :meth:`after` (both blocking)."""

    def __init__(self, root: Path, interpreter_dirs: Sequence[str], allow_protected_writes: bool) -> None:
        self.root = root
        self.interpreter_dirs = tuple(interpreter_dirs)
        self.allow = allow_protected_writes
        self.read_only: list[str] = []  # workspace-relative paths bound read-only
        self.placeholders: list[str] = []  # absent protected names covered for the run
        self._ids: set[tuple[int, int]] = set()
        self._pinned: list[tuple[str, tuple[int, int]]] = []  # git targets, checked by identity after the run

    def _protected(self, rel: str) -> bool:
        parent, _, name = rel.rpartition("/")
        return not self.allow and is_protected_name(name, parent.rpartition("/")[2])

    def before(self) -> None:
        """Find what must stay read-only and register the placeholders; raises SandboxError to refuse the run."""
        inside = {rel for d in self.interpreter_dirs if (rel := _inside(d, self.root))}
        found = find_named(self.root, lambda rel: rel in inside or self._protected(rel))
        for rel, st in found:
            if stat.S_ISLNK(st.st_mode):
                raise SandboxError(
                    f"{rel} in the workspace is a symbolic link, so the sandbox cannot keep it read-only (the program "
                    "could replace the link); programs on the host run what is there. Replace the link with the "
                    "real directory, or pass allow_protected_writes=True to let sandboxed code change it"
                )
        if not self.allow:
            pinned = self._git_references(found)
            found += pinned
            self._pinned = [(rel, (st.st_dev, st.st_ino)) for rel, st in pinned]
        with _PLACEHOLDER_LOCK:
            # Another run of this process may hold a placeholder right now: it is ours, not the user's.
            found = [(rel, st) for rel, st in found if self.root / rel not in _PLACEHOLDERS]
            self._ids = {(st.st_dev, st.st_ino) for _, st in found}
            self.read_only = [rel for rel, _ in found]
            if self.allow:
                return
            present = {fold(rel) for rel in self.read_only if "/" not in rel}
            self.placeholders = [name for name in LIVE_NAMES if fold(name) not in present]
            for name in self.placeholders:
                _PLACEHOLDERS[self.root / name] = _PLACEHOLDERS.get(self.root / name, 0) + 1

    def _git_references(self, found: list[tuple[str, os.stat_result]]) -> list[tuple[str, os.stat_result]]:
        """Work-tree paths the protected ``.git`` entries make git run or read."""
        targets: list[Path] = []
        for rel, st in found:
            if fold(rel.rsplit("/", 1)[-1]) != ".git":
                continue
            path = self.root / rel
            configs = [path / "config"] if stat.S_ISDIR(st.st_mode) else []
            if stat.S_ISREG(st.st_mode) and (gitdir := gitdir_target(path)) is not None:
                targets.append(gitdir)
                configs.append(gitdir / "config")
            for config in configs:
                targets += [target for target, _ in referenced_paths(config, path.parent)]
        covered = [rel for rel, _ in found]
        extra: list[tuple[str, os.stat_result]] = []
        for target in targets:
            if not target.is_relative_to(self.root) or target == self.root:
                continue  # outside the workspace: not mounted, so not writable inside
            rel = target.relative_to(self.root).as_posix()
            if any(rel == c or rel.startswith(c + "/") for c in covered):
                continue  # inside .git (submodules' gitdirs) or another entry already read-only
            why = ""
            if not os.path.lexists(target):
                why = "does not exist, so the program could create it"
            elif os.path.realpath(target) != str(target):
                why = "goes through a symbolic link, which the program could replace"
            if why:
                raise SandboxError(
                    f"the repository's git configuration points at {rel} in the workspace (hooks, an included "
                    f"config or the repository itself), and {rel} {why}; git on the host would then run what the "
                    "sandboxed program wrote. Create it as a real directory or file, or pass "
                    "allow_protected_writes=True"
                )
            extra.append((rel, os.lstat(target)))
            covered.append(rel)
        return extra

    def after(self) -> list[str]:
        """Release the placeholders and remove protected entries the run created; returns notices about them."""
        with _PLACEHOLDER_LOCK:
            for name in self.placeholders:
                path = self.root / name
                _PLACEHOLDERS[path] -= 1
                if not _PLACEHOLDERS[path]:  # the last run using it: remove the empty mount point bwrap made
                    del _PLACEHOLDERS[path]
                    with contextlib.suppress(OSError):
                        path.rmdir()
            held = set(_PLACEHOLDERS)  # placeholders of runs still going
        if self.allow:
            return []
        too_deep: list[str] = []
        created = [
            (rel, st)
            for rel, st in find_named(self.root, self._protected, too_deep)
            if (st.st_dev, st.st_ino) not in self._ids and rel not in self.placeholders and self.root / rel not in held
        ]
        for rel, identity in self._pinned:  # a hooks directory moved away and made anew at the same path
            with contextlib.suppress(OSError):
                st = os.lstat(self.root / rel)
                if (st.st_dev, st.st_ino) != identity:
                    created.append((rel, st))
        notices = [
            f"the workspace holds directories nested too deep for the host to search (paths over 4096 bytes, below "
            f"{rel[:100]}...); protected names (.git, ...) in there were not checked"
            for rel in too_deep[:3]
        ]
        for rel, st in created:
            _remove(self.root / rel, st)
            notices.append(
                f"the program created {rel} in the workspace; it was removed because programs on the user's "
                "machine run what is there (git, direnv, version and package managers, editors). Pass "
                "allow_protected_writes=True to allow it"
            )
        return notices


def _remove(path: Path, st: os.stat_result) -> None:
    """Out of the way under a name nothing runs (one rename, which a tree too deep to delete cannot stop), then
    deleted; left under the neutral name when the delete fails."""
    aside = path.with_name(f"{path.name}.removed-by-agentkit-{secrets.token_hex(4)}")
    try:
        os.rename(path, aside)
    except OSError:
        aside = path
    try:
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(aside)
        else:
            aside.unlink()
    except (OSError, RecursionError):
        pass


def _inside(path: str, root: Path) -> str:
    """``path`` relative to ``root`` when it lies strictly inside it (symlinks resolved), else ""."""
    real = Path(os.path.realpath(path))
    if real != root and real.is_relative_to(root):
        return real.relative_to(root).as_posix()
    return ""
