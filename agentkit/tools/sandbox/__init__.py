"""Run model-written Python under bubblewrap: no network, read-only system, one writable directory.

What a run sees (:meth:`PythonSandbox.bwrap_args`, assembled in :mod:`._command`): new user, PID, network,
IPC, UTS and cgroup namespaces (``--unshare-all``; the network is kept only with ``network=True``); a
read-only ``/usr``, the interpreter (a virtual environment and its base) and a handful of ``/etc`` files
needed by the dynamic loader and TLS — not ``/etc`` as a whole (no ``/etc/shadow``), not ``/home`` or
``/root``; a fresh ``/proc`` of its own PID namespace and a minimal ``/dev``; size-capped tmpfs at ``/tmp``
and ``/dev/shm``; the workspace bound read-write at ``/workspace`` (the working directory) as the only host
directory it can change, except the host-executed configuration in it, which is read-only
(:mod:`._run_guard`). All capabilities are dropped, nested user namespaces are disabled, ``/proc`` is
read-only, and a seccomp filter (:mod:`._seccomp`) refuses kernel keyrings, bpf, perf, userfaultfd,
io_uring, ptrace and setuid/setgid file modes.

Why the host does not show through ``/proc/1``: bwrap's own PID 1 would be a copy of the bwrap process,
with the agent's environment (API keys), bwrap's command line (every host path mounted) and its memory,
readable at the sandbox's uid. So bwrap starts with the sandbox's minimal environment and ``--as-pid-1``
makes agentkit's bootstrap (:mod:`._bootstrap`) PID 1: it sets hard rlimits, forks the program, reaps
orphans and exits with the program's status. Starting, watching and ending the process: :mod:`._process`.

Run-wide limits: memory and, as root, processes come from a cgroup per run (:mod:`._cgroup`; the kernel
exempts uid 0 from ``RLIMIT_NPROC``, so as root without a pids cgroup the sandbox refuses to start); bytes
and files written from a watcher on the host (:mod:`._writes`). A sandbox that cannot start raises
:class:`~agentkit.errors.SandboxError`, so a broken setup never looks like a program that ran.
"""

from __future__ import annotations

from ._command import SANDBOX_WORKDIR
from ._python import PythonSandbox
from ._result import ExecResult

__all__ = ["SANDBOX_WORKDIR", "ExecResult", "PythonSandbox"]
