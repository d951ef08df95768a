"""A cgroup per sandbox run: the process limit when running as root, and a memory cap for the whole run.

Processes: the kernel never applies ``RLIMIT_NPROC`` to processes whose real uid is 0 in the initial user
namespace, and bubblewrap started by root maps the sandbox user back to uid 0. A fork bomb started by root
would therefore only be stopped by the timeout, long after it has exhausted the host's process table. When
agentkit runs as root (containers, CI) it puts each sandbox in a fresh cgroup with ``pids.max`` instead.

Memory: ``RLIMIT_AS`` limits one process's address space, so eight processes get eight times the limit, and
memory that is not mapped address space is not counted at all (a ``memfd`` or tmpfs file written through
``write()``). A memory cgroup counts every page the run's processes charge (anonymous memory, page cache,
tmpfs and memfd pages, kernel memory for their inodes), so ``memory.max`` (v2) or ``memory.limit_in_bytes``
(v1) caps the run as a whole; swap is capped too where the kernel accounts it, so memory cannot move there.

Both layouts are handled: cgroup v2 (one unified group with the ``pids`` and ``memory`` controllers enabled)
and v1 (one group in each controller's hierarchy). A group can only be made where this process may write
below its own cgroup: as root, or as a user whose cgroup was delegated to them. Where no memory group can
be made, :attr:`RunCgroup.memory_limited` is False and the sandbox says so in every result. The cgroup is
also a second way to make sure nothing survives a run: :meth:`RunCgroup.close` kills whatever is left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["RunCgroup"]


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, fs type, super options) of every cgroup mount of this process."""
    found = []
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) >= 5 and len(rfields) >= 3 and rfields[0] in ("cgroup", "cgroup2"):
            found.append((fields[4], rfields[0], rfields[2]))
    return found


def _own_paths() -> dict[str, str]:
    """Map controller ('pids', 'memory', or '' for v2) to this process's cgroup path."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                paths[c] = path
    return paths


class RunCgroup:
    """Fresh cgroup(s) for one run; ``create`` returns one limiting what it could (possibly nothing)."""

    def __init__(self) -> None:
        self.dirs: list[Path] = []
        self.pids_limited = False
        self.memory_limited = False
        self.memory_layout = ""  # "cgroup v2" / "cgroup v1" once memory is limited
        self._memory_events: Path | None = None  # v2 memory.events or v1 memory.oom_control

    @classmethod
    def create(cls, max_pids: int | None, memory_bytes: int | None) -> RunCgroup:
        """Limit what can be limited here: ``None`` for a limit means "not wanted"."""
        group = cls()
        own = _own_paths()
        mounts = _mounts()
        want = {"pids": max_pids is not None, "memory": memory_bytes is not None}
        for mount, fstype, _ in mounts:
            if fstype != "cgroup2" or "" not in own or not any(want.values()):
                continue
            parent = Path(mount) / own[""].lstrip("/")
            available = _read(parent / "cgroup.controllers").split()
            usable = [c for c in ("pids", "memory") if want[c] and c in available]
            if usable and group._make_v2(parent, usable, max_pids, memory_bytes):
                for c in usable:
                    want[c] = False
        for controller, limit in (("pids", max_pids), ("memory", memory_bytes)):
            if not want[controller] or limit is None or controller not in own:
                continue
            for mount, fstype, opts in mounts:
                parent = Path(mount) / own[controller].lstrip("/")
                if fstype == "cgroup" and controller in opts.split(",") and group._make_v1(parent, controller, limit):
                    break
        return group

    def _new_dir(self, parent: Path) -> Path | None:
        path = parent / f"agentkit-sandbox-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except OSError:
            return None
        self.dirs.append(path)
        return path

    def _make_v2(self, parent: Path, controllers: Sequence[str], max_pids: int | None, memory: int | None) -> bool:
        path = self._new_dir(parent)
        if path is None:
            return False
        try:
            missing = [c for c in controllers if not (path / f"{c}.max").exists()]
            if missing:
                # Enable the controllers for children; fails if the parent holds processes itself.
                (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
            if "pids" in controllers:
                (path / "pids.max").write_text(str(max_pids))
                self.pids_limited = True
            if "memory" in controllers:
                (path / "memory.max").write_text(str(memory))
                if (path / "memory.swap.max").exists():
                    (path / "memory.swap.max").write_text("0")
                self.memory_limited = True
                self.memory_layout = "cgroup v2"
                self._memory_events = path / "memory.events"
        except OSError:
            self.dirs.remove(path)
            self._remove(path)
            self.pids_limited = self.memory_limited = False
            self.memory_layout = ""
            return False
        return True

    def _make_v1(self, parent: Path, controller: str, limit: int) -> bool:
        path = self._new_dir(parent)
        if path is None:
            return False
        try:
            if controller == "pids":
                (path / "pids.max").write_text(str(limit))
                self.pids_limited = True
            else:
                (path / "memory.limit_in_bytes").write_text(str(limit))
                if (path / "memory.memsw.limit_in_bytes").exists():  # swap accounting on: no escape into swap
                    (path / "memory.memsw.limit_in_bytes").write_text(str(limit))
                self.memory_limited = True
                self.memory_layout = "cgroup v1"
                self._memory_events = path / "memory.oom_control"
        except OSError:
            self.dirs.remove(path)
            self._remove(path)
            return False
        return True

    def join_from_child(self) -> None:
        """Move the calling process into the group(s); runs in the child between fork and exec."""
        for path in self.dirs:
            with open(path / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.dirs:
            found.update(int(p) for p in _read(path / "cgroup.procs").split())
        return sorted(found)

    def oom_kills(self) -> int:
        """How many processes the kernel killed because the run reached its memory cap."""
        if self._memory_events is None:
            return 0
        for line in _read(self._memory_events).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def close(self) -> int:
        """Kill anything still in the group(s) and remove them; returns how many processes had to be killed."""
        killed = 0
        for _ in range(50):
            left = self.pids()
            if not left:
                break
            killed = max(killed, len(left))
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)
        for path in self.dirs:
            self._remove(path)
        self.dirs = []
        return killed

    @staticmethod
    def _remove(path: Path) -> None:
        for _ in range(50):
            try:
                path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.001)  # exited tasks leave the group asynchronously


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
