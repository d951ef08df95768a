"""Running one sandbox process: start it, feed it the code, read its output, watch its writes, end it.

Why nothing outlives a run: the bootstrap is PID 1 and ends with the program, and ``--die-with-parent``
ties it to the outer bwrap, which leads its own process group on the host (``start_new_session``). At the
timeout, when the write budget is exceeded, or on cancellation that group is killed. Either way PID 1 dying
makes the kernel kill every process in the namespace, daemons and double-forks included.

Three pipes tell the host what happened inside: bwrap's ``--info-fd`` (written once the sandbox is set up;
its ``child-pid`` is PID 1's host PID, through which the run's own tmpfs mounts are measured), the
bootstrap's ``ready`` pipe (the interpreter started and set its limits) and ``--seccomp`` (the filter, read
by bwrap before it starts). Silence on both of the first two means the sandbox never started, which the
caller turns into an error rather than a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import time
from typing import Any

from agentkit.errors import SandboxError

from ._bootstrap import READY_MARK
from ._cgroup import RunCgroup
from ._result import CappedReader, ExecResult
from ._seccomp import filter_program
from ._writes import POLL_S, WriteWatch

__all__ = ["Run", "execute"]


@dataclasses.dataclass
class Run:
    """One start of a sandbox: its command, limits and watchers, and what watching it found out."""

    cmd: list[str]
    cwd: str | None
    env: dict[str, str]
    confined: bool  # run under bwrap (else: the bare interpreter, with limits only)
    timeout_s: float
    max_output_bytes: int
    watch: WriteWatch
    scratch_workspace: bool = False  # /workspace is the run's own tmpfs, measured like /tmp
    cgroup: RunCgroup | None = None
    limits_hit: list[str] = dataclasses.field(default_factory=list)
    notices: list[str] = dataclasses.field(default_factory=list)
    started: bool = False  # the bootstrap reported that it runs (the sandbox is set up)
    set_up: bool = False  # bwrap reported that the sandbox is set up (said something on --info-fd)


async def execute(run: Run, code: bytes) -> ExecResult:
    """Run to the end, the timeout or the write budget; sets ``run.started`` and ``run.set_up``.

    Raises :class:`SandboxError` only when the process cannot be started at all; a sandbox that started
    and failed inside is the caller's to judge (``run.started``/``run.set_up``).
    """
    info_r, info_w = os.pipe()
    ready_r, ready_w = os.pipe()
    keep: list[int] = [ready_w]  # descriptors the child inherits
    cmd = run.cmd
    if run.confined:  # bwrap writes to this pipe once the sandbox is set up: silence means it failed
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
    cmd = [str(ready_w) if a == READY_MARK else a for a in cmd]
    out, err = CappedReader(run.max_output_bytes), CappedReader(run.max_output_bytes)
    cgroup = run.cgroup
    start = time.perf_counter()
    spawn = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=run.cwd,
            env=run.env,
            start_new_session=True,  # its own process group, killed as a whole
            pass_fds=tuple(keep),
            preexec_fn=cgroup.join_from_child if cgroup is not None and cgroup.dirs else None,
        )
    )
    try:
        # Shielded: asyncio's own clean-up of a start cancelled midway (Ctrl-C as the call begins) can wait
        # forever for pipes that were never connected (CPython 3.11), so the interrupt was lost and the call
        # hung until the tool's timeout. The start is let finish and its process taken down here instead.
        proc = await asyncio.shield(spawn)
    except asyncio.CancelledError:
        os.close(info_r)
        os.close(ready_r)
        with contextlib.suppress(Exception):  # a start that failed has nothing to take down
            started = await spawn
            _kill_group(started.pid)
            await started.wait()
        raise
    except (OSError, subprocess.SubprocessError) as exc:  # the latter: joining the cgroup failed
        os.close(info_r)
        os.close(ready_r)
        raise SandboxError(f"could not start {cmd[0]}: {exc}") from exc
    finally:
        for fd in {info_w, *keep}:
            os.close(fd)
    timed_out = False
    info = bytearray()
    readers = asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr), _feed(proc, code))
    watcher = asyncio.create_task(_watch(proc, run, info_r, info, ready_r))
    try:
        waiting: list[asyncio.Future[Any]] = [asyncio.ensure_future(asyncio.shield(readers)), watcher]
        done, _ = await asyncio.wait(waiting, timeout=run.timeout_s, return_when=asyncio.FIRST_COMPLETED)
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
        run.started = run.started or bool(_read_all(ready_r))
        run.set_up = bool(info)
    return ExecResult(
        stdout=out.text(),
        stderr=err.text(),
        exit_code=proc.returncode if proc.returncode is not None else -signal.SIGKILL,
        timed_out=timed_out,
        duration_s=time.perf_counter() - start,
        stdout_truncated=bool(out.dropped),
        stderr_truncated=bool(err.dropped),
    )


async def _watch(proc: asyncio.subprocess.Process, run: Run, info_r: int, info: bytearray, ready_r: int) -> None:
    """Poll the run's writes against its budget; kill it when over. Returns only then."""
    watch = run.watch
    os.set_blocking(info_r, False)
    os.set_blocking(ready_r, False)
    tmpfs: list[int] = []  # descriptors of the run's own tmpfs mounts, opened once it is running
    try:
        while True:
            await asyncio.sleep(POLL_S)
            if not run.started:
                with contextlib.suppress(BlockingIOError, OSError):
                    run.started = bool(os.read(ready_r, 1))
            if run.started and run.confined and not tmpfs:
                with contextlib.suppress(BlockingIOError, OSError):
                    info += os.read(info_r, 65536)
                # Only now is PID 1 inside the sandbox's root; a descriptor keeps pointing at the same mount
                # even if the PID is later reused by a process of the host.
                tmpfs = _open_tmpfs(_child_pid(bytes(info)), with_workspace=run.scratch_workspace)
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


async def _feed(proc: asyncio.subprocess.Process, code: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(code)
        await proc.stdin.drain()
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the sandbox died before reading its code; its exit status says why


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
