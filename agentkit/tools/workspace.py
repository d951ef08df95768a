"""File tools confined to one directory: read, write, edit, list, find and grep for a model.

Every path goes through :class:`~agentkit.tools._paths.WorkspaceRoot` (no ``..`` above the root, no
absolute paths outside it, no symlinks leading out, no device files, fifos or sockets) and every file is
then used through a descriptor opened without following symlinks, so the check and the use cannot be
pulled apart by a symlink swapped in between. Writes are atomic (a temporary file in the same directory,
fsync, rename), reads and writes have size limits, and binary files are refused as text instead of being
decoded into noise. Results are plain text because that is what the model reads best.

Files the host runs or obeys (``.git``, ``.envrc``, ...) are refused to the writing tools (``_write_guard``), and
``grep``/``find_files`` patterns run on RE2 (``_match``), so no pattern can freeze the process.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from agentkit.errors import ToolError
from agentkit.tools._match import Matcher, compile_glob, compile_regex
from agentkit.tools._paths import ResolvedPath, WorkspaceRoot
from agentkit.tools._write_guard import protected_reason
from agentkit.tools.runtime import FunctionToolset, Tool, tool, valid_text

__all__ = ["Workspace"]

_SNIFF_BYTES = 8192
_SKIP_DIRS = frozenset({".git", "__pycache__"})
_MAX_LINE_CHARS = 300
_GREP_PIECE_BYTES = 64 * 1024  # a longer line is searched in pieces of this size, never read whole into memory
_SET_ID_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
# RE2 is linear, but a pattern that defeats its DFA runs at about 1 s per MB: grep ends itself before the tool
# timeout, so the worker thread (which Python cannot kill) never outlives the call by much.
_GREP_DEADLINE_S = 30.0
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _shown(name: str) -> str:
    """A file name as listed: quoted with escapes (Python's repr) when it holds a control character or bytes that
    are not UTF-8, so that a name with a newline cannot add lines to a listing (a made-up entry or a note), and
    every name is text a model, the session file and the terminal can take."""
    return repr(name) if _UNPRINTABLE.search(name) else name


def _is_binary(chunk: bytes) -> bool:
    # NUL never occurs in UTF-8 text files and almost always occurs in binary formats (git uses the same rule).
    return b"\x00" in chunk


class Workspace(FunctionToolset):
    """A directory the model may work in, and the file tools bound to it: a toolset named ``workspace``.

    ``max_read_bytes`` bounds what one ``read_file`` returns (longer files are shown in parts, with a
    marker saying how to read on); ``max_write_bytes`` bounds one write or the result of one edit;
    ``max_scan_bytes`` bounds how much one ``grep`` reads and ``max_scan_files`` how many files one
    ``find_files`` or ``grep`` looks at, so a search over a huge tree ends with a marker instead of running on.

    The paths of :mod:`agentkit.tools._protected` (``.git``, ``.envrc``, ``.npmrc``, ``.cargo``, ``.vscode``,
    ...) are instructions the host runs later, not data, so ``write_file`` and ``edit_file`` refuse them, at any
    depth and in any letter case, also when reached through a symlink; ``allow_protected_writes=True`` is the
    user's opt-in.
    """

    name = "workspace"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_read_bytes: int = 256_000,
        max_write_bytes: int = 1_000_000,
        max_results: int = 200,
        max_scan_bytes: int = 64_000_000,
        max_scan_files: int = 100_000,
        allow_protected_writes: bool = False,
    ) -> None:
        self._root = WorkspaceRoot(root)
        self.max_read_bytes = max_read_bytes
        self.max_write_bytes = max_write_bytes
        self.max_results = max_results
        self.max_scan_bytes = max_scan_bytes
        self.max_scan_files = max_scan_files
        self.allow_protected_writes = allow_protected_writes

    @property
    def root(self) -> Path:
        """The real (symlink-free) path of the workspace directory."""
        return self._root.path

    def tools(self) -> list[Tool]:
        """The six file tools (``list_tools()`` as a new list, for ``tools=[*ws.tools(), ...]``)."""
        return list(self.list_tools())

    def make_tools(self) -> list[Tool]:
        """The six file tools; ``write_file`` and ``edit_file`` are marked as having side effects."""
        return [
            tool(self.read_file, timeout_s=30),
            tool(self.write_file, side_effects=True, timeout_s=30),
            tool(self.edit_file, side_effects=True, timeout_s=30),
            tool(self.list_dir, timeout_s=30),
            tool(self.find_files, timeout_s=60),
            tool(self.grep, timeout_s=60),
        ]

    # -- reading -------------------------------------------------------------------------------------

    def read_file(self, path: str, start_line: int = 1) -> str:
        """Read a UTF-8 text file from the workspace.

        Args:
            path: File path relative to the workspace root.
            start_line: First line to return (1-based); use it to continue a long file.
        """
        resolved = self._root.resolve(path)
        fd = self._root.open_file(resolved)
        with os.fdopen(fd, "rb") as f:
            head = f.read(_SNIFF_BYTES)
            if _is_binary(head):
                raise ToolError(f"{resolved.rel} is a binary file; read_file only returns text")
            f.seek(0)
            lines: list[bytes] = []
            used = 0
            lineno = 0
            truncated = False
            while True:
                line = f.readline(self.max_read_bytes + 1)
                if not line:
                    break
                lineno += 1
                if lineno < start_line:
                    continue
                if used + len(line) > self.max_read_bytes:
                    truncated = True
                    break
                lines.append(line)
                used += len(line)
        try:
            text = b"".join(lines).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ToolError(f"{resolved.rel} is not UTF-8 text (byte {exc.start}); it looks binary") from exc
        if start_line > 1 and lineno < start_line:
            return f"[{resolved.rel} has only {lineno} lines]"
        if truncated:
            last = start_line + len(lines) - 1
            if not lines:
                return f"[line {start_line} of {resolved.rel} alone is longer than {self.max_read_bytes} bytes]"
            text += (
                f"\n[... truncated at {self.max_read_bytes} bytes: showed lines {start_line}-{last}; "
                f"call read_file with start_line={last + 1} to continue]"
            )
        return text

    # -- writing -------------------------------------------------------------------------------------

    def write_file(self, path: str, content: str) -> str:
        """Create or overwrite a text file in the workspace (parent directories are created).

        Args:
            path: File path relative to the workspace root.
            content: The complete new content of the file.
        """
        resolved = self._writable(path)
        data = content.encode("utf-8")
        self._check_write_size(resolved, len(data))
        existed = self._atomic_write(resolved, data)
        return f"{'overwrote' if existed else 'created'} {resolved.rel} ({len(data)} bytes)"

    def edit_file(self, path: str, old_text: str, new_text: str, replace_all: bool = False) -> str:
        """Replace exact text in a file; old_text must occur exactly once unless replace_all is true.

        Args:
            path: File path relative to the workspace root.
            old_text: The exact text to replace, including whitespace and indentation.
            new_text: The replacement text.
            replace_all: Replace every occurrence instead of requiring exactly one.
        """
        if not old_text:
            raise ToolError("old_text is empty; give the exact text to replace (use write_file to create files)")
        resolved = self._writable(path)
        fd = self._root.open_file(resolved)
        with os.fdopen(fd, "rb") as f:
            raw = f.read(self.max_write_bytes + 1)
        if len(raw) > self.max_write_bytes:
            raise ToolError(f"{resolved.rel} is larger than {self.max_write_bytes} bytes; it cannot be edited here")
        if _is_binary(raw[:_SNIFF_BYTES]):
            raise ToolError(f"{resolved.rel} is a binary file; edit_file only changes text")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ToolError(f"{resolved.rel} is not UTF-8 text; edit_file only changes text") from exc
        count = text.count(old_text)
        if count == 0:
            raise ToolError(
                f"old_text was not found in {resolved.rel}; read the file and copy the text exactly "
                "(whitespace and indentation included)"
            )
        if count > 1 and not replace_all:
            raise ToolError(
                f"old_text occurs {count} times in {resolved.rel}; include more surrounding text so it matches "
                "once, or set replace_all to true"
            )
        data = text.replace(old_text, new_text).encode("utf-8")
        self._check_write_size(resolved, len(data))
        self._atomic_write(resolved, data)
        return f"replaced {count} occurrence{'s' if count > 1 else ''} in {resolved.rel}"

    def _writable(self, path: str) -> ResolvedPath:
        """Resolve a path to write, refusing host-executed config (``_write_guard``) unless the user opted in."""
        resolved = self._root.resolve(path)
        if self.allow_protected_writes:
            return resolved
        hit = protected_reason(self.root, resolved.rel)
        if hit is not None:
            via = f" ({path!r} leads there)" if path.strip().strip("/") != resolved.rel else ""
            raise ToolError(
                f"refusing to write {resolved.rel}{via}: {hit} is protected because programs on the user's machine "
                "run or obey what is there (git config and hooks, direnv, version and package managers, editors), so "
                "writing it could run code on the host. Leave it unchanged; the user can allow such writes with "
                "Workspace(..., allow_protected_writes=True)"
            )
        return resolved

    def _check_write_size(self, resolved: ResolvedPath, size: int) -> None:
        if size > self.max_write_bytes:
            raise ToolError(
                f"{resolved.rel}: {size} bytes is more than the limit of {self.max_write_bytes} bytes per write"
            )

    def _atomic_write(self, resolved: ResolvedPath, data: bytes) -> bool:
        """Write via a temporary file + fsync + rename, so readers never see half a file; True if it existed."""
        if resolved.rel == ".":
            raise ToolError("the workspace root is a directory; give a file path")
        *dirs, name = resolved.parts
        with self._root.open_dir(tuple(dirs), create=True) as dfd:
            st = self._root.lstat_in(dfd, name, resolved.rel)
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise ToolError(f"{resolved.rel} is a directory; give a file path")
            # Keep the permissions, never setuid/setgid/sticky: model-chosen content must not run with
            # another user's rights (a root-owned 4755 file rewritten stays 0755).
            mode = stat.S_IMODE(st.st_mode) & ~_SET_ID_BITS if st is not None else 0o644
            tmp = f".{name}.{secrets.token_hex(6)}.agentkit-tmp"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fchmod(f.fileno(), mode)
                    os.fsync(f.fileno())
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=dfd)
                raise
            os.fsync(dfd)  # make the rename itself durable
        return st is not None

    # -- browsing ------------------------------------------------------------------------------------

    def list_dir(self, path: str = ".") -> str:
        """List a directory of the workspace: sub-directories end with '/', files show their size.

        Args:
            path: Directory path relative to the workspace root.
        """
        resolved = self._root.resolve(path)
        with self._root.open_dir(resolved.parts) as dfd:
            names = sorted(os.listdir(dfd))
            lines = []
            for name in names[: self.max_results]:
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                shown = _shown(name)
                if stat.S_ISDIR(st.st_mode):
                    lines.append(f"{shown}/")
                elif stat.S_ISREG(st.st_mode):
                    lines.append(f"{shown}  ({st.st_size} bytes)")
                elif stat.S_ISLNK(st.st_mode):
                    lines.append(f"{shown}@  (symlink)")
                else:
                    lines.append(f"{shown}  (special file, not usable)")
        where = resolved.rel
        if not lines:
            return f"{where} is empty"
        if len(names) > self.max_results:
            lines.append(f"[... {len(names) - self.max_results} more entries not shown]")
        return "\n".join(lines)

    def find_files(self, pattern: str, path: str = ".") -> str:
        """Find files by glob pattern ('*.py' matches names at any depth; 'src/**/*.py' matches paths).

        Args:
            pattern: Glob pattern; without '/' it matches file names, with '/' paths below `path`.
            path: Directory to search, relative to the workspace root.
        """
        rx = compile_glob(pattern)
        by_name = "/" not in pattern
        resolved = self._root.resolve(path)
        found: list[str] = []
        more = False
        walk = _Walk(self.max_scan_files)
        for rel, _name, _dfd in walk.files(self._root, resolved):
            if rx.fullmatch(valid_text(rel.rsplit("/", 1)[-1] if by_name else rel)):
                if len(found) >= self.max_results:
                    more = True
                    break
                found.append(_shown(self._join(resolved, rel)))
        if more:
            found.append(f"[... more than {self.max_results} matches; narrow the pattern]")
        elif walk.cut:
            found.append(f"[... stopped after looking at {self.max_scan_files} files; search a smaller directory]")
        if not found:
            return "\n".join([f"no files match {pattern!r} under {resolved.rel}", *walk.notes])
        return "\n".join([*found, *walk.notes])

    def grep(self, pattern: str, path: str = ".", glob: str | None = None, ignore_case: bool = False) -> str:
        """Search text files for a regular expression; prints 'path:line: text' for each matching line.

        Args:
            pattern: Regular expression in Python syntax, without lookaround or backreferences (RE2).
            path: File or directory to search, relative to the workspace root.
            glob: Only search files whose names match this glob (e.g. '*.py').
            ignore_case: Match without regard to case.
        """
        rx = compile_regex(pattern, ignore_case=ignore_case)
        name_rx = compile_glob(glob) if glob else None
        resolved = self._root.resolve(path)
        out: list[str] = []
        walk = _Walk(self.max_scan_files)
        budget = self.max_scan_bytes
        deadline = time.monotonic() + _GREP_DEADLINE_S
        for shown, fd in self._grep_targets(resolved, name_rx, walk):
            with os.fdopen(fd, "rb") as f:
                if _is_binary(f.read(_SNIFF_BYTES)):
                    continue
                f.seek(0)
                lineno, reported = 1, 0
                # Lines are read in bounded pieces: a file that is one 1 GB line never sits in memory whole.
                while raw := f.readline(_GREP_PIECE_BYTES):
                    budget -= len(raw)
                    if budget < 0:
                        out.append(
                            f"[... stopped after searching {self.max_scan_bytes} bytes; narrow the path or glob]"
                        )
                        return "\n".join(out)
                    if time.monotonic() > deadline:
                        out.append(
                            f"[... stopped after {_GREP_DEADLINE_S:g} s; simplify the pattern or narrow the path]"
                        )
                        return "\n".join(out)
                    # RE2 reads the bytes as UTF-8 itself: only a matching line is decoded.
                    if reported != lineno and rx.search(raw.rstrip(b"\r\n")):
                        line = raw.decode("utf-8", "replace").rstrip("\r\n")
                        if len(out) >= self.max_results:
                            out.append(f"[... more than {self.max_results} matching lines; narrow the search]")
                            return "\n".join(out)
                        cut = line if len(line) <= _MAX_LINE_CHARS else line[:_MAX_LINE_CHARS] + " [...]"
                        out.append(f"{shown}:{lineno}: {cut}")
                        reported = lineno
                    if raw.endswith(b"\n"):
                        lineno += 1
        if walk.cut:
            out.append(f"[... stopped after looking at {self.max_scan_files} files; search a smaller directory]")
        return "\n".join(
            [*out, *walk.notes] if out else [f"no lines match {pattern!r} under {resolved.rel}", *walk.notes]
        )

    def _grep_targets(self, resolved: ResolvedPath, name_rx: Matcher | None, walk: _Walk) -> Iterator[tuple[str, int]]:
        if resolved.rel != "." and not self._is_dir(resolved):
            yield resolved.rel, self._root.open_file(resolved)
            return
        for rel, name, dfd in walk.files(self._root, resolved):
            if name_rx is not None and not name_rx.fullmatch(valid_text(name)):
                continue
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
            except OSError:
                continue  # vanished or swapped for a symlink since the listing: skip it
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                continue
            yield _shown(self._join(resolved, rel)), fd

    def _is_dir(self, resolved: ResolvedPath) -> bool:
        return resolved.real.is_dir() and not resolved.real.is_symlink()

    @staticmethod
    def _join(resolved: ResolvedPath, rel: str) -> str:
        return rel if resolved.rel == "." else f"{resolved.rel}/{rel}"


_MAX_WALK_DEPTH = 64  # directory levels a search descends: os.fwalk recurses and holds a descriptor per level


class _Walk:
    """A walk over the regular files below a directory that stops after ``limit`` files (``cut`` says so) and
    goes at most :data:`_MAX_WALK_DEPTH` levels down (``deep`` says it left some out): a tree a few thousand
    levels deep (one ``mkdir`` loop in the sandbox) ended every search with a RecursionError, or with EMFILE."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.cut = False
        self.deep = False

    @property
    def notes(self) -> list[str]:
        """What the caller adds to its answer about what the walk left out."""
        notes = []
        if self.deep:
            notes.append(f"[... directories more than {_MAX_WALK_DEPTH} levels deep were not searched]")
        return notes

    def files(self, root: WorkspaceRoot, resolved: ResolvedPath) -> Iterator[tuple[str, str, int]]:
        """(path relative to ``resolved``, file name, directory fd) of each regular file, symlinks not followed."""
        seen = 0
        with root.open_dir(resolved.parts) as top:
            for dirpath, dirnames, filenames, dfd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
                dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
                if dirnames and dirpath.count("/") >= _MAX_WALK_DEPTH:
                    dirnames[:] = []
                    self.deep = True
                for name in sorted(filenames):
                    seen += 1
                    if seen > self.limit:
                        self.cut = True
                        return
                    try:
                        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        continue  # symlinks, devices, fifos and sockets are never searched
                    rel = name if dirpath == "." else f"{dirpath[2:]}/{name}"
                    yield rel, name, dfd
