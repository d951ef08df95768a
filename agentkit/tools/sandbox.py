"""Run model-written Python under bubblewrap: no network, read-only system, one writable directory.

What a run sees (see :meth:`PythonSandbox.bwrap_args`): new user, PID, network, IPC, UTS and cgroup
namespaces (``--unshare-all``; the network is kept only with ``network=True``); a read-only ``/usr``, the
Python installation and a handful of ``/etc`` files needed by the dynamic loader and TLS — not ``/etc``
as a whole (no ``/etc/shadow``), not ``/home`` or ``/root``; a fresh ``/proc`` of its own PID namespace and a
minimal ``/dev``; size-capped tmpfs at ``/tmp`` and ``/dev/shm``; the workspace bound read-write at
``/workspace`` (the working directory) as the only host directory it can change. A bootstrap inside the
sandbox sets hard rlimits (CPU seconds, address space, processes, file size, open files, no core dumps)
before the code runs, so the code cannot raise them again. All capabilities are dropped, nested user
namespaces are disabled, ``/proc`` is read-only, and a seccomp filter (:mod:`agentkit.tools._seccomp`)
refuses kernel keyrings, bpf, perf, userfaultfd, io_uring and setuid/setgid file modes.

Why nothing outlives a run: bwrap runs the code under its own PID-1 inside a fresh PID namespace, and
``--die-with-parent`` ties that PID-1 to the outer bwrap, which leads its own process group on the host.
At the timeout or on cancellation that group is killed; at normal exit PID-1 ends with the program.
Either way PID-1 dying makes the kernel kill every process in the namespace, daemons and double-forks
included. Output is read incrementally and
kept only up to a cap, so a flood of output costs time, not memory.

Running as root: the kernel exempts uid 0 from ``RLIMIT_NPROC``, so the process limit comes from a
per-run pids cgroup instead (:mod:`agentkit.tools._cgroup`); if none can be created the sandbox refuses
to start rather than run without a process limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from agentkit.errors import SandboxError, SandboxUnavailable, UserError
from agentkit.tools._cgroup import PidsCgroup
from agentkit.tools._seccomp import filter_program
from agentkit.tools.runtime import Tool, tool
from agentkit.tools.workspace import Workspace

__all__ = ["ExecResult", "PythonSandbox"]

SANDBOX_WORKDIR = "/workspace"
_INSTALL_HINT = "install bubblewrap: apt-get install bubblewrap (or your distribution's 'bubblewrap' package)"
# Files under /etc that the loader, time zone and TLS need; /etc as a whole holds secrets (shadow, keys).
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "ssl", "ca-certificates")
_ETC_NETWORK = ("resolv.conf", "hosts", "nsswitch.conf", "gai.conf", "host.conf", "services", "protocols")
# Runs inside the sandbox before the user's code: reads the code from stdin, sets the limits, runs it.
# Python starts with -S and the site-packages are added here: path lines of .pth files are honoured but
# their "import" lines are not run (arbitrary code at every start, ~50 ms on a loaded machine).
_BOOTSTRAP = r"""
import os, sys, resource, site
main, limits = sys.argv[1], sys.argv[2]
for d in site.getsitepackages():
    if os.path.isdir(d):
        sys.path.append(d)
        for pth in sorted(n for n in os.listdir(d) if n.endswith(".pth")):
            with open(os.path.join(d, pth), encoding="utf-8", errors="replace") as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith(("#", "import ", "import\t")):
                        p = os.path.join(d, line)
                        if os.path.isdir(p) and p not in sys.path:
                            sys.path.append(p)
code = sys.stdin.buffer.read()
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
with open(main, "wb") as f:
    f.write(code)
for item in limits.split(","):
    name, value = item.split("=")
    resource.setrlimit(getattr(resource, name), (int(value), int(value)))
sys.argv = [main]
sys.path.insert(0, os.getcwd())
g = {"__name__": "__main__", "__file__": main, "__builtins__": __builtins__}
try:
    exec(compile(code, main, "exec"), g)
except SystemExit:
    raise
except BaseException as exc:
    import traceback
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != main:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)
    sys.exit(1)
