"""The write budget of a sandbox run: how many bytes and files it may add to the workspace and its tmpfs mounts.

Why a watcher and not a kernel limit: the workspace is a bind mount of a host directory, and the kernel has
no per-mount byte or inode limit short of filesystem quotas, which need root and a filesystem mounted with
them. ``RLIMIT_FSIZE`` caps one file, not the number of files or their sum. So the host measures instead:

- tmpfs mounts of the run (``/tmp``, ``/dev/shm``, a scratch ``/workspace``) are private to it, and
  ``statvfs`` on them (reached from the host through ``/proc/PID/root``) gives their exact bytes and inodes
  in one system call; their bytes are also hard-capped by the tmpfs ``size=``.
- the workspace is walked once before the run (allocated bytes and inodes, each inode once); during the run
  ``statvfs`` of its filesystem is polled, and only when the filesystem grew by more than the budget is the
  tree walked again to tell the run's growth from other writers on the same filesystem.

A run that goes over is killed, like one that times out, and the result says which budget it hit. The limit
is enforced to within one polling interval (:data:`POLL_S`): a writer at disk speed (about 300 MB/s here)
gets a few tens of MB and a few thousand files past it before it is stopped. What is measured is growth:
deleting a file and writing another of the same size costs nothing, which is what matters for a full disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["POLL_S", "Usage", "WriteWatch", "tree_usage"]

POLL_S = 0.05


@dataclasses.dataclass(frozen=True)
class Usage:
    """Allocated bytes and inodes (files, directories, links)."""

    bytes: int = 0
    files: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.bytes + other.bytes, self.files + other.files)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.bytes - other.bytes, self.files - other.files)


def tree_usage(
    root: Path, stop: Callable[[str], bool] = lambda rel: False, flag: Callable[[str], bool] = lambda rel: False
) -> tuple[Usage, list[str], list[str]]:
    """Usage below ``root`` (each inode once); the relative paths ``stop`` matched (neither counted nor entered)
    and those ``flag`` matched (counted and entered)."""
    seen: set[tuple[int, int]] = set()
    total_bytes = 0
    stopped: list[str] = []
    flagged: list[str] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(root / rel if rel else root))
        except OSError:  # removed meanwhile, or unreadable: counts as empty
            continue
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if stop(child):
                stopped.append(child)
                continue
            if flag(child):
                flagged.append(child)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total_bytes += st.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                stack.append(child)
    return Usage(total_bytes, len(seen)), stopped, flagged


def fs_usage(path: str | Path | int) -> Usage | None:
    """Used bytes and inodes of the filesystem holding ``path`` or open descriptor (``None`` if it cannot be asked)."""
    try:
        st = os.fstatvfs(path) if isinstance(path, int) else os.statvfs(path)
    except OSError:
        return None
    return Usage((st.f_blocks - st.f_bfree) * st.f_frsize, st.f_files - st.f_ffree)


class WriteWatch:
    """Compares what a run has written so far with its budget; see the module docstring for how."""

    def __init__(self, max_bytes: int, max_files: int, workspace: Path | None, baseline: Usage | None) -> None:
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.workspace = workspace
        self.baseline = baseline
        self.skip: Callable[[str], bool] = lambda rel: False
        self._fs_base = fs_usage(workspace) if workspace is not None else None
        self._others = Usage()  # growth of the workspace's filesystem that the last walk found not to be the run's

    def over(self, tmpfs: Sequence[int]) -> Usage | None:
        """The run's writes so far when they exceed the budget, else ``None``."""
        used = Usage()
        for fd in tmpfs:
            now = fs_usage(fd)
            if now is not None:
                used += Usage(now.bytes, max(0, now.files - 1))  # the mount's root directory is not a write
        if self.workspace is not None and self._fs_base is not None and self.baseline is not None:
            fs_now = fs_usage(self.workspace)
            if fs_now is not None:
                growth = fs_now - self._fs_base
                if self._exceeds(used + growth - self._others):
                    precise = tree_usage(self.workspace, self.skip)[0] - self.baseline
                    self._others = growth - precise
                    used += precise
                else:
                    used += growth - self._others
        return used if self._exceeds(used) else None

    def _exceeds(self, used: Usage) -> bool:
        return used.bytes > self.max_bytes or used.files > self.max_files

    def describe(self, used: Usage) -> tuple[str, str]:
        """(limit name, sentence for the result) for a run stopped over budget."""
        mb = 1024 * 1024
        if used.bytes > self.max_bytes:
            return "write_bytes", (
                f"the run was stopped: it wrote about {used.bytes // mb} MB to the workspace and its temporary "
                f"directories, more than its write budget of {self.max_bytes // mb} MB"
            )
        return "write_files", (
            f"the run was stopped: it created about {used.files} files and directories, more than its write "
            f"budget of {self.max_files}"
        )


def remove_quietly(path: Path) -> None:
    """Remove an empty placeholder left by the sandbox (a directory bwrap made as a mount point)."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
