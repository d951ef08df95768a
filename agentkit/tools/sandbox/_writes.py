"""The write budget of a sandbox run: how many bytes and files it may add to the workspace and its tmpfs mounts.

Why a watcher and not a kernel limit: the workspace is a bind mount of a host directory, and the kernel has
no per-mount byte or inode limit short of filesystem quotas, which need root and a filesystem mounted with
them. ``RLIMIT_FSIZE`` caps one file, not the number of files or their sum. So the host measures instead:

- tmpfs mounts of the run (``/tmp``, ``/dev/shm``, a scratch ``/workspace``) are private to it, and
  ``fstatvfs`` on them (opened from the host through ``/proc/PID/root``) gives their exact bytes and inodes
  in one system call; their bytes are also hard-capped by the tmpfs ``size=``.
- for the workspace, ``statvfs`` of its filesystem is polled (one system call, however large the tree); only
  when the filesystem grew by more than the budget is the tree walked, counting what changed since the run
  started (inodes whose ``ctime`` is newer: created, written, renamed), to tell the run's writes from other
  writers on the same filesystem. That count is an upper bound (a file appended to counts whole).

A run that goes over is killed, like one that times out, and the result says which budget it hit. The limit
is enforced to within one polling interval (:data:`POLL_S`, 10 ms) plus the walk: a writer at page-cache speed
(1–2 GB/s here) gets some tens of MB and a few hundred files past it before it is stopped. What is measured for
the workspace is growth of its filesystem: deleting a file and writing another of the same size costs nothing,
which is what matters for a full disk.

:func:`find_named` is the cheap walk the sandbox uses before and after each run to find the workspace's
protected entries at any depth: it reads directories only (no ``stat`` per file).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["POLL_S", "UNMEASURABLE", "Usage", "WriteWatch", "changed_usage", "find_named", "fs_usage"]

POLL_S = 0.01


@dataclasses.dataclass(frozen=True)
class Usage:
    """Allocated bytes and inodes (files, directories, links)."""

    bytes: int = 0
    files: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.bytes + other.bytes, self.files + other.files)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.bytes - other.bytes, self.files - other.files)


# What changed_usage() reports for a tree it cannot measure: more than any budget.
UNMEASURABLE = Usage(2**62, 2**62)


def _scan(root: Path, visit: Callable[[str, os.DirEntry[str]], bool], too_deep: Callable[[str], None]) -> None:
    """Call ``visit(rel, entry)`` for every entry below ``root``, entering a directory when it returns True.

    Only directories are read (``getdents``; no ``stat`` here) and symlinks are never followed. A directory
    whose path is too long to open (over ``PATH_MAX``) goes to ``too_deep``; one that vanished is skipped.
    """
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(root / rel if rel else root) as it:
                entries = list(it)
        except OSError as exc:  # removed meanwhile, unreadable, or too deep to name
            if exc.errno == errno.ENAMETOOLONG:
                too_deep(rel)
            continue
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if visit(child, entry) and entry.is_dir(follow_symlinks=False):
                stack.append(child)


def find_named(
    root: Path, want: Callable[[str], bool], too_deep: list[str] | None = None
) -> list[tuple[str, os.stat_result]]:
    """Entries below ``root`` whose relative path ``want`` accepts (not entered), each with its ``lstat``.

    Only the wanted entries are ``stat``-ed, so a large tree costs one ``getdents`` per directory. Paths too
    long to open (over ``PATH_MAX``) are listed in ``too_deep``, for the caller to report rather than skip.
    """
    found: list[tuple[str, os.stat_result]] = []
    note = too_deep.append if too_deep is not None else (lambda rel: None)

    def visit(rel: str, entry: os.DirEntry[str]) -> bool:
        if not want(rel):
            return True
        try:
            found.append((rel, entry.stat(follow_symlinks=False)))
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                note(rel)
        return False

    _scan(root, visit, note)
    return found


class _Unmeasurable(Exception):
    """A path below the root is too long to open: what is there cannot be measured."""


def changed_usage(root: Path, since_ns: int, skip: Callable[[str], bool] = lambda rel: False) -> Usage:
    """Allocated bytes and number of inodes below ``root`` changed since ``since_ns`` (each inode once)."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def visit(rel: str, entry: os.DirEntry[str]) -> bool:
        nonlocal total
        if skip(rel):
            return False
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise _Unmeasurable(rel) from exc
            return False
        if st.st_ctime_ns >= since_ns and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
        return True

    def unmeasurable(rel: str) -> None:
        raise _Unmeasurable(rel)

    try:
        _scan(root, visit, unmeasurable)
    except _Unmeasurable:
        return UNMEASURABLE  # a tree deeper than PATH_MAX hides what is in it: count it as over budget
    return Usage(total, len(seen))


