"""The command line of one sandbox run: bubblewrap's arguments, the interpreter's, its environment and rlimits.

Everything here is a pure function of the sandbox's settings (no process is started), so what a run will
see can be read off :meth:`~agentkit.tools.PythonSandbox.bwrap_args` and tested without running anything.
The order of the mounts matters and is explained where it is made.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from agentkit.errors import UserError

from ._bootstrap import BOOTSTRAP, READY_MARK

__all__ = ["SANDBOX_WORKDIR", "bwrap_command", "interpreter_dirs", "python_command", "rlimits", "sandbox_env"]

SANDBOX_WORKDIR = "/workspace"
# Files under /etc that the loader, time zone and TLS need; /etc as a whole holds secrets (shadow, keys).
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "ssl", "ca-certificates")
_ETC_NETWORK = ("resolv.conf", "hosts", "nsswitch.conf", "gai.conf", "host.conf", "services", "protocols")
_MB = 1024 * 1024


def interpreter_dirs(python: str) -> list[str]:
    """Host directories holding the interpreter and its libraries (a venv and its base), bound read-only."""
    if python == sys.executable:
        prefixes = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    else:
        query = "import sys; print(sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, sep='\\0')"
        try:
            out = subprocess.run(
                [python, "-I", "-c", query], capture_output=True, text=True, timeout=30, check=True
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise UserError(f"PythonSandbox(python={python!r}): that interpreter does not run: {exc}") from exc
        prefixes = out.strip("\n").split("\0")
    found: list[str] = []
    for p in sorted({os.path.realpath(p) for p in prefixes} | set(prefixes)):
        if not (p == "/usr" or p.startswith("/usr/")) and os.path.isdir(p):
            found.append(p)
    return found


def rlimits(timeout_s: float, memory_bytes: int, max_file_mb: int, max_processes: int | None) -> dict[str, int]:
    """The hard rlimits the bootstrap sets on itself before the code runs (so the code cannot raise them)."""
    limits = {
        "RLIMIT_CPU": math.ceil(timeout_s) + 1,
        "RLIMIT_AS": memory_bytes,
        "RLIMIT_FSIZE": max_file_mb * _MB,
        "RLIMIT_NOFILE": 256,
        "RLIMIT_CORE": 0,
    }
    if max_processes is not None:
        limits["RLIMIT_NPROC"] = max_processes
    return limits


def python_command(python: str, main: str, limits: dict[str, int]) -> list[str]:
    """The interpreter running the bootstrap; the ready pipe's number is :data:`READY_MARK` until it exists."""
    # -I: ignore PYTHON* variables and user site-packages; -S: site-packages added by the bootstrap;
    # -B: no .pyc writes; -u: output written before a kill is not lost in a buffer.
    packed = ",".join(f"{k}={v}" for k, v in limits.items())
    return [python, "-I", "-S", "-B", "-u", "-c", BOOTSTRAP, main, packed, READY_MARK]


def sandbox_env(home: str, sandbox_id: str) -> dict[str, str]:
    """The whole environment of a run (and of bubblewrap itself): never the agent's (API keys, tokens)."""
    one = "1"  # BLAS/OpenMP pools would otherwise start one thread per core and hit the process limit
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "USER": "sandbox",
        "OMP_NUM_THREADS": one,
        "OPENBLAS_NUM_THREADS": one,
        "MKL_NUM_THREADS": one,
        # Every process of a sandbox carries its id, so leftovers could be found on the host (/proc/PID/environ);
        # the security tests use it to prove there are none.
        "AGENTKIT_SANDBOX": sandbox_id,
    }


def bwrap_command(
    bwrap: str,
    command: Sequence[str],
    env: dict[str, str],
    *,
    workspace: Path | None,
    network: bool,
    tmp_mb: int,
    read_only_dirs: Sequence[str],
    protected: Sequence[str] = (),
    placeholders: Sequence[str] = (),
) -> list[str]:
    """bubblewrap's full command line running ``command`` (see :meth:`PythonSandbox.bwrap_args`)."""
    args = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    # No nested user namespaces: they would hand the code capabilities (mounts, more namespaces) inside.
    args += ["--unshare-user", "--disable-userns"]
    # The bootstrap is PID 1 (no bubblewrap process inside): PID 1's environment, command line and memory
    # are then the sandbox's own, not the host's, and every process inside runs under the seccomp filter.
    args.append("--as-pid-1")
    if network:
        args.append("--share-net")
    args += ["--uid", "1000", "--gid", "1000", "--hostname", "sandbox"]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in _ETC_FILES + (_ETC_NETWORK if network else ()):
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    # /proc read-only as a whole: when agentkit runs as root the sandbox user is uid 0 to the kernel, and
    # sysctls (/proc/sys/kernel/core_pattern, ...) only check that uid, not capabilities.
    args += ["--proc", "/proc", "--remount-ro", "/proc", "--dev", "/dev"]
    args += ["--size", str(tmp_mb * _MB), "--tmpfs", "/tmp"]
    args += ["--size", str(tmp_mb * _MB), "--tmpfs", "/dev/shm"]
    if workspace is not None:
        args += ["--bind", str(workspace), SANDBOX_WORKDIR]
        for rel in protected:
            args += ["--ro-bind", str(workspace / rel), f"{SANDBOX_WORKDIR}/{rel}"]
        for name in placeholders:
            target = f"{SANDBOX_WORKDIR}/{name}"
            args += ["--size", "4096", "--tmpfs", target, "--remount-ro", target]
    else:
        args += ["--size", str(tmp_mb * _MB), "--tmpfs", SANDBOX_WORKDIR]
    # The interpreter last: a virtual environment under /tmp would otherwise be hidden by the fresh /tmp.
    for path in read_only_dirs:
        args += ["--ro-bind", path, path]
    # Read-only root and /dev (both tmpfs made by bwrap), so only /tmp, /dev/shm and /workspace take writes.
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", SANDBOX_WORKDIR, "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return [*args, "--", *command]