"""


@dataclasses.dataclass(frozen=True)
class ExecResult:
    """What one run produced; output beyond the cap is dropped and flagged (with a marker in the text)."""

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool
    duration_s: float
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class _CappedReader:
    """Drains a pipe to the end, keeping the first ``cap`` bytes, so the writer never blocks on a full pipe."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.dropped = 0

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            room = self.cap - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
            self.dropped += max(0, len(chunk) - max(room, 0))

    def text(self) -> str:
        out = self.kept.decode("utf-8", "replace")
        if self.dropped:
            out += f"\n[... output truncated: {self.dropped} more bytes not shown]"
        return out


class PythonSandbox:
    """Runs Python code in a bubblewrap sandbox; ``run`` (sync), ``arun`` (async) and ``as_tool``.

    ``workspace`` (a :class:`Workspace` or a directory) is mounted read-write at ``/workspace``; without one
    the code gets an empty scratch ``/workspace`` that is discarded. ``memory_mb`` limits the address
    space of each process, ``max_processes`` the processes and threads of one run. ``network=True`` keeps
    the host's network. ``allow_unsafe_unconfined=True`` lets the code run *without any isolation* when
    bubblewrap is missing (limits and timeout still apply) — only for code you would run yourself.
    """

    def __init__(
        self,
        workspace: Workspace | str | os.PathLike[str] | None = None,
        timeout_s: float = 30,
        memory_mb: int = 512,
        network: bool = False,
        *,
        allow_unsafe_unconfined: bool = False,
        max_processes: int | None = 32,
        max_output_bytes: int = 64_000,
        max_file_mb: int = 64,
        tmp_mb: int = 64,
        python: str | None = None,
        extra_ro_paths: Sequence[str] = (),
    ) -> None:
        if timeout_s <= 0 or memory_mb < 64:
            raise UserError("PythonSandbox needs timeout_s > 0 and memory_mb >= 64 (Python itself needs ~30 MB)")
        if isinstance(workspace, Workspace):
            self.workspace: Path | None = workspace.root
        elif workspace is not None:
            # The same root checks as the file tools: a directory, and never "/", /proc, /sys or /dev, which
            # would be mounted writable inside the sandbox.
            self.workspace = Workspace(workspace).root
        else:
            self.workspace = None
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.network = network
        self.max_processes = max_processes
        self.max_output_bytes = max_output_bytes
        self.max_file_mb = max_file_mb
        self.tmp_mb = tmp_mb
        self.python = python or sys.executable
        self.extra_ro_paths = tuple(extra_ro_paths)
        # Every process of this sandbox carries AGENTKIT_SANDBOX=<id> in its environment, so leftovers could be
        # found on the host (/proc/PID/environ); the security tests use it to prove there are none.
        self.id = f"agentkit-sandbox-{secrets.token_hex(6)}"
        self.bwrap = shutil.which("bwrap")
        if self.bwrap is None and not allow_unsafe_unconfined:
            raise SandboxUnavailable(
                f"bubblewrap (bwrap) is not installed, so Python code cannot be confined; {_INSTALL_HINT}. "
                "To run code without any isolation anyway, pass allow_unsafe_unconfined=True."
            )
        self.confined = self.bwrap is not None
        self._needs_cgroup = os.geteuid() == 0 and max_processes is not None
        if self._needs_cgroup:
            probe = PidsCgroup.create(1)
            if probe is None:
                raise SandboxError(
                    "running as root, the kernel does not apply the process limit (RLIMIT_NPROC) to uid 0 and no "
                    "pids cgroup could be created under /sys/fs/cgroup; run agentkit as an ordinary user, or pass "
                    "max_processes=None to accept runs without a process limit"
                )
            probe.close()

    # -- command line --------------------------------------------------------------------------------

    def _limits(self) -> dict[str, int]:
        cpu = math.ceil(self.timeout_s) + 1
        limits = {
            "RLIMIT_CPU": cpu,
            "RLIMIT_AS": self.memory_mb * 1024 * 1024,
            "RLIMIT_FSIZE": self.max_file_mb * 1024 * 1024,
            "RLIMIT_NOFILE": 256,
            "RLIMIT_CORE": 0,
        }
        if self.max_processes is not None:
            limits["RLIMIT_NPROC"] = self.max_processes
        return limits

    def _python_roots(self) -> list[str]:
        """Host directories holding the interpreter and its libraries, bound read-only at the same paths."""
        if self.python != sys.executable:
            return [str(Path(os.path.realpath(self.python)).parent.parent)]
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        return sorted(p for p in prefixes if not (p == "/usr" or p.startswith("/usr/")))

    def bwrap_args(self, main: str) -> list[str]:
        """The full bubblewrap command line for one run (exposed so the confinement can be inspected)."""
        assert self.bwrap is not None
        mb = 1024 * 1024
        args = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        # No nested user namespaces: they would hand the code capabilities (mounts, more namespaces) inside.
        args += ["--unshare-user", "--disable-userns"]
        if self.network:
            args.append("--share-net")
        args += ["--uid", "1000", "--gid", "1000", "--hostname", "sandbox"]
        args += ["--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        etc = _ETC_FILES + (_ETC_NETWORK if self.network else ())
        for name in etc:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        for path in [*self._python_roots(), *self.extra_ro_paths]:
            args += ["--ro-bind", path, path]
        # /proc read-only as a whole: when agentkit runs as root the sandbox user is uid 0 to the kernel, and
        # sysctls (/proc/sys/kernel/core_pattern, ...) only check that uid, not capabilities.
        args += ["--proc", "/proc", "--remount-ro", "/proc", "--dev", "/dev"]
        args += ["--size", str(self.tmp_mb * mb), "--tmpfs", "/tmp"]
        args += ["--size", str(self.tmp_mb * mb), "--tmpfs", "/dev/shm"]
        if self.workspace is not None:
            args += ["--bind", str(self.workspace), SANDBOX_WORKDIR]
        else:
            args += ["--size", str(self.tmp_mb * mb), "--tmpfs", SANDBOX_WORKDIR]
        # Read-only root and /dev (both tmpfs made by bwrap), so only /tmp, /dev/shm and /workspace take writes.
        args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", SANDBOX_WORKDIR, "--clearenv"]
        for key, value in self._env(home="/tmp").items():
            args += ["--setenv", key, value]
        return [*args, "--", *self._python_cmd(main)]

    def _python_cmd(self, main: str) -> list[str]:
        # -I: ignore PYTHON* variables and user site-packages; -S: site-packages added by the bootstrap;
        # -B: no .pyc writes; -u: output written before a kill is not lost in a buffer.
        limits = ",".join(f"{k}={v}" for k, v in self._limits().items())
        return [self.python, "-I", "-S", "-B", "-u", "-c", _BOOTSTRAP, main, limits]

    def _env(self, home: str) -> dict[str, str]:
        one = "1"  # BLAS/OpenMP pools would otherwise start one thread per core and hit the process limit
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "LANG": "C.UTF-8",
            "USER": "sandbox",
            "OMP_NUM_THREADS": one,
            "OPENBLAS_NUM_THREADS": one,
            "MKL_NUM_THREADS": one,
            "AGENTKIT_SANDBOX": self.id,
        }

    # -- running -------------------------------------------------------------------------------------

    async def arun(self, code: str) -> ExecResult:
        """Run ``code`` and wait for it (at most ``timeout_s``); never raises for failures of the code itself."""
        if not isinstance(code, str):
            raise UserError(f"PythonSandbox.run() takes the code as a string, got {type(code).__name__}")
        cgroup: PidsCgroup | None = None
        if self._needs_cgroup:
            # bwrap's two own processes are in the group too.
            cgroup = PidsCgroup.create(self.max_processes + 2 if self.max_processes else 1)
            if cgroup is None:
                raise SandboxError("could not create a pids cgroup for this run; check /sys/fs/cgroup is writable")
        scratch = None
        try:
            if self.confined:
                cmd, cwd, env = self.bwrap_args("/tmp/main.py"), None, None
            else:
                scratch = tempfile.mkdtemp(prefix="agentkit-unconfined-")
                cwd = str(self.workspace) if self.workspace is not None else scratch
                cmd, env = self._python_cmd(os.path.join(scratch, "main.py")), self._env(home=scratch)
            return await self._execute(cmd, cwd, env, code.encode("utf-8"), cgroup)
        finally:
            if cgroup is not None:
                await asyncio.to_thread(cgroup.close)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    async def _execute(
        self, cmd: list[str], cwd: str | None, env: dict[str, str] | None, code: bytes, cgroup: PidsCgroup | None
    ) -> ExecResult:
        info_r, info_w = os.pipe()
        keep: list[int] = []  # descriptors bwrap inherits
        if self.confined:  # bwrap writes to this pipe once the sandbox is set up: silence means it failed
            keep.append(info_w)
            extra = ["--info-fd", str(info_w)]
            if (program := filter_program()) is not None:
                # bwrap reads the filter to EOF before it starts; a pipe holds it (a few hundred bytes).
                seccomp_r, seccomp_w = os.pipe()
                os.write(seccomp_w, program)
                os.close(seccomp_w)
                keep.append(seccomp_r)
                extra += ["--seccomp", str(seccomp_r)]
            cmd = [cmd[0], *extra, *cmd[1:]]
        out, err = _CappedReader(self.max_output_bytes), _CappedReader(self.max_output_bytes)
        start = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,  # its own process group, killed as a whole
                pass_fds=tuple(keep),
                preexec_fn=cgroup.join_from_child if cgroup is not None else None,
            )
        except (OSError, subprocess.SubprocessError) as exc:  # the latter: joining the cgroup failed
            os.close(info_r)
            raise SandboxError(f"could not start {cmd[0]}: {exc}") from exc
        finally:
            for fd in {info_w, *keep}:
                os.close(fd)
        timed_out = False
        readers = asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr), self._feed(proc, code))
        try:
            try:
                await asyncio.wait_for(asyncio.shield(readers), self.timeout_s)
            except TimeoutError:
                timed_out = True
                _kill_group(proc.pid)
            # Confined, the pipes close when the PID namespace dies; unconfined, a daemonized child may keep
            # them open, so reading stops a moment after the group is gone.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(readers), 2.0)
            await proc.wait()
        finally:
            if proc.returncode is None:  # cancelled: take everything down before returning
                _kill_group(proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    await proc.wait()
            if not readers.done():
                readers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await readers
        duration = time.perf_counter() - start
        started = _read_all(info_r)
        if self.confined and not started and not timed_out:
            msg = err.text().strip() or f"bwrap exited with status {proc.returncode}"
            raise SandboxError(
                f"bubblewrap could not set up the sandbox: {msg}. It needs unprivileged user namespaces "
                "(on Ubuntu 24.04 they are restricted by AppArmor; see the bubblewrap documentation)"
            )
        return ExecResult(
            stdout=out.text(),
            stderr=err.text(),
            exit_code=proc.returncode if proc.returncode is not None else -signal.SIGKILL,
            timed_out=timed_out,
            duration_s=duration,
            stdout_truncated=bool(out.dropped),
            stderr_truncated=bool(err.dropped),
        )

    @staticmethod
    async def _feed(proc: asyncio.subprocess.Process, code: bytes) -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(code)
            await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sandbox died before reading its code; its exit status says why

    def run(self, code: str) -> ExecResult:
        """Blocking wrapper over :meth:`arun`; inside a running event loop use ``await arun(code)`` instead."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(code))
        raise UserError("PythonSandbox.run() was called inside a running event loop; use 'await sandbox.arun(code)'")

    def as_tool(self, name: str = "run_python") -> Tool:
        """An async tool (side effects: it runs code) that returns the ExecResult fields to the model."""
        where = "/workspace (the working directory)" if self.workspace is not None else "a scratch /workspace"
        net = "has network access" if self.network else "has no network access"

        async def run_python(code: str) -> ExecResult:
            """Run a Python 3 program and return its stdout, stderr and exit code.

            Args:
                code: The complete program; print what you want to see.
            """
            return await self.arun(code)

        description = (
            f"Run a Python 3 program in a sandbox and return stdout, stderr and exit_code. Files persist in {where}; "
            f"the sandbox {net}; limits: {self.timeout_s:g} s, {self.memory_mb} MB. Print results to see them."
        )
        return tool(run_python, name=name, description=description, side_effects=True, timeout_s=self.timeout_s + 15)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read_all(fd: int) -> bytes:
    """Read what bwrap wrote to its info pipe (a few hundred bytes, already complete once it exited)."""
    os.set_blocking(fd, False)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)