def fs_usage(path: str | Path | int) -> Usage | None:
    """Used bytes and inodes of the filesystem holding ``path`` or open descriptor (``None`` if it cannot be asked)."""
    try:
        st = os.fstatvfs(path) if isinstance(path, int) else os.statvfs(path)
    except OSError:
        return None
    return Usage((st.f_blocks - st.f_bfree) * st.f_frsize, st.f_files - st.f_ffree)


class WriteWatch:
    """Compares what a run has written so far with its budget; see the module docstring for how."""

    def __init__(self, max_bytes: int, max_files: int, workspace: Path | None) -> None:
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.workspace = workspace
        self.skip: Callable[[str], bool] = lambda rel: False  # read-only inside: the run cannot change them
        self._since_ns = time.time_ns() - 1_000_000_000  # a second early: coarse filesystem timestamps
        self._fs_base = fs_usage(workspace) if workspace is not None else None
        self._others = Usage()  # growth of the workspace's filesystem that the last walk found not to be the run's

    def _quick(self, tmpfs: Sequence[int]) -> tuple[Usage, Usage | None]:
        """(bytes and inodes in the run's tmpfs mounts, growth of the workspace's filesystem or None)."""
        used = Usage()
        for fd in tmpfs:
            now = fs_usage(fd)
            if now is not None:
                used += Usage(now.bytes, max(0, now.files - 1))  # the mount's root directory is not a write
        growth = None
        if self.workspace is not None and self._fs_base is not None:
            fs_now = fs_usage(self.workspace)
            if fs_now is not None:
                growth = fs_now - self._fs_base
        return used, growth

    def may_be_over(self, tmpfs: Sequence[int]) -> bool:
        """A few ``statvfs`` calls, cheap enough for the event loop: True when :meth:`over` must look closer."""
        used, growth = self._quick(tmpfs)
        return self._exceeds(used + (growth - self._others if growth is not None else Usage()))

    def over(self, tmpfs: Sequence[int]) -> Usage | None:
        """The run's writes so far when they exceed the budget, else ``None`` (may walk the workspace: blocking)."""
        used, growth = self._quick(tmpfs)
        if growth is not None and self.workspace is not None:
            if self._exceeds(used + growth - self._others):
                changed = changed_usage(self.workspace, self._since_ns, self.skip)
                self._others = growth - changed
                used += changed
            else:
                used += growth - self._others
        return used if self._exceeds(used) else None

    def _exceeds(self, used: Usage) -> bool:
        return used.bytes > self.max_bytes or used.files > self.max_files

    def describe(self, used: Usage) -> tuple[str, str]:
        """(limit name, sentence for the result) for a run stopped over budget."""
        mb = 1024 * 1024
        if used.bytes >= UNMEASURABLE.bytes:
            return "write_bytes", (
                "the run was stopped: it made directories nested so deep (paths over 4096 bytes) that the host "
                "cannot measure what was written there"
            )
        if used.bytes > self.max_bytes:
            return "write_bytes", (
                f"the run was stopped: it wrote about {used.bytes // mb} MB to the workspace and its temporary "
                f"directories, more than its write budget of {self.max_bytes // mb} MB"
            )
        return "write_files", (
            f"the run was stopped: it created about {used.files} files and directories, more than its write "
            f"budget of {self.max_files}"
        )
