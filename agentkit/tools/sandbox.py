"""Run model-written Python under bubblewrap: no network, read-only system, one writable directory.

What a run sees (see :meth:`PythonSandbox.bwrap_args`): new user, PID, network, IPC, UTS and cgroup
namespaces (``--unshare-all``; the network is kept only with ``network=True``); a read-only ``/usr``, the
interpreter (a virtual environment and its base) and a handful of ``/etc`` files needed by the dynamic loader
and TLS — not ``/etc`` as a whole (no ``/etc/shadow``), not ``/home`` or ``/root``; a fresh ``/proc`` of its
own PID namespace and a minimal ``/dev``; size-capped tmpfs at ``/tmp`` and ``/dev/shm``; the workspace bound
read-write at ``/workspace`` (the working directory) as the only host directory it can change, except the
host-executed configuration in it, which is read-only (:mod:`agentkit.tools._run_guard`). A bootstrap inside
the sandbox sets hard rlimits (CPU seconds, address space, processes, file size, open files, no core dumps)
before the code runs, so the code cannot raise them again. All capabilities are dropped, nested user
namespaces are disabled, ``/proc`` is read-only, and a seccomp filter (:mod:`agentkit.tools._seccomp`)
refuses kernel keyrings, bpf, perf, userfaultfd, io_uring, ptrace and setuid/setgid file modes.

Why the host does not show through ``/proc/1``: bwrap's own PID 1 would be a copy of the bwrap process,
with the agent's environment (API keys), bwrap's command line (every host path mounted) and its memory,
readable at the sandbox's uid. So bwrap starts with the sandbox's minimal environment and ``--as-pid-1``
makes the bootstrap itself PID 1: a fresh ``exec`` under the seccomp filter that holds nothing but the
sandbox's environment and the code. It forks the program, reaps orphans, and exits with the program's status.

Why nothing outlives a run: PID 1 ends with the program, and ``--die-with-parent`` ties it to the outer
bwrap, which leads its own process group on the host. At the timeout or on cancellation that group is
killed. Either way PID 1 dying makes the kernel kill every process in the namespace, daemons and
double-forks included. Output is read incrementally and kept only up to a cap, so a flood of output costs
time, not memory.

Run-wide limits: memory and, as root, processes come from a cgroup per run (:mod:`agentkit.tools._cgroup`;
the kernel exempts uid 0 from ``RLIMIT_NPROC``, so as root without a pids cgroup the sandbox refuses to
start); bytes and files written from a watcher on the host (:mod:`agentkit.tools._writes`). A sandbox that
cannot start raises :class:`SandboxError`, so a broken setup never looks like a program that ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
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
from typing import Any

from agentkit.errors import SandboxError, SandboxUnavailable, UserError
from agentkit.tools._cgroup import RunCgroup
from agentkit.tools._run_guard import RunGuard
from agentkit.tools._seccomp import filter_program
from agentkit.tools._writes import POLL_S, WriteWatch
from agentkit.tools.runtime import Tool, tool
from agentkit.tools.workspace import Workspace

__all__ = ["ExecResult", "PythonSandbox"]

SANDBOX_WORKDIR = "/workspace"
_INSTALL_HINT = "install bubblewrap: apt-get install bubblewrap (or your distribution's 'bubblewrap' package)"
# Files under /etc that the loader, time zone and TLS need; /etc as a whole holds secrets (shadow, keys).
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "ssl", "ca-certificates")
_RUN_MEMORY_ALLOWANCE = 32 * 1024 * 1024
# The bootstrap's last argument, replaced by the number of the pipe it reports a successful start on.
_READY_MARK = "{ready-fd}"
_ETC_NETWORK = ("resolv.conf", "hosts", "nsswitch.conf", "gai.conf", "host.conf", "services", "protocols")
# Runs inside the sandbox before the user's code: reads the code from stdin, sets the limits, runs it.
# Python starts with -S and the site-packages are added here: path lines of .pth files are honoured but
# their "import" lines are not run (arbitrary code at every start, ~50 ms on a loaded machine).
_BOOTSTRAP = r"""
import os, sys, resource, signal, site
main, limits, ready = sys.argv[1], sys.argv[2], int(sys.argv[3])
# With -S, site.venv() has not run: find the virtual environment as it does, from pyvenv.cfg next to the
# interpreter, and use its packages (and the base's when it says so), as the same interpreter does outside.
prefixes = [sys.prefix]
exe_dir = os.path.dirname(os.path.abspath(sys.executable))
for cfg in (os.path.join(exe_dir, "pyvenv.cfg"), os.path.join(os.path.dirname(exe_dir), "pyvenv.cfg")):
    if os.path.isfile(cfg):
        sys.prefix = sys.exec_prefix = prefixes[0] = os.path.dirname(cfg)
        with open(cfg, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition("=")
                if key.strip().lower() == "include-system-site-packages" and value.strip().lower() == "true":
                    prefixes.append(sys.base_prefix)
        break
for d in site.getsitepackages(prefixes):
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
os.write(ready, b"1")
os.close(ready)
child = os.fork()
if child:
    # PID 1 of the run: reap orphans until the program ends, then end the run with the program's status (the
    # kernel then kills whatever is left). Signals sent from inside are ignored, as for any namespace's init.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == child:
            break
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)
del child
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
    """What one run produced; output beyond the cap is dropped and flagged (with a marker in the text).

    ``limits_hit`` names the run-wide limits that stopped the program (``"memory"``, ``"write_bytes"``,
    ``"write_files"``); ``notices`` are sentences about the run the reader must know (a limit hit, a protected
    path the program created and that was removed, a limit this machine cannot enforce).
    """

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool
    duration_s: float
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    limits_hit: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.limits_hit


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


