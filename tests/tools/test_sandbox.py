"""PythonSandbox as a user sees it: results, the workspace, the tool, and what happens without bubblewrap."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import venv
from pathlib import Path

import pytest

from agentkit.errors import SandboxError, SandboxUnavailable, UserError
from agentkit.tools import ExecResult, PythonSandbox, Workspace
from agentkit.tools.runtime import to_response_value

from .conftest import host_processes_with, needs_bwrap

pytestmark = [needs_bwrap, pytest.mark.bwrap]


def test_print_and_exit_codes(sandbox: PythonSandbox) -> None:
    result = sandbox.run("print(1)")
    notices = result.notices  # says so when this machine cannot cap the whole run's memory
    assert result == ExecResult("1\n", "", 0, False, result.duration_s, notices=notices)
    assert bool(notices) == (not sandbox.memory_cap)
    assert result.ok and result.duration_s > 0
    assert sandbox.run("import sys; print('bye'); sys.exit(3)").exit_code == 3
    failed = sandbox.run("x = 1\nraise ValueError('boom')")
    assert failed.exit_code == 1 and not failed.ok
    # The traceback shows the user's program only, not the bootstrap around it.
    assert failed.stderr.splitlines() == [
        "Traceback (most recent call last):",
        '  File "/tmp/main.py", line 2, in <module>',
        "    raise ValueError('boom')",
        "ValueError: boom",
    ]


def test_code_that_is_not_a_string_is_a_user_error() -> None:
    with pytest.raises(UserError, match="takes the code as a string, got int"):
        PythonSandbox(allow_unsafe_unconfined=True).run(1)  # type: ignore[arg-type]


def test_environment_inside(sandbox: PythonSandbox) -> None:
    code = (
        "import os, sys, httpx\n"
        "print(os.getcwd(), os.getuid(), os.environ['HOME'])\n"
        "print(sorted(os.listdir('/etc')))\n"
        "print(os.getpid(), sys.argv)\n"
        "try:\n    input()\nexcept EOFError:\n    print('stdin is empty')\n"
    )
    lines = sandbox.run(code).stdout.splitlines()
    assert lines[0] == "/workspace 1000 /tmp"  # site-packages importable (httpx), not root
    assert "shadow" not in lines[1] and "passwd" not in lines[1]
    assert lines[2] == "2 ['/tmp/main.py']"  # PID 1 is bubblewrap's reaper in the sandbox's own namespace
    assert lines[3] == "stdin is empty"


def test_workspace_is_shared_and_the_only_writable_place(workspace_dir: Path) -> None:
    (workspace_dir / "input.csv").write_text("a,b\n1,2\n")
    box = PythonSandbox(Workspace(workspace_dir), timeout_s=5)
    out = box.run(
        "rows = open('input.csv').read().splitlines()\n"
        "open('result.txt', 'w').write(str(len(rows)))\n"
        "open('/tmp/scratch', 'w').write('private')\n"
        "print(open('/tmp/scratch').read())\n"
    )
    assert out.stdout == "private\n", out.stderr
    assert (workspace_dir / "result.txt").read_text() == "2"
    assert not Path("/tmp/scratch").exists() or Path("/tmp/scratch").read_text() != "private"


def test_without_workspace_the_scratch_dir_is_discarded() -> None:
    box = PythonSandbox(timeout_s=5)
    assert box.run("open('keep.txt', 'w').write('x'); print('ok')").stdout == "ok\n"
    assert "FileNotFoundError" in box.run("open('keep.txt')").stderr


def test_output_is_capped_and_marked(sandbox: PythonSandbox) -> None:
    result = sandbox.run("import sys\nsys.stdout.write('a' * 50_000)\nsys.stderr.write('e' * 20)")
    assert result.stdout_truncated and not result.stderr_truncated
    assert result.stdout.startswith("a" * 10_000)
    assert result.stdout.endswith("[... output truncated: 40000 more bytes not shown]")
    assert result.stderr == "e" * 20


async def test_tool_is_async_marked_and_returns_the_result(sandbox: PythonSandbox) -> None:
    run_python = sandbox.as_tool()
    assert run_python.name == "run_python" and run_python.side_effects and run_python.is_async
    assert "no network access" in run_python.description
    result = await run_python.acall({"code": "print(6 * 7)"})
    assert isinstance(result, ExecResult) and result.stdout == "42\n"
    assert to_response_value(result)["stdout"] == "42\n"


async def test_runs_are_concurrent_and_keep_the_loop_free(sandbox: PythonSandbox, workspace_dir: Path) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    results = await asyncio.gather(*(sandbox.arun(f"import time; time.sleep(0.5); print({i})") for i in range(3)))
    task.cancel()
    assert [r.stdout for r in results] == ["0\n", "1\n", "2\n"]
    assert ticks > 10  # the event loop kept running while the sandboxes did
    assert os.listdir(workspace_dir) == []  # the runs shared their placeholders (.git, ...) and removed them


async def test_cancelling_a_run_kills_it(sandbox: PythonSandbox) -> None:
    task = asyncio.create_task(sandbox.arun("import time; time.sleep(60)"))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert host_processes_with(sandbox.id) == []


async def test_sync_run_inside_a_loop_says_what_to_do(sandbox: PythonSandbox) -> None:
    with pytest.raises(UserError, match=r"await sandbox\.arun"):
        sandbox.run("print(1)")


def test_network_flag_shares_the_host_network(workspace_dir: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    port = server.getsockname()[1]
    try:
        box = PythonSandbox(workspace_dir, timeout_s=5, network=True)
        assert "--share-net" in box.bwrap_args("/tmp/main.py")
        result = box.run(f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('ok')")
        assert result.stdout == "ok\n", result.stderr
        server.accept()[0].close()
    finally:
        server.close()


def test_command_line_confines(sandbox: PythonSandbox, workspace_dir: Path) -> None:
    args = sandbox.bwrap_args("/tmp/main.py")
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in args
    assert "--share-net" not in args
    assert args[args.index("--bind") + 1 : args.index("--bind") + 3] == [str(workspace_dir), "/workspace"]
    assert args.count("--bind") == 1  # the workspace is the only read-write host directory
    assert ("--ro-bind", "/etc", "/etc") not in zip(args, args[1:], args[2:], strict=False)


def test_missing_bubblewrap_refuses_with_install_hint(monkeypatch: pytest.MonkeyPatch, workspace_dir: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)  # what a machine without bwrap looks like
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        PythonSandbox(workspace_dir)
    unsafe = PythonSandbox(workspace_dir, timeout_s=5, allow_unsafe_unconfined=True)
    assert not unsafe.confined
    result = unsafe.run("import os; open('made.txt', 'w').write('x'); print(os.getcwd())")
    assert result.stdout.strip() == str(workspace_dir) and (workspace_dir / "made.txt").exists()
    assert unsafe.run("import time; time.sleep(30)").timed_out  # limits and the timeout still apply


def test_bad_settings_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError):
        PythonSandbox(timeout_s=0)
    with pytest.raises(UserError, match="not a directory"):
        PythonSandbox(tmp_path / "missing")


def test_seccomp_filter_program() -> None:
    from agentkit.tools.sandbox._seccomp import filter_program

    x86 = filter_program("x86_64")
    arm = filter_program("aarch64")
    assert x86 is not None and arm is not None
    # arch check, x32 check (x86-64 only), 13 refused calls, openat2, 5 instructions per mode rule, allow
    assert len(x86) % 8 == 0 and len(x86) // 8 == 4 + 2 + 2 * 13 + 2 + 5 * 11 + 1
    assert len(arm) // 8 == 4 + 2 * 13 + 2 + 5 * 6 + 1
    assert filter_program("riscv64") is None  # no table here: the sandbox runs without the filter


@pytest.mark.parametrize(
    ("workspace", "why"),
    [("/", "would expose the whole system"), ("/proc", "would expose the whole system"), (5, "must be a folder path")],
)
def test_workspace_root_checks_match_the_file_tools(workspace: object, why: str) -> None:
    with pytest.raises(UserError, match=why):
        PythonSandbox(workspace=workspace)  # type: ignore[arg-type]


# -- any interpreter ---------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _venv_with_package(where: Path, system_site: bool) -> Path:
    """A real venv (no pip: fast) with a module of its own in its site-packages."""
    venv.EnvBuilder(system_site_packages=system_site, with_pip=False, symlinks=True).create(where)
    site = next(where.glob("lib/python*/site-packages"))
    (site / "agentkit_venv_only.py").write_text("WHERE = 'from the venv'\n")
    return where / "bin" / "python"


def _run_in(python: Path, code: str) -> subprocess.CompletedProcess[str]:
    driver = (
        "import sys\nfrom agentkit.tools import PythonSandbox\n"
        f"r = PythonSandbox(timeout_s=20).run({code!r})\n"
        "print(r.stdout, end=''); print(r.stderr, file=sys.stderr, end=''); sys.exit(r.exit_code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(python), "-c", driver], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("location", ["tmp", "home"])
def test_sandbox_from_a_venv_anywhere(tmp_path: Path, location: str) -> None:
    # Under /tmp the interpreter used to be bound and then hidden by the sandbox's own /tmp; elsewhere only the
    # venv's prefix was bound, so the base interpreter's packages (httpx) were missing inside.
    base = tmp_path if location == "tmp" else Path.home() / ".cache"
    base.mkdir(exist_ok=True)
    where = Path(base) / f"agentkit-venv-{os.getpid()}-{location}"
    try:
        python = _venv_with_package(where, system_site=True)
        done = _run_in(python, "import agentkit_venv_only, httpx, sys\nprint(agentkit_venv_only.WHERE, sys.prefix)")
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"from the venv {where}\n"
    finally:
        shutil.rmtree(where, ignore_errors=True)


def test_another_interpreter_a_venv_without_system_packages(tmp_path: Path) -> None:
    # python= names a venv's interpreter: its own packages are importable, the base's are not (as outside).
    python = _venv_with_package(tmp_path / "isolated", system_site=False)
    box = PythonSandbox(timeout_s=10, python=str(python))
    done = box.run("import agentkit_venv_only\ntry:\n    import httpx\nexcept ImportError:\n    print('no httpx')")
    assert done.exit_code == 0 and done.stdout == "no httpx\n", done.stderr


def test_failed_start_is_an_error_not_a_result(workspace_dir: Path) -> None:
    box = PythonSandbox(workspace_dir, timeout_s=5)
    box.python = "/nonexistent/bin/python3"  # bwrap sets up the sandbox, then cannot exec the interpreter
    with pytest.raises(SandboxError, match="could not start Python"):
        box.run("print(1)")


def test_unconfined_runs_keep_the_write_budget(monkeypatch: pytest.MonkeyPatch, workspace_dir: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    for where in (workspace_dir, None):  # the workspace, and the scratch directory made on the host
        box = PythonSandbox(where, timeout_s=20, allow_unsafe_unconfined=True, max_write_files=100)
        result = box.run("i = 0\nwhile True:\n    open(f'f{i}', 'w').close()\n    i += 1\n")
        assert result.limits_hit == ("write_files",) and not result.timed_out, result


def test_write_watch_never_measures_the_hosts_disk() -> None:
    # bwrap reports PID 1's host PID before PID 1 has entered the sandbox's root (or after its PID was reused):
    # /proc/PID/root/tmp is then the host's /tmp, and a run was killed for the host's disk usage.
    from agentkit.tools.sandbox._process import _open_tmpfs

    assert _open_tmpfs(os.getpid(), with_workspace=True) == []  # this process's /tmp, /dev/shm: the host's


def test_many_quick_runs_are_not_stopped_by_the_write_budget(workspace_dir: Path) -> None:
    box = PythonSandbox(workspace_dir, timeout_s=10)
    results = [box.run("print(1)") for _ in range(10)]
    assert [(r.stdout, r.limits_hit) for r in results] == [("1\n", ())] * 10


def test_writes_within_budget_are_fine(workspace_dir: Path) -> None:
    box = PythonSandbox(workspace_dir, timeout_s=20, max_write_mb=8, max_write_files=50)
    result = box.run("for i in range(20):\n    open(f'f{i}', 'wb').write(b'x' * 100_000)\nprint('ok')")
    assert result.ok and result.stdout == "ok\n" and result.limits_hit == (), result


def test_project_files_stay_writable_in_the_sandbox(sandbox: PythonSandbox, workspace_dir: Path) -> None:
    names = ["pyproject.toml", "package.json", "Makefile", "Cargo.toml", "build.rs", ".env", ".nvmrc", "misc.toml"]
    result = sandbox.run(f"for n in {names!r}:\n    open(n, 'w').write('ok')\nprint('wrote')")
    assert result.stdout == "wrote\n" and result.notices == ()
    assert sorted(p.name for p in workspace_dir.iterdir()) == sorted(names)
