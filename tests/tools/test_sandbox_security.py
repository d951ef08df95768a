"""Escape attempts: each must fail inside the sandbox (or through the workspace tools) and leave the host as it was.

Every test is one attempt; ``tools/bench/sandbox_security.py`` runs this file and reports attempts tried,
attempts blocked and host processes left over. The ``sandbox`` fixture (conftest) additionally checks after
each test that no process of the sandbox is left on the host.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentkit.errors import ToolError
from agentkit.tools import PythonSandbox, Workspace
from agentkit.tools._protected import LIVE_NAMES

from .conftest import host_processes_with, needs_bwrap

pytestmark = [needs_bwrap, pytest.mark.bwrap]

# Attempts print BLOCKED (with the reason) when the operation failed; anything else means it got through.
TRY = """
try:
{body}
    print("ESCAPED")
except Exception as exc:
    print("BLOCKED", type(exc).__name__, exc)
"""


def attempt(sandbox: PythonSandbox, body: str) -> str:
    code = TRY.format(body="\n".join("    " + line for line in body.strip().splitlines()))
    result = sandbox.run(code)
    assert "ESCAPED" not in result.stdout, result.stdout
    assert result.stdout.startswith("BLOCKED"), (result.stdout, result.stderr)
    return result.stdout


@pytest.fixture()
def host_secret() -> Iterator[Path]:
    """A file planted in the host user's home directory, outside any workspace."""
    path = Path.home() / f".agentkit-test-secret-{secrets.token_hex(4)}"
    path.write_text("HOST-SECRET\n")
    path.chmod(0o600)
    yield path
    path.unlink()


# -- network ----------------------------------------------------------------------------------------


def test_escape_tcp_to_host_loopback(sandbox: PythonSandbox) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    try:
        attempt(sandbox, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)")
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing ever reached the host's listener
    finally:
        server.close()


@pytest.mark.parametrize("address", [("1.1.1.1", 443), ("8.8.8.8", 53), ("2606:4700:4700::1111", 443)])
def test_escape_tcp_external(sandbox: PythonSandbox, address: tuple[str, int]) -> None:
    out = attempt(sandbox, f"import socket\nsocket.create_connection({address!r}, timeout=1)")
    assert "unreachable" in out.lower()


def test_escape_dns_lookup(sandbox: PythonSandbox) -> None:
    attempt(sandbox, "import socket\nsocket.getaddrinfo('example.com', 443)")


# -- files ------------------------------------------------------------------------------------------


def test_escape_read_etc_shadow(sandbox: PythonSandbox) -> None:
    attempt(sandbox, "print(open('/etc/shadow').read())")


def test_escape_read_file_in_host_home(sandbox: PythonSandbox, host_secret: Path) -> None:
    attempt(sandbox, f"print(open({str(host_secret)!r}).read())")
    out = sandbox.run(f"import os\nprint(sorted(os.listdir({str(host_secret.parent)!r})))").stdout
    assert host_secret.name not in out and "HOST-SECRET" not in out


