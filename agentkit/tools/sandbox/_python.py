"""The :class:`PythonSandbox` itself: its settings, one run from start to result, and the tool the model calls.

A run is prepared here (its cgroup, the workspace's read-only entries, the write watch), its command line is
made by :mod:`._command`, its process run by :mod:`._process`; what is left is deciding what the outcome
means: a result, or a :class:`~agentkit.errors.SandboxError` when the sandbox itself never started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from agentkit.errors import SandboxError, SandboxUnavailable, UserError
from agentkit.tools.runtime import FunctionToolset, Tool, tool
from agentkit.tools.workspace import Workspace

from ._cgroup import RunCgroup
from ._command import bwrap_command, interpreter_dirs, python_command, rlimits, sandbox_env
from ._process import Run, execute
from ._result import ExecResult
from ._run_guard import RunGuard
from ._writes import WriteWatch

__all__ = ["PythonSandbox"]

_INSTALL_HINT = "install bubblewrap: apt-get install bubblewrap (or your distribution's 'bubblewrap' package)"
_RUN_MEMORY_ALLOWANCE = 32 * 1024 * 1024


class PythonSandbox(FunctionToolset):
    """Runs Python code in a bubblewrap sandbox; ``run`` (sync), ``arun`` (async), and a toolset named
    ``sandbox`` whose one tool is ``run_python`` (``as_tool(name)`` makes it under another name).

    ``workspace`` (a :class:`Workspace` or a directory) is mounted read-write at ``/workspace``; without one
    the code gets an empty scratch ``/workspace`` that is discarded. ``memory_mb`` caps the whole run (all its
    processes, tmpfs files included) where a memory cgroup can be made, and each process's address space
    always. ``max_processes`` limits the processes and threads of one run. ``max_write_mb`` and
    ``max_write_files`` are the run's write budget (workspace growth plus its tmpfs mounts). The workspace's
    host-executed configuration (``.git``, ``.envrc``, ``.npmrc``, ``.venv``, ...: :mod:`agentkit.tools._protected`) is
    read-only inside unless ``allow_protected_writes=True``. ``network=True`` keeps the host's network.
    ``allow_unsafe_unconfined=True`` lets the code run *without any isolation* when bubblewrap is missing
    (limits and timeout still apply) — only for code you would run yourself.
    """

    name = "sandbox"

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
        self.id = f"agentkit-sandbox-{secrets.token_hex(6)}"
        self.bwrap = shutil.which("bwrap")
        if self.bwrap is None and not allow_unsafe_unconfined:
            raise SandboxUnavailable(
                f"bubblewrap (bwrap) is not installed, so Python code cannot be confined; {_INSTALL_HINT}. "
                "To run code without any isolation anyway, pass allow_unsafe_unconfined=True."
            )
        self.confined = self.bwrap is not None
        self._python_dirs = interpreter_dirs(self.python)
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

    def _python_cmd(self, main: str) -> list[str]:
        limits = rlimits(self.timeout_s, self._memory_bytes(), self.max_file_mb, self.max_processes)
        return python_command(self.python, main, limits)

    def bwrap_args(self, main: str, protected: Sequence[str] = (), placeholders: Sequence[str] = ()) -> list[str]:
        """The full bubblewrap command line for one run (exposed so the confinement can be inspected).

        ``protected`` are workspace-relative paths bound read-only over the workspace; ``placeholders`` are
        protected names absent from it, covered by an empty read-only directory so the code cannot create them.
        """
        assert self.bwrap is not None
        return bwrap_command(
            self.bwrap,
            self._python_cmd(main),
            sandbox_env("/tmp", self.id),
            workspace=self.workspace,
            network=self.network,
            tmp_mb=self.tmp_mb,
            read_only_dirs=[*self._python_dirs, *self.extra_ro_paths],
            protected=protected,
            placeholders=placeholders,
        )

    # -- running -------------------------------------------------------------------------------------

    async def arun(self, code: str) -> ExecResult:
        """Run ``code`` and wait for it (at most ``timeout_s``); never raises for failures of the code itself.

        Raises :class:`SandboxError` when the sandbox or the interpreter inside it could not be started, so a
        broken setup is an error and never looks like a program that ran.
        """
        if not isinstance(code, str):
            raise UserError(f"PythonSandbox.run() takes the code as a string, got {type(code).__name__}")
        cgroup = self._run_cgroup()
        notices: list[str] = []
        if not (cgroup is not None and cgroup.memory_limited):
            notices.append(
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
                env = sandbox_env("/tmp", self.id)
                watched = self.workspace
            else:
                scratch = tempfile.mkdtemp(prefix="agentkit-unconfined-")
                cwd = str(self.workspace) if self.workspace is not None else scratch
                cmd, env = self._python_cmd(os.path.join(scratch, "main.py")), sandbox_env(scratch, self.id)
                watched = Path(cwd)
            watch = WriteWatch(self.max_write_mb * 1024 * 1024, self.max_write_files, watched)
            frozen = set(guard.read_only if guard else ())  # read-only inside: the run cannot have written there
            watch.skip = frozen.__contains__
            run = Run(
                cmd,
                cwd,
                env,
                confined=self.confined,
                timeout_s=self.timeout_s,
                max_output_bytes=self.max_output_bytes,
                watch=watch,
                scratch_workspace=self.workspace is None,
                cgroup=cgroup,
                notices=notices,
            )
            result = await execute(run, code.encode("utf-8"))
            self._check_started(run, result)
            if cgroup is not None and (kills := cgroup.oom_kills()):
                run.limits_hit.append("memory")
                run.notices.insert(
                    0,
                    f"the run reached its memory limit of {self.memory_mb} MB (all its processes together, plus "
                    f"32 MB for the sandbox's own processes): the kernel killed {kills} process(es)",
                )
        finally:
            if cgroup is not None:
                await asyncio.to_thread(cgroup.close)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            if guard is not None:
                notices += await asyncio.to_thread(guard.after)
        return dataclasses.replace(result, limits_hit=tuple(run.limits_hit), notices=tuple(notices))

    def _run_cgroup(self) -> RunCgroup | None:
        """This run's cgroup where one is wanted: the pids limit as root, the memory cap where it can be made."""
        if not (self._needs_pids_cgroup or self.memory_cap):
            return None
        cgroup = RunCgroup.create(
            self._pids_limit() if self._needs_pids_cgroup else None,
            self._run_memory_bytes() if self.memory_cap else None,
        )
        if self._needs_pids_cgroup and not cgroup.pids_limited:
            cgroup.close()
            raise SandboxError("could not create a pids cgroup for this run; check /sys/fs/cgroup is writable")
        return cgroup

    def _check_started(self, run: Run, result: ExecResult) -> None:
        """Raise when the sandbox never got as far as running the code (a setup failure, not the code's)."""
        if run.started or result.timed_out or run.limits_hit:
            return
        msg = result.stderr.strip() or f"exit status {result.exit_code}"
        if self.confined and not run.set_up:
            raise SandboxError(
                f"bubblewrap could not set up the sandbox: {msg}. It needs unprivileged user namespaces "
                "(on Ubuntu 24.04 they are restricted by AppArmor; see the bubblewrap documentation)"
            )
        raise SandboxError(f"the sandbox could not start Python ({self.python}): {msg}")

    def run(self, code: str) -> ExecResult:
        """Blocking wrapper over :meth:`arun`; inside a running event loop use ``await arun(code)`` instead."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(code))
        raise UserError("PythonSandbox.run() was called inside a running event loop; use 'await sandbox.arun(code)'")

    def make_tools(self) -> list[Tool]:
        return [self.as_tool()]

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
