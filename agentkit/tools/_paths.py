"""Resolving model-supplied paths inside a workspace root without ever leaving it.

A model (or text it read on the web) chooses the paths, so every path is treated as hostile:

1. ``..`` components and absolute paths are checked lexically against the root;
2. the path is resolved with ``os.path.realpath`` (following symlinks, also in intermediate directories)
   and refused when the real path is outside the root — a symlink planted in the workspace that points
   at ``/etc`` or ``~/.ssh`` is caught here;
3. the real path is then opened component by component with ``O_NOFOLLOW`` relative to a descriptor of
   the root. The real path has no symlinks, so finding one now means the tree changed between steps 2
   and 3 (a race), and the open fails instead of following it;
4. only regular files and directories are accepted: device files, fifos and sockets are refused *before*
   they are opened (opening a fifo blocks, opening some devices has effects), and re-checked on the
   open descriptor.

Callers get descriptors, not strings, so what they read or write is what was checked.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agentkit.errors import ToolError, UserError

__all__ = ["ResolvedPath", "WorkspaceRoot"]

# Roots under these would expose kernel or device interfaces through file tools.
_FORBIDDEN_ROOTS = ("/proc", "/sys", "/dev")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_MAX, _NAME_MAX = 4096, 255  # Linux's, in bytes
_SURROGATES = re.compile("[\ud800-\udbff\udc00-\udc7f]")  # not one byte of a file name (surrogateescape)


def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISFIFO(mode):
        return "a fifo (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a regular file"


@dataclass(frozen=True)
class ResolvedPath:
    """A path checked to lie inside the root: its real absolute path and its path relative to the root."""

    real: Path
    rel: str

    @property
    def parts(self) -> tuple[str, ...]:
        return () if self.rel == "." else tuple(self.rel.split("/"))


class WorkspaceRoot:
    """The confinement rules for one root directory; used by :class:`~agentkit.tools.Workspace`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        if not isinstance(root, str | os.PathLike):
            raise UserError(f"the workspace root must be a folder path, got {type(root).__name__}")
        real = Path(os.path.realpath(os.path.expanduser(os.fspath(root))))  # "~/project" as a shell would
        if not real.is_dir():
            raise UserError(f"workspace root {root} is not a directory; create it first")
        text = str(real)
        if text == "/" or any(text == f or text.startswith(f + "/") for f in _FORBIDDEN_ROOTS):
            raise UserError(f"workspace root {text} would expose the whole system; choose a project directory")
        self.path = real

    def resolve(self, path: str) -> ResolvedPath:
        """Check ``path`` (relative to the root, or absolute inside it); raise ``ToolError`` saying why not."""
        if not isinstance(path, str) or "\x00" in path:
            raise ToolError("the path contains a NUL byte; give a plain relative path such as 'src/main.py'")
        encoded = os.fsencode(path) if not _SURROGATES.search(path) else path.encode("utf-8", "surrogatepass")
        if len(encoded) > _PATH_MAX or any(len(part) > _NAME_MAX for part in encoded.split(b"/")):
            # Past these the kernel answers ENAMETOOLONG (an OSError, not a message for the model), and a path
            # this long can only be a tree built to break the tools that walk it.
            raise ToolError(
                f"the path is too long ({len(encoded):,} bytes; at most {_PATH_MAX} in all and {_NAME_MAX} a name)"
            )
        raw = path.strip() or "."
        candidate = Path(raw) if os.path.isabs(raw) else self.path / raw
        lexical = Path(os.path.normpath(candidate))
        if not _inside(lexical, self.path):
            raise ToolError(
                f"{path!r} is outside the workspace; use paths relative to the workspace root (no '..' above it)"
            )
        real = Path(os.path.realpath(lexical))
        if not _inside(real, self.path):
            raise ToolError(
                f"{path!r} leads outside the workspace through a symlink (it resolves to a path outside "
                "the workspace root); only files inside the workspace can be used"
            )
        rel = os.path.relpath(real, self.path)
        return ResolvedPath(real=real, rel="." if rel == "." else rel.replace(os.sep, "/"))

    @contextlib.contextmanager
    def open_dir(self, parts: tuple[str, ...], *, create: bool = False) -> Iterator[int]:
        """A descriptor of the directory ``parts`` below the root, walked without following symlinks."""
        fd = os.open(self.path, _DIR_FLAGS)
        try:
            for i, name in enumerate(parts):
                try:
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise ToolError(f"{'/'.join(parts[: i + 1])} does not exist") from None
                    os.mkdir(name, 0o755, dir_fd=fd)
                    nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise _changed_or(exc, "/".join(parts[: i + 1])) from exc
                os.close(fd)
                fd = nfd
            yield fd
        finally:
            os.close(fd)

    def lstat_in(self, dir_fd: int, name: str, display: str) -> os.stat_result | None:
        """``lstat`` a name in a directory; None if missing. Refuses anything but files and directories."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        check_kind(st.st_mode, display)
        return st

    def open_file(self, resolved: ResolvedPath) -> int:
        """Open an existing regular file for reading; the descriptor is checked again after opening."""
        if resolved.rel == ".":
            raise ToolError("the workspace root is a directory; give a file path")
        *dirs, name = resolved.parts
        with self.open_dir(tuple(dirs)) as dfd:
            st = self.lstat_in(dfd, name, resolved.rel)
            if st is None:
                raise ToolError(f"{resolved.rel} does not exist; list_dir or find_files shows what is there")
            if stat.S_ISDIR(st.st_mode):
                raise ToolError(f"{resolved.rel} is a directory; use list_dir to see its contents")
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dfd)
            except OSError as exc:
                raise _changed_or(exc, resolved.rel) from exc
        after = os.fstat(fd)
        if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (st.st_dev, st.st_ino):
            os.close(fd)
            raise ToolError(f"{resolved.rel} changed while it was being opened; try again")
        return fd


def check_kind(mode: int, display: str) -> None:
    """Refuse device files, fifos and sockets with a message the model can act on."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
        return
    raise ToolError(f"{display} is {_kind(mode)}; only regular files and directories can be used")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _changed_or(exc: OSError, display: str) -> ToolError:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return ToolError(f"{display} changed while it was being opened (a symlink appeared); try again")
    if exc.errno == errno.EACCES:
        return ToolError(f"{display}: permission denied")
    return ToolError(f"{display}: {exc.strerror or exc}")