@dataclasses.dataclass
class _Run:
    """What one run needs besides its command line: its cgroup and write watch, and what it found out."""

    cgroup: RunCgroup | None = None
    watch: WriteWatch | None = None
    limits_hit: list[str] = dataclasses.field(default_factory=list)
    notices: list[str] = dataclasses.field(default_factory=list)
    started: bool = False  # the bootstrap reported that it runs (the sandbox is set up)


class PythonSandbox:
    """Runs Python code in a bubblewrap sandbox; ``run`` (sync), ``arun`` (async) and ``as_tool``.

    ``workspace`` (a :class:`Workspace` or a directory) is mounted read-write at ``/workspace``; without one
    the code gets an empty scratch ``/workspace`` that is discarded. ``memory_mb`` caps the whole run (all its
    processes, tmpfs files included) where a memory cgroup can be made, and each process's address space
    always. ``max_processes`` limits the processes and threads of one run. ``max_write_mb`` and
    ``max_write_files`` are the run's write budget (workspace growth plus its tmpfs mounts). The workspace's
    host-executed configuration (``.git``, ``.envrc``, ``.vscode``, ...: :mod:`agentkit.tools._protected`) is
    read-only inside unless ``allow_protected_writes=True``. ``network=True`` keeps the host's network.
    ``allow_unsafe_unconfined=True`` lets the code run *without any isolation* when bubblewrap is missing
    (limits and timeout still apply) — only for code you would run yourself.
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
        max_write_mb: int = 256,
        max_write_files: int = 10_000,
        allow_protected_writes: bool = False,
        python: str | None = None,
        extra_ro_paths: Sequence[str] = (),
    ) -> None:
        if timeout_s <= 0 or memory_mb < 64:
            raise UserError("PythonSandbox needs timeout_s > 0 and memory_mb >= 64 (Python itself needs ~30 MB)")
        if max_write_mb < 1 or max_write_files < 1:
            raise UserError("PythonSandbox needs max_write_mb >= 1 and max_write_files >= 1")
        if isinstance(workspace, Workspace):
            self.workspace: Path | None = workspace.root
            allow_protected_writes = allow_protected_writes or bool(getattr(workspace, "allow_protected_writes", False))
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
        self.max_write_mb = max_write_mb
        self.max_write_files = max_write_files
        self.allow_protected_writes = allow_protected_writes
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
        self._python_dirs = self._interpreter_dirs()
        self._needs_pids_cgroup = os.geteuid() == 0 and max_processes is not None
        probe = RunCgroup.create(self._pids_limit() if self._needs_pids_cgroup else None, self._run_memory_bytes())
        probe.close()
        if self._needs_pids_cgroup and not probe.pids_limited:
            raise SandboxError(
                "running as root, the kernel does not apply the process limit (RLIMIT_NPROC) to uid 0 and no "
                "pids cgroup could be created under /sys/fs/cgroup; run agentkit as an ordinary user, or pass "
                "max_processes=None to accept runs without a process limit"
            )
        #: How the whole run's memory is capped: "cgroup v1"/"cgroup v2", or "" where only RLIMIT_AS per process.
        self.memory_cap = probe.memory_layout

    # -- command line --------------------------------------------------------------------------------

    def _pids_limit(self) -> int:
        return (self.max_processes or 0) + 2  # bwrap's own process on the host is in the group too

    def _memory_bytes(self) -> int:
        return self.memory_mb * 1024 * 1024

    def _run_memory_bytes(self) -> int:
        # The run's own PID 1 and bubblewrap (about 10 MB) get an allowance on top, so that one process that
        # allocates too much meets its RLIMIT_AS first: a MemoryError it can catch, not the kernel's SIGKILL.
        return self._memory_bytes() + _RUN_MEMORY_ALLOWANCE

    def _limits(self) -> dict[str, int]:
        cpu = math.ceil(self.timeout_s) + 1
        limits = {
            "RLIMIT_CPU": cpu,
            "RLIMIT_AS": self._memory_bytes(),
            "RLIMIT_FSIZE": self.max_file_mb * 1024 * 1024,
            "RLIMIT_NOFILE": 256,
            "RLIMIT_CORE": 0,
        }
        if self.max_processes is not None:
            limits["RLIMIT_NPROC"] = self.max_processes
        return limits

    def _interpreter_dirs(self) -> list[str]:
        """Host directories holding the interpreter and its libraries (a venv and its base), bound read-only."""
        if self.python == sys.executable:
            prefixes = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
        else:
            query = "import sys; print(sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, sep='\\0')"
            try:
                out = subprocess.run(
                    [self.python, "-I", "-c", query], capture_output=True, text=True, timeout=30, check=True
                ).stdout
            except (OSError, subprocess.SubprocessError) as exc:
                raise UserError(f"PythonSandbox(python={self.python!r}): that interpreter does not run: {exc}") from exc
            prefixes = out.strip("\n").split("\0")
        found: list[str] = []
        for p in sorted({os.path.realpath(p) for p in prefixes} | set(prefixes)):
            if not (p == "/usr" or p.startswith("/usr/")) and os.path.isdir(p):
                found.append(p)
        return found

    def bwrap_args(self, main: str, protected: Sequence[str] = (), placeholders: Sequence[str] = ()) -> list[str]:
        """The full bubblewrap command line for one run (exposed so the confinement can be inspected).

        ``protected`` are workspace-relative paths bound read-only over the workspace; ``placeholders`` are
        protected names absent from it, covered by an empty read-only directory so the code cannot create them.
        """
        assert self.bwrap is not None
        mb = 1024 * 1024
        args = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        # No nested user namespaces: they would hand the code capabilities (mounts, more namespaces) inside.
        args += ["--unshare-user", "--disable-userns"]
        # The bootstrap is PID 1 (no bubblewrap process inside): PID 1's environment, command line and memory
        # are then the sandbox's own, not the host's, and every process inside runs under the seccomp filter.
        args.append("--as-pid-1")
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
        # /proc read-only as a whole: when agentkit runs as root the sandbox user is uid 0 to the kernel, and
        # sysctls (/proc/sys/kernel/core_pattern, ...) only check that uid, not capabilities.
        args += ["--proc", "/proc", "--remount-ro", "/proc", "--dev", "/dev"]
        args += ["--size", str(self.tmp_mb * mb), "--tmpfs", "/tmp"]
        args += ["--size", str(self.tmp_mb * mb), "--tmpfs", "/dev/shm"]
        if self.workspace is not None:
            args += ["--bind", str(self.workspace), SANDBOX_WORKDIR]
            for rel in protected:
                args += ["--ro-bind", str(self.workspace / rel), f"{SANDBOX_WORKDIR}/{rel}"]
            for name in placeholders:
                target = f"{SANDBOX_WORKDIR}/{name}"
                args += ["--size", "4096", "--tmpfs", target, "--remount-ro", target]
        else:
            args += ["--size", str(self.tmp_mb * mb), "--tmpfs", SANDBOX_WORKDIR]
        # The interpreter last: a virtual environment under /tmp would otherwise be hidden by the fresh /tmp.
        for path in [*self._python_dirs, *self.extra_ro_paths]:
            args += ["--ro-bind", path, path]
        # Read-only root and /dev (both tmpfs made by bwrap), so only /tmp, /dev/shm and /workspace take writes.
        args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", SANDBOX_WORKDIR, "--clearenv"]
        for key, value in self._env(home="/tmp").items():
            args += ["--setenv", key, value]
        return [*args, "--", *self._python_cmd(main)]

    def _python_cmd(self, main: str) -> list[str]:
        # -I: ignore PYTHON* variables and user site-packages; -S: site-packages added by the bootstrap;
        # -B: no .pyc writes; -u: output written before a kill is not lost in a buffer.
        limits = ",".join(f"{k}={v}" for k, v in self._limits().items())
        return [self.python, "-I", "-S", "-B", "-u", "-c", _BOOTSTRAP, main, limits, _READY_MARK]

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
        """Run ``code`` and wait for it (at most ``timeout_s``); never raises for failures of the code itself.

        Raises :class:`SandboxError` when the sandbox or the interpreter inside it could not be started, so a
        broken setup is an error and never looks like a program that ran.
        """
        if not isinstance(code, str):
            raise UserError(f"PythonSandbox.run() takes the code as a string, got {type(code).__name__}")
        run = _Run()
        if self._needs_pids_cgroup or self.memory_cap:
            run.cgroup = RunCgroup.create(
                self._pids_limit() if self._needs_pids_cgroup else None,
                self._run_memory_bytes() if self.memory_cap else None,
            )
            if self._needs_pids_cgroup and not run.cgroup.pids_limited:
                run.cgroup.close()
                raise SandboxError("could not create a pids cgroup for this run; check /sys/fs/cgroup is writable")
        if not (run.cgroup is not None and run.cgroup.memory_limited):
            run.notices.append(
                f"memory_mb={self.memory_mb} limits each process's address space only: no memory cgroup could be "
                "made here, so the run as a whole (several processes, memfd or tmpfs files) is not capped"
            )
        scratch = None
        guard: RunGuard | None = None
        try:
            if self.workspace is not None and self.confined:
                interpreter = [*self._python_dirs, *self.extra_ro_paths]
                candidate = RunGuard(self.workspace, interpreter, self.allow_protected_writes)
                await asyncio.to_thread(candidate.before)
                guard = candidate  # from here on, after() must run
            if self.confined:
                read_only, placeholders = (guard.read_only, guard.placeholders) if guard else ([], [])
                cmd, cwd = self.bwrap_args("/tmp/main.py", read_only, placeholders), None
                # bwrap itself starts with the sandbox's environment, never the agent's (API keys, tokens).
                env = self._env(home="/tmp")
                watched = self.workspace
            else:
                scratch = tempfile.mkdtemp(prefix="agentkit-unconfined-")
                cwd = str(self.workspace) if self.workspace is not None else scratch
                cmd, env = self._python_cmd(os.path.join(scratch, "main.py")), self._env(home=scratch)
                watched = Path(cwd)
            run.watch = WriteWatch(self.max_write_mb * 1024 * 1024, self.max_write_files, watched)
            frozen = set(guard.read_only if guard else ())  # read-only inside: the run cannot have written there
            run.watch.skip = frozen.__contains__
            result = await self._execute(cmd, cwd, env, code.encode("utf-8"), run)
        finally:
            if run.cgroup is not None:
                await asyncio.to_thread(run.cgroup.close)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            if guard is not None:
                run.notices += await asyncio.to_thread(guard.after)
        return dataclasses.replace(result, notices=tuple(run.notices))

    async def _execute(
        self, cmd: list[str], cwd: str | None, env: dict[str, str], code: bytes, run: _Run
    ) -> ExecResult:
        info_r, info_w = os.pipe()
        ready_r, ready_w = os.pipe()
        keep: list[int] = [ready_w]  # descriptors the child inherits
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
        cmd = [str(ready_w) if a == _READY_MARK else a for a in cmd]
        out, err = _CappedReader(self.max_output_bytes), _CappedReader(self.max_output_bytes)
        cgroup = run.cgroup
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
                preexec_fn=cgroup.join_from_child if cgroup is not None and cgroup.dirs else None,
            )
        except (OSError, subprocess.SubprocessError) as exc:  # the latter: joining the cgroup failed
            os.close(info_r)
            os.close(ready_r)
            raise SandboxError(f"could not start {cmd[0]}: {exc}") from exc
        finally:
            for fd in {info_w, *keep}:
                os.close(fd)
        timed_out = False
        info = bytearray()
        readers = asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr), self._feed(proc, code))
        watcher = asyncio.create_task(self._watch(proc, run, info_r, info, ready_r))
        try:
            waiting: list[asyncio.Future[Any]] = [asyncio.ensure_future(asyncio.shield(readers)), watcher]
            done, _ = await asyncio.wait(
                waiting,
                timeout=self.timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                timed_out = True
                _kill_group(proc.pid)
            # Confined, the pipes close when the PID namespace dies; unconfined, a daemonized child may keep
            # them open, so reading stops a moment after the group is gone.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(readers), 2.0)
            await proc.wait()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if proc.returncode is None:  # cancelled: take everything down before returning
                _kill_group(proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    await proc.wait()
            if not readers.done():
                readers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await readers
            info += _read_all(info_r)
            started = run.started or bool(_read_all(ready_r))
        duration = time.perf_counter() - start
        if not started and not timed_out and not run.limits_hit:
            msg = err.text().strip() or f"exit status {proc.returncode}"
            if self.confined and not info:
                raise SandboxError(
                    f"bubblewrap could not set up the sandbox: {msg}. It needs unprivileged user namespaces "
                    "(on Ubuntu 24.04 they are restricted by AppArmor; see the bubblewrap documentation)"
                )
            raise SandboxError(f"the sandbox could not start Python ({self.python}): {msg}")
        if cgroup is not None and (kills := cgroup.oom_kills()):
            run.limits_hit.append("memory")
            run.notices.insert(
                0,
                f"the run reached its memory limit of {self.memory_mb} MB (all its processes together, plus 32 MB "
                f"for the sandbox's own processes): the kernel killed {kills} process(es)",
            )
        return ExecResult(
            stdout=out.text(),
            stderr=err.text(),
            exit_code=proc.returncode if proc.returncode is not None else -signal.SIGKILL,
            timed_out=timed_out,
            duration_s=duration,
            stdout_truncated=bool(out.dropped),
            stderr_truncated=bool(err.dropped),
            limits_hit=tuple(run.limits_hit),
            notices=tuple(run.notices),
        )

    async def _watch(
        self, proc: asyncio.subprocess.Process, run: _Run, info_r: int, info: bytearray, ready_r: int
    ) -> None:
        """Poll the run's writes against its budget; kill it when over. Returns only then."""
        watch = run.watch
        assert watch is not None
        os.set_blocking(info_r, False)
        os.set_blocking(ready_r, False)
        tmpfs: list[int] = []  # descriptors of the run's own tmpfs mounts, opened once it is running
        try:
            while True:
                await asyncio.sleep(POLL_S)
                if not run.started:
                    with contextlib.suppress(BlockingIOError, OSError):
                        run.started = bool(os.read(ready_r, 1))
                if run.started and self.confined and not tmpfs:
                    with contextlib.suppress(BlockingIOError, OSError):
                        info += os.read(info_r, 65536)
                    # Only now is PID 1 inside the sandbox's root; a descriptor keeps pointing at the same mount
                    # even if the PID is later reused by a process of the host.
                    tmpfs = _open_tmpfs(_child_pid(bytes(info)), with_workspace=self.workspace is None)
                if not watch.may_be_over(tmpfs):
                    continue
                used = await asyncio.to_thread(watch.over, tmpfs)
                if used is not None:
                    name, sentence = watch.describe(used)
                    run.limits_hit.append(name)
                    run.notices.insert(0, sentence)
                    _kill_group(proc.pid)
                    return
        finally:
            for fd in tmpfs:
                os.close(fd)

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


def _child_pid(info: bytes) -> int | None:
    """The host PID of the sandbox's PID 1, from what bwrap wrote to ``--info-fd`` (once it is complete)."""
    try:
        pid = json.loads(info).get("child-pid")
    except (ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) else None


def _open_tmpfs(pid: int | None, with_workspace: bool) -> list[int]:
    """Descriptors of a running sandbox's tmpfs mounts, reached from the host through ``/proc/PID/root``."""
    if pid is None:
        return []
    fds = []
    for mount in ["tmp", "dev/shm"] + (["workspace"] if with_workspace else []):
        host = set()
        for path in ("/", f"/{mount}"):
            with contextlib.suppress(OSError):
                host.add(os.stat(path).st_dev)
        try:
            fd = os.open(f"/proc/{pid}/root/{mount}", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        if os.fstat(fd).st_dev in host:  # the host's filesystem, not the run's fresh tmpfs: never measure it
            os.close(fd)
            continue
        fds.append(fd)
    return fds


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