def test_escape_read_the_local_ray_clusters_token(
    sandbox: PythonSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token of a local cluster `agentkit batch --ray` started (RAY_AUTH_TOKEN_PATH in the agent's process)
    would let code connect to the cluster and run as the user outside the sandbox."""
    from agentkit.batch.ray_executor import _private_auth_token

    for name in ("RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE"):
        monkeypatch.setenv(name, "")  # recorded, so the variable set below is undone after the test
        monkeypatch.delenv(name)
    root = tmp_path / "agentkit-ray"
    root.mkdir(mode=0o700)
    token = _private_auth_token(root)
    assert token is not None
    try:
        secret = token.path.read_text()
        attempt(sandbox, "import os\nprint(open(os.environ['RAY_AUTH_TOKEN_PATH']).read())")
        attempt(sandbox, f"print(open({str(token.path)!r}).read())")
        out = sandbox.run("import os\nprint(sorted(os.environ.items()))").stdout
        assert secret not in out and "RAY_AUTH" not in out
    finally:
        token.remove()


def test_escape_write_outside_workspace(sandbox: PythonSandbox, workspace_dir: Path) -> None:
    outside = workspace_dir.parent / "outside.txt"
    home = Path.home() / f".agentkit-pwned-{secrets.token_hex(4)}"
    for target in (outside, home, Path("/usr/agentkit-pwned"), Path("/etc/agentkit-pwned"), Path("/agentkit-pwned")):
        attempt(sandbox, f"open({str(target)!r}, 'w').write('pwned')")
        assert not target.exists()
    # /tmp is writable but private: nothing appears in the host's /tmp.
    name = f"agentkit-pwned-{secrets.token_hex(4)}"
    assert sandbox.run(f"open('/tmp/{name}', 'w').write('x'); print('wrote')").stdout == "wrote\n"
    assert not (Path("/tmp") / name).exists()


def test_escape_follow_planted_symlink(sandbox: PythonSandbox, workspace_dir: Path, host_secret: Path) -> None:
    (workspace_dir / "to-secret").symlink_to(host_secret)
    (workspace_dir / "to-home").symlink_to(host_secret.parent)
    (workspace_dir / "to-shadow").symlink_to("/etc/shadow")
    for link in ("to-secret", f"to-home/{host_secret.name}", "to-shadow"):
        attempt(sandbox, f"print(open({link!r}).read())")
    attempt(sandbox, "open('to-home/pwned.txt', 'w').write('x')")
    assert not (host_secret.parent / "pwned.txt").exists()


def test_escape_via_proc_of_the_host(sandbox: PythonSandbox) -> None:
    # /proc is the sandbox's own: PID 1 is bubblewrap's reaper, not the host's init, and no host process is listed.
    out = sandbox.run("import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))").stdout
    assert out == "[1, 2]\n"
    attempt(sandbox, f"print(open('/proc/{os.getpid()}/environ').read())")


def test_escape_write_host_sysctl(sandbox: PythonSandbox) -> None:
    # Rewrites the current value (harmless if it ever got through); as root, sysctls only check the uid.
    before = Path("/proc/sys/vm/swappiness").read_text()
    attempt(sandbox, "p = '/proc/sys/vm/swappiness'\nopen(p, 'w').write(open(p).read())")
    attempt(sandbox, "p = '/proc/sys/kernel/core_pattern'\nopen(p, 'w').write(open(p).read())")
    assert Path("/proc/sys/vm/swappiness").read_text() == before


def test_escape_nested_user_namespace(sandbox: PythonSandbox) -> None:
    # A user namespace of its own would give the code capabilities (mount, more namespaces) inside the sandbox.
    attempt(
        sandbox,
        """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
""",
    )


@pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers below are x86-64's")
@pytest.mark.parametrize(
    ("name", "nr", "args"),
    [("keyctl", 250, (0, -4, 0)), ("bpf", 321, (0, 0, 0)), ("io_uring_setup", 425, (1, 0))],
)
def test_escape_shared_kernel_facilities(sandbox: PythonSandbox, name: str, nr: int, args: tuple[int, ...]) -> None:
    # Kernel keyrings are per uid (as root, the host's root keyring); bpf and io_uring are exploit surface.
    out = attempt(
        sandbox,
        f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
if libc.syscall({nr}, *{args!r}) < 0:
    raise OSError(ctypes.get_errno(), "{name}: " + os.strerror(ctypes.get_errno()))
""",
    )
    assert "Operation not permitted" in out


@pytest.mark.parametrize(
    "body",
    [
        "import os\nopen('tool', 'w').write('x')\nos.chmod('tool', 0o4755)",
        "import os\nos.close(os.open('tool', os.O_CREAT | os.O_WRONLY, 0o6755))",
        "import os\nos.mkdir('dir', 0o2775)",
    ],
    ids=["chmod", "open", "mkdir"],
)
def test_escape_plant_setuid_file(sandbox: PythonSandbox, workspace_dir: Path, body: str) -> None:
    # As root, files made in the workspace belong to root on the host: a setuid one would be a way up.
    assert "Operation not permitted" in attempt(sandbox, body)
    for path in workspace_dir.rglob("*"):
        assert not path.stat().st_mode & 0o6000, path


# -- resources --------------------------------------------------------------------------------------


def test_escape_fork_bomb(sandbox: PythonSandbox) -> None:
    out = attempt(
        sandbox,
        """
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as exc:
    raise OSError(f"stopped after {n} forks: {exc}") from None
""",
    )
    forks = int(out.split("stopped after ")[1].split()[0])
    assert forks < sandbox.max_processes  # type: ignore[operator]


def test_escape_exponential_fork_bomb(sandbox: PythonSandbox) -> None:
    result = sandbox.run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n")
    assert result.timed_out  # it spun until the timeout, capped in processes, then everything was killed


@pytest.mark.parametrize(
    "body", ["x = bytearray(2 * 1024**3)", "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024**2))"]
)
def test_escape_memory_bomb(sandbox: PythonSandbox, body: str) -> None:
    assert "MemoryError" in attempt(sandbox, body)


def test_escape_fill_tmpfs(sandbox: PythonSandbox) -> None:
    out = attempt(sandbox, "f = open('/tmp/fill', 'wb')\nwhile True:\n    f.write(b'x' * 1024**2)\n    f.flush()")
    assert "No space left" in out or "File too large" in out


def test_escape_100mb_of_output(sandbox: PythonSandbox) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = sandbox.run("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 1024**2)\n")
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.stdout_truncated and len(result.stdout) < 11_000
    assert "104847600 more bytes not shown" in result.stdout  # all of it was read (and dropped), none kept
    assert grew_mb < 30


def test_escape_infinite_loop(sandbox: PythonSandbox) -> None:
    result = sandbox.run("while True:\n    pass")
    assert result.timed_out and result.exit_code != 0
    assert result.duration_s < sandbox.timeout_s + 2


def test_escape_sleep_past_timeout(sandbox: PythonSandbox) -> None:
    result = sandbox.run("import time\nprint('started', flush=True)\ntime.sleep(60)\nprint('finished')")
    assert result.timed_out and result.stdout == "started\n"
    assert result.duration_s < sandbox.timeout_s + 2


# -- processes --------------------------------------------------------------------------------------


@pytest.fixture()
def sentinel() -> Iterator[subprocess.Popen[bytes]]:
    """A host process the sandbox would kill if signals could leave it."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize(
    "body",
    [
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nraise OSError('parent ignored SIGKILL')",
        "import os, signal\nos.kill(1, signal.SIGKILL)\nraise OSError('PID 1 ignored SIGKILL')",
        "import os, signal\nos.kill({host_pid}, signal.SIGKILL)",
    ],
    ids=["parent", "pid1", "host-pid"],
)
def test_escape_kill_the_parent(sandbox: PythonSandbox, sentinel: subprocess.Popen[bytes], body: str) -> None:
    attempt(sandbox, body.format(host_pid=sentinel.pid))
    assert sentinel.poll() is None  # the host process is alive


def test_escape_kill_everything(sandbox: PythonSandbox, sentinel: subprocess.Popen[bytes]) -> None:
    result = sandbox.run("import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('survived')")
    assert result.exit_code != 0  # kill -9 -1 took down only the sandbox itself
    assert sentinel.poll() is None
    os.kill(os.getpid(), 0)  # and this process, the sandbox's host, is fine


def test_escape_leave_background_process(sandbox: PythonSandbox) -> None:
    marker = f"agentkit-leftover-{secrets.token_hex(4)}"
    result = sandbox.run(
        f"""
import os, subprocess, sys
subprocess.Popen(["sleep", "300", "{marker}"], start_new_session=True)
if os.fork() == 0:  # classic daemon: double fork, new session, parent exits
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", "{marker}"])
    os._exit(0)
print("spawned")
"""
    )
    assert result.stdout == "spawned\n", result.stderr
    assert host_processes_with(marker) == []
    assert host_processes_with(sandbox.id) == []


# -- the same attempts through the workspace tools ---------------------------------------------------


def test_escape_through_workspace_tools(sandbox: PythonSandbox, workspace_dir: Path, host_secret: Path) -> None:
    ws = Workspace(workspace_dir)
    # The sandboxed code plants links for the file tools to follow: they must not.
    planted = sandbox.run(
        f"import os\nos.symlink({str(host_secret)!r}, 'secret-link')\nos.symlink('/etc', 'etc-link')\n"
        "os.mkfifo('fifo')\nprint('planted')"
    )
    assert planted.stdout == "planted\n", planted.stderr
    attempts = [
        lambda: ws.read_file("/etc/shadow"),
        lambda: ws.read_file(str(host_secret)),
        lambda: ws.read_file("../" * 10 + str(host_secret).lstrip("/")),
        lambda: ws.read_file("secret-link"),
        lambda: ws.read_file("etc-link/shadow"),
        lambda: ws.write_file("etc-link/agentkit-pwned", "x"),
        lambda: ws.edit_file("secret-link", "HOST", "PWNED"),
        lambda: ws.write_file("../outside.txt", "x"),
        lambda: ws.read_file("fifo"),
        lambda: ws.read_file("/proc/self/environ"),
        lambda: ws.list_dir("etc-link"),
    ]
    for i, call in enumerate(attempts):
        with pytest.raises(ToolError):
            call()
            pytest.fail(f"workspace attempt {i} was not refused")
    assert host_secret.read_text() == "HOST-SECRET\n"
    assert not (workspace_dir.parent / "outside.txt").exists()
    assert "HOST-SECRET" not in ws.grep("HOST")


def test_escape_own_process_group_past_timeout(sandbox: PythonSandbox) -> None:
    # Leaving the process group that the host kills at the timeout does not help: the PID namespace dies.
    result = sandbox.run("import os, time\nos.setpgid(0, 0)\ntime.sleep(30)")
    assert result.timed_out
    assert host_processes_with(sandbox.id) == []


# -- the host seen through the sandbox's PID 1 ----------------------------------------------------------


@pytest.fixture()
def agent_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """An API key in the agent's own environment, as OPENAI_API_KEY would be."""
    secret = f"sk-agentkit-test-{secrets.token_hex(8)}"
    monkeypatch.setenv("AGENTKIT_TEST_API_KEY", secret)
    return secret


def test_escape_read_agent_env_through_proc(sandbox: PythonSandbox, agent_secret: str, workspace_dir: Path) -> None:
    # bwrap used to start with the agent's environment, and its PID 1 inside ran at the sandbox's uid.
    out = sandbox.run(
        "import os\n"
        "for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    for part in ('environ', 'cmdline'):\n"
        "        try:\n"
        "            print(open(f'/proc/{pid}/{part}', 'rb').read())\n"
        "        except OSError as exc:\n"
        "            print('unreadable', pid, part, exc)\n"
    )
    assert out.exit_code == 0, out.stderr
    assert agent_secret not in out.stdout
    assert "AGENTKIT_TEST_API_KEY" not in out.stdout
    assert str(workspace_dir) not in out.stdout  # PID 1's command line no longer lists the host's mounts


def test_escape_read_agent_env_from_pid1_memory(sandbox: PythonSandbox, agent_secret: str) -> None:
    out = attempt(
        sandbox,
        # The needle is spelled backwards in the code, which PID 1 holds too; only the child reverses it.
        f"""
needle = {agent_secret[::-1].encode()!r}[::-1]
found = False
with open('/proc/1/maps') as maps, open('/proc/1/mem', 'rb') as mem:
    for line in maps:
        addr, perms = line.split()[:2]
        if 'r' not in perms:
            continue
        lo, hi = (int(x, 16) for x in addr.split('-'))
        try:
            mem.seek(lo)
            found = found or needle in mem.read(hi - lo)
        except OSError:
            pass
if not found:
    raise LookupError('the agent secret is not in PID 1 memory')
""",
    )
    assert "LookupError" in out or "PermissionError" in out


@pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers below are x86-64's")
def test_escape_ptrace_pid1(sandbox: PythonSandbox) -> None:
    # PID 1 attached and stopped: its memory and syscalls at the code's command.
    out = attempt(
        sandbox,
        """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
if libc.ptrace(16, 1, 0, 0) != 0:  # PTRACE_ATTACH
    raise OSError(ctypes.get_errno(), 'ptrace: ' + os.strerror(ctypes.get_errno()))
""",
    )
    assert "Operation not permitted" in out


def test_every_process_inside_is_filtered(sandbox: PythonSandbox) -> None:
    out = sandbox.run(
        "import os\nfor p in sorted(x for x in os.listdir('/proc') if x.isdigit()):\n"
        "    s = open(f'/proc/{p}/status').read()\n"
        "    print(p, s.split('Seccomp:')[1].split()[0], s.split('CapEff:')[1].split()[0])\n"
    )
    rows = [line.split() for line in out.stdout.splitlines()]
    assert [r[0] for r in rows] == ["1", "2"], out
    assert all(r[1] == "2" and int(r[2], 16) == 0 for r in rows), out  # seccomp filter mode, no capabilities


# -- whole-run memory ------------------------------------------------------------------------------


def _memory_capped(result: object, sandbox: PythonSandbox) -> None:
    from agentkit.tools import ExecResult

    assert isinstance(result, ExecResult)
    if not sandbox.memory_cap:  # no memory cgroup here: the result must say so instead of pretending
        assert any("not capped" in n for n in result.notices), result
        pytest.skip("no memory cgroup can be made here; the result says so")
    assert "held 600 MB" not in result.stdout, result
    assert "memory" in result.limits_hit or "MemoryError" in result.stderr + result.stdout, result


def test_escape_memory_cap_with_memfd(sandbox: PythonSandbox) -> None:
    # memfd pages are not address space: RLIMIT_AS never sees them (12 of 50 MB: each under RLIMIT_FSIZE).
    result = sandbox.run(
        "import os\nfds = [os.memfd_create('x') for _ in range(12)]\nblock = b'x' * 2**20\n"
        "for fd in fds:\n    for i in range(50):\n        os.write(fd, block)\nprint('held 600 MB')\n"
    )
    _memory_capped(result, sandbox)


def test_escape_memory_cap_across_forks(workspace_dir: Path) -> None:
    # RLIMIT_AS is per process: 6 children of 100 MB each stay under it one by one. Each reports once its
    # memory is touched; the count is read until every child has exited or been killed.
    box = PythonSandbox(workspace_dir, timeout_s=30, memory_mb=256)
    result = box.run(
        "import os, time\nr, w = os.pipe()\nfor i in range(6):\n    if os.fork() == 0:\n        os.close(r)\n"
        "        x = b'\\1' * (100 * 2**20)\n        os.write(w, b'1')\n        time.sleep(2)\n        os._exit(0)\n"
        "os.close(w)\nheld = 0\nwhile chunk := os.read(r, 16):\n    held += len(chunk)\n"
        "print('held 600 MB' if held == 6 else f'{held} held')\n"
    )
    _memory_capped(result, box)


# -- write budget ------------------------------------------------------------------------------------


def _growth(root: Path) -> tuple[int, int]:
    files = list(root.rglob("*"))
    return sum(p.stat().st_size for p in files if p.is_file()), len(files)


def test_escape_fill_the_workspace_disk(workspace_dir: Path) -> None:
    box = PythonSandbox(workspace_dir, timeout_s=20, max_write_mb=16, max_file_mb=4)
    result = box.run(
        "block = b'x' * 2**20\ni = 0\nwhile True:\n    with open(f'big{i}', 'wb') as f:\n"
        "        for _ in range(4):\n            f.write(block)\n    i += 1\n"
    )
    assert "write_bytes" in result.limits_hit and not result.timed_out and not result.ok, result
    assert any("write budget of 16 MB" in n for n in result.notices)
    written, _ = _growth(workspace_dir)
    # Stopped within a polling interval: tens of MB past the budget at page-cache speed (40-70 MB measured here),
    # never the gigabytes that 20 s of writing would leave.
    assert written < 16 * 2**20 + 240 * 2**20


@pytest.mark.parametrize("where", ["/workspace", "/tmp", "/dev/shm"])
def test_escape_exhaust_inodes(workspace_dir: Path, where: str) -> None:
    box = PythonSandbox(workspace_dir, timeout_s=20, max_write_files=300)
    code = f"import os\ni = 0\nwhile True:\n    open(os.path.join({where!r}, f'f{{i}}'), 'w').close()\n    i += 1\n"
    result = box.run(code)
    assert "write_files" in result.limits_hit and not result.timed_out, result
    if where == "/workspace":
        assert _growth(workspace_dir)[1] < 300 + 5_000  # stopped within a polling interval (about 400 here)


# -- host-executed configuration in the workspace -----------------------------------------------------


def test_escape_git_fsmonitor_in_existing_repo(sandbox: PythonSandbox, workspace_dir: Path) -> None:
    git = workspace_dir / ".git"
    (git / "hooks").mkdir(parents=True)
    (git / "config").write_text("[core]\n\tbare = false\n")
    attempt(sandbox, "open('.git/config', 'a').write('[core]\\n\\tfsmonitor = touch /tmp/pwned\\n')")
    attempt(sandbox, "open('.git/hooks/pre-commit', 'w').write('#!/bin/sh\\ntouch /tmp/pwned\\n')")
    attempt(sandbox, "import os\nos.rename('.git', 'old-git')")
    attempt(sandbox, "import shutil\nshutil.rmtree('.git')")
    assert (git / "config").read_text() == "[core]\n\tbare = false\n"
    assert list((git / "hooks").iterdir()) == []


@pytest.mark.parametrize(
    "path", [".git/config", ".envrc", ".vscode/tasks.json", ".gitmodules", ".devcontainer/x", ".hg/hgrc"]
)
def test_escape_create_host_config(sandbox: PythonSandbox, workspace_dir: Path, path: str) -> None:
    attempt(
        sandbox,
        f"import os\nos.makedirs(os.path.dirname({path!r}) or '.', exist_ok=True)\nopen({path!r}, 'w').write('x')",
    )
    assert sorted(p.name for p in workspace_dir.iterdir()) == []  # and the placeholders are gone again


# Tool configuration the developer's tools run when they work in the directory (agentkit/tools/_protected.py).
TOOL_CONFIG = {
    ".npmrc": "node-options=--require ./pwn.js\n",
    ".yarnrc.yml": "yarnPath: ./pwn.cjs\n",
    ".yarn/releases/yarn-4.1.0.cjs": "require('child_process').execSync('touch /tmp/pwned')\n",
    ".tool-versions": "python path:./pwn\n",
    "mise.toml": '[hooks]\nenter = "touch /tmp/pwned"\n',
    ".config/mise/config.toml": '[hooks]\nenter = "touch /tmp/pwned"\n',
    ".cargo/config.toml": '[build]\nrustc-wrapper = "./pwn.sh"\n',
    "rust-toolchain.toml": '[toolchain]\npath = "./pwn"\n',
    ".venv/bin/python": "#!/bin/sh\ntouch /tmp/pwned\n",
    "lefthook.yml": "pre-commit:\n  commands:\n    x:\n      run: touch /tmp/pwned\n",
    "pkg/.npmrc": "script-shell=./pwn.sh\n",
}


@pytest.mark.parametrize("path", sorted(TOOL_CONFIG))
def test_escape_rewrite_existing_tool_config(sandbox: PythonSandbox, workspace_dir: Path, path: str) -> None:
    target = workspace_dir / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("# the user's\n")
    attempt(sandbox, f"open({path!r}, 'a').write({TOOL_CONFIG[path]!r})")
    attempt(sandbox, f"import os\nos.remove({path!r})")
    assert target.read_text() == "# the user's\n"


@pytest.mark.parametrize("path", sorted(TOOL_CONFIG))
def test_escape_plant_tool_config(sandbox: PythonSandbox, workspace_dir: Path, path: str) -> None:
    """Absent: refused during the run where a host program reads it meanwhile (editors, git), else created, then
    found and removed after the run (before anything could run it) and reported."""
    result = sandbox.run(
        f"import os\nos.makedirs(os.path.dirname({path!r}) or '.', exist_ok=True)\n"
        f"open({path!r}, 'w').write({TOOL_CONFIG[path]!r})"
    )
    assert not (workspace_dir / path).exists()
    planted = [p for p in workspace_dir.rglob("*") if p.is_file()]
    assert planted == [], planted
    if path.split("/")[0] in LIVE_NAMES:
        assert "PermissionError" in result.stderr or "read-only" in result.stderr.lower(), result
    else:
        removed = [m.group(1) for n in result.notices if (m := re.search(r"created (\S+) in the workspace", n))]
        assert [r for r in removed if path == r or path.startswith(r + "/")], result


def test_escape_create_nested_git_repo(sandbox: PythonSandbox, workspace_dir: Path) -> None:
    # Deeper than the placeholders: created, then removed after the run and reported.
    result = sandbox.run("import os\nos.makedirs('sub/.git')\nopen('sub/.git/config', 'w').write('x')\nprint('ok')")
    assert not (workspace_dir / "sub" / ".git").exists()
    assert any("sub/.git" in n and "removed" in n for n in result.notices), result


def test_escape_protected_name_behind_symlink(workspace_dir: Path, tmp_path: Path) -> None:
    from agentkit.errors import SandboxError

    (tmp_path / "real-git").mkdir()
    (workspace_dir / ".git").symlink_to(tmp_path / "real-git")
    with pytest.raises(SandboxError, match="symbolic link"):
        PythonSandbox(workspace_dir, timeout_s=5).run("open('.git/config', 'w').write('x')")
    assert not (tmp_path / "real-git" / "config").exists()


def test_escape_nested_git_repo_too_deep_to_delete(sandbox: PythonSandbox, workspace_dir: Path) -> None:
    # A tree deeper than a recursive delete can go: the .git must still not stay where git would run it.
    result = sandbox.run(
        "import os\nos.makedirs('sub/.git')\nopen('sub/.git/config', 'w').write('x')\nos.chdir('sub/.git')\n"
        "for _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\nprint('ok')"
    )
    try:
        assert result.stdout == "ok\n", result.stderr
        assert not (workspace_dir / "sub" / ".git").exists()
        assert any("sub/.git" in n for n in result.notices), result
    finally:
        subprocess.run(["rm", "-rf", str(workspace_dir / "sub")], check=False)  # pytest's own cleanup recurses


def test_escape_plant_pth_in_the_agents_venv_inside_the_workspace(workspace_dir: Path) -> None:
    # agentkit runs from the project's own .venv: a .pth written there runs, unconfined, at agentkit's next start.
    import venv

    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(workspace_dir / "env")
    site = next((workspace_dir / "env").glob("lib/python*/site-packages"))
    rel = site.relative_to(workspace_dir)
    driver = (
        "from agentkit.tools import PythonSandbox\n"
        f"r = PythonSandbox({str(workspace_dir)!r}, timeout_s=20).run("
        f"\"open('{rel}/evil.pth', 'w').write('import os')\")\n"
        "print(r.stderr)\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [str(workspace_dir / "env" / "bin" / "python"), "-c", driver], capture_output=True, text=True, env=env
    )
    assert "Read-only file system" in done.stdout, (done.stdout, done.stderr)
    assert not (site / "evil.pth").exists()


def test_escape_move_a_nested_repo_aside_and_plant_a_new_one(sandbox: PythonSandbox, workspace_dir: Path) -> None:
    # x/.git is read-only inside, but x itself can be renamed: the new x/.git at the old path was kept (and the
    # user's real one, now y/.git, deleted) while protection went by path.
    (workspace_dir / "x" / ".git").mkdir(parents=True)
    (workspace_dir / "x" / ".git" / "config").write_text("user's own\n")
    result = sandbox.run(
        "import os\nos.rename('x', 'y')\nos.makedirs('x/.git')\n"
        "open('x/.git/config', 'w').write('[core]\\n\\tfsmonitor = touch /tmp/pwned\\n')\nprint('planted')"
    )
    assert not (workspace_dir / "x" / ".git").exists(), result
    assert (workspace_dir / "y" / ".git" / "config").read_text() == "user's own\n"
    assert any("x/.git" in n for n in result.notices), result


def _repo_pointing_elsewhere(workspace_dir: Path) -> None:
    """A repository whose config names hooks and an included config in the work tree, as teams set it up."""
    (workspace_dir / ".git").mkdir()
    (workspace_dir / ".git" / "config").write_text(
        '[core]\n\thooksPath = "scripts/hooks" ; shared hooks\n[include]\n\tpath = ../team.gitconfig\n'
    )
    (workspace_dir / "scripts" / "hooks").mkdir(parents=True)
    (workspace_dir / "team.gitconfig").write_text("[user]\n\tname = team\n")


@pytest.mark.parametrize(
    "body",
    [
        "open('scripts/hooks/pre-commit', 'w').write('#!/bin/sh\\ntouch /tmp/pwned\\n')",
        "open('team.gitconfig', 'a').write('[core]\\n\\tfsmonitor = touch /tmp/pwned\\n')",
    ],
    ids=["hooksPath", "include.path"],
)
def test_escape_through_paths_the_git_config_names(sandbox: PythonSandbox, workspace_dir: Path, body: str) -> None:
    _repo_pointing_elsewhere(workspace_dir)
    attempt(sandbox, body)
    assert list((workspace_dir / "scripts" / "hooks").iterdir()) == []
    assert (workspace_dir / "team.gitconfig").read_text() == "[user]\n\tname = team\n"


def test_escape_move_the_hooks_dir_aside_and_make_a_new_one(sandbox: PythonSandbox, workspace_dir: Path) -> None:
    _repo_pointing_elsewhere(workspace_dir)
    result = sandbox.run(
        "import os\nos.rename('scripts', 'old')\nos.makedirs('scripts/hooks')\n"
        "open('scripts/hooks/pre-commit', 'w').write('#!/bin/sh\\ntouch /tmp/pwned\\n')\nprint('planted')"
    )
    assert result.stdout == "planted\n", result.stderr
    assert not (workspace_dir / "scripts" / "hooks" / "pre-commit").exists()
    assert any("scripts/hooks" in n for n in result.notices), result


def test_escape_through_a_gitdir_file(sandbox: PythonSandbox, workspace_dir: Path) -> None:
    # `.git` is a file naming the real repository elsewhere in the work tree.
    (workspace_dir / "meta").mkdir()
    (workspace_dir / "meta" / "config").write_text("[core]\n\tbare = false\n")
    (workspace_dir / ".git").write_text("gitdir: meta\n")
    attempt(sandbox, "open('meta/config', 'a').write('[core]\\n\\tfsmonitor = touch /tmp/pwned\\n')")
    assert (workspace_dir / "meta" / "config").read_text() == "[core]\n\tbare = false\n"


def test_git_config_naming_a_missing_hooks_dir_refuses_to_start(workspace_dir: Path) -> None:
    from agentkit.errors import SandboxError

    (workspace_dir / ".git").mkdir()
    (workspace_dir / ".git" / "config").write_text("[core]\n\thooksPath = hooks\n")
    with pytest.raises(SandboxError, match="points at hooks in the workspace"):
        PythonSandbox(workspace_dir, timeout_s=5).run("print(1)")
    assert PythonSandbox(workspace_dir, timeout_s=5, allow_protected_writes=True).run("print(1)").stdout == "1\n"


def test_escape_write_budget_below_path_max(workspace_dir: Path) -> None:
    # Files deeper than PATH_MAX cannot be reached by path from the host: the walk that tells the run's writes
    # from other writers would not see them, and all the growth would be put down to others.
    box = PythonSandbox(workspace_dir, timeout_s=20, max_write_mb=8, max_file_mb=4)
    result = box.run(
        "import os\nfor _ in range(40):\n    os.mkdir('d' * 200)\n    os.chdir('d' * 200)\n"
        "block = b'x' * 2**20\ni = 0\nwhile True:\n    with open(f'f{i}', 'wb') as f:\n"
        "        for _ in range(4):\n            f.write(block)\n    i += 1\n"
    )
    try:
        assert "write_bytes" in result.limits_hit and not result.timed_out, result
    finally:
        subprocess.run(["rm", "-rf", str(workspace_dir / ("d" * 200))], check=False)


def test_escape_break_the_file_tools_with_names_that_are_not_text(sandbox: PythonSandbox, workspace_dir: Path) -> None:
    """A name whose bytes are not UTF-8 (Python lists them as lone surrogates) made find_files and grep raise
    UnicodeEncodeError, and the listing that named it ended the run when the session was saved; a name with a
    newline added a made-up entry to listings."""
    made = sandbox.run("open(b'/workspace/\\xff\\xfe.txt', 'w').write('needle')\nopen('a\\nfake  (9 bytes)', 'w')")
    assert made.exit_code == 0, made.stderr
    ws = Workspace(workspace_dir)
    for answer in (ws.list_dir(), ws.find_files("*"), ws.grep("needle", glob="*.txt")):
        assert len(answer.splitlines()) == (2 if "needle" not in answer else 1), answer
        answer.encode("utf-8")  # every writer takes it (no lone surrogate)
    assert "'\\udcff\\udcfe.txt'" in ws.find_files("*.txt")


def test_escape_break_the_file_tools_with_a_deep_tree(sandbox: PythonSandbox, workspace_dir: Path) -> None:
    """os.fwalk recursed (and held a descriptor) per level: a mkdir loop of 2,000 ended find_files and grep with
    RecursionError for the rest of the session."""
    (workspace_dir / "top.txt").write_text("needle\n")
    made = sandbox.run("import os\nfor _ in range(2000):\n    os.mkdir('d')\n    os.chdir('d')\nprint('deep')")
    try:
        assert made.stdout == "deep\n", made.stderr
        ws = Workspace(workspace_dir)
        assert ws.find_files("*.txt").splitlines()[0] == "top.txt"
        assert ws.grep("needle").splitlines()[0] == "top.txt:1: needle"
    finally:
        fds = [os.open(workspace_dir, os.O_RDONLY)]  # not shutil.rmtree (pytest's cleanup): it recurses too
        while "d" in os.listdir(fds[-1]):
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        for parent, child in zip(reversed(fds[:-1]), reversed(fds[1:]), strict=True):
            os.close(child)
            os.rmdir("d", dir_fd=parent)
        os.close(fds[0])


def test_escape_through_an_inherited_descriptor(sandbox: PythonSandbox) -> None:
    # An open socket or file of the agent's, inherited, would reach past every namespace.
    held = socket.socket()
    try:
        body = (
            "import os\nextra = [fd for fd in os.listdir('/proc/self/fd') if int(fd) > 3]  # 3: the listing's own\n"
            "if not extra:\n    raise PermissionError('no descriptor of the agent is open here')\nprint(extra)"
        )
        attempt(sandbox, body)
    finally:
        held.close()
