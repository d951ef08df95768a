"""A pids cgroup per sandbox run, for when the process limit cannot come from ``RLIMIT_NPROC``.

The kernel never applies ``RLIMIT_NPROC`` to processes whose real uid is 0 in the initial user namespace,
and bubblewrap started by root maps the sandbox user back to uid 0. A fork bomb started by root would
therefore only be stopped by the timeout, long after it has exhausted the host's process table. When
agentkit runs as root (containers, CI) it puts each sandbox in a fresh cgroup with ``pids.max`` instead;
root can create one in both the cgroup v2 (unified) and v1 (``pids`` controller) layouts. The cgroup is
also a second way to make sure nothing survives a run: :meth:`PidsCgroup.close` kills whatever is left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from pathlib import Path

__all__ = ["PidsCgroup"]


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
    """Map controller ('pids', or '' for v2) to this process's cgroup path."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                paths[c] = path
    return paths


class PidsCgroup:
    """A fresh cgroup limited to ``max_pids`` tasks (processes and threads); ``None`` from create() if impossible."""

    def __init__(self, path: Path, v2: bool) -> None:
        self.path = path
        self.v2 = v2

    @classmethod
    def create(cls, max_pids: int) -> PidsCgroup | None:
        own = _own_paths()
        for mount, fstype, opts in _mounts():
            if fstype == "cgroup2" and "" in own:
                parent = Path(mount) / own[""].lstrip("/")
                if "pids" not in _read(parent / "cgroup.controllers").split():
                    continue
                group = cls._make(parent, max_pids, v2=True)
            elif fstype == "cgroup" and "pids" in opts.split(",") and "pids" in own:
                group = cls._make(Path(mount) / own["pids"].lstrip("/"), max_pids, v2=False)
            else:
                continue
            if group is not None:
                return group
        return None

    @classmethod
    def _make(cls, parent: Path, max_pids: int, *, v2: bool) -> PidsCgroup | None:
        path = parent / f"agentkit-sandbox-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except OSError:
            return None
        group = cls(path, v2)
        try:
            if v2 and not (path / "pids.max").exists():
                # The controller must be enabled for children; fails if the parent holds processes itself.
                (parent / "cgroup.subtree_control").write_text("+pids")
            (path / "pids.max").write_text(str(max_pids))
        except OSError:
            group.close()
            return None
        return group

    def join_from_child(self) -> None:
        """Move the calling process into the group; runs in the child between fork and exec."""
        with open(self.path / "cgroup.procs", "w") as f:
            f.write(str(os.getpid()))

    def pids(self) -> list[int]:
        return [int(p) for p in _read(self.path / "cgroup.procs").split()]

    def close(self) -> int:
        """Kill anything still in the group and remove it; returns how many processes had to be killed."""
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
        for _ in range(50):
            try:
                self.path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.001)  # exited tasks leave the group asynchronously
        return killed


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
