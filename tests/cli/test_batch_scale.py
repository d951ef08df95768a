"""Scale-out batches: a worker node killed mid-run, a driver killed mid-run, preflight, progress events.

The Ray tests use the session's local multi-node cluster (tests/conftest.py): a worker node is really killed
(its raylet and worker processes), and the batch must still write every task exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from agentkit import Agent
from agentkit.backends.base import GenerationDone, GenerationRequest, RawDelta
from agentkit.batch import BatchTask, RayExecutor, run_batch
from agentkit.cli import main
from agentkit.errors import SandboxUnavailable
from agentkit.sessions import Session, SessionStore
from agentkit.testing import ScriptedBackend

ROOT = Path(__file__).resolve().parents[2]


def echo(request: GenerationRequest) -> str:
    """Answers each task with its own text reversed: results identical wherever and whenever a task ran."""
    return f"{request.messages[-1]['content'][::-1]}<turn|>"


def slow_agent() -> Agent:
    return Agent(ScriptedBackend([echo], delay_s=0.03, chunk_size=1))


def quiet() -> Console:
    return Console(file=open(os.devnull, "w"))


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.ray
@pytest.mark.slow
async def test_a_worker_node_killed_mid_run_loses_and_doubles_nothing(
    ray_cluster: Any, ray_node_adder: Any, tmp_path: Path
) -> None:
    out = tmp_path / "results.jsonl"
    tasks = [BatchTask(f"t{i}", f"task number {i}") for i in range(48)]
    victim = ray_cluster.list_all_nodes()[1]  # a worker node (index 0 is the head, which has no CPUs)
    batch = asyncio.create_task(
        run_batch(tasks, out, slow_agent, concurrency=8, executor=RayExecutor(), console=quiet())
    )
    try:
        while not out.exists() or len(out.read_text(encoding="utf-8").splitlines()) < 8:
            assert not batch.done(), batch
            await asyncio.sleep(0.05)
        await asyncio.to_thread(ray_cluster.remove_node, victim, False)  # no grace: like a machine lost
        summary = await batch
    finally:
        ray_node_adder()  # the session's cluster keeps its size for the tests after this one
    written = lines(out)
    assert sorted(r["id"] for r in written) == sorted(t.id for t in tasks)  # none lost, none twice
    assert all(
        r["ok"] and r["output"] == t.task[::-1]
        for r, t in zip(sorted(written, key=lambda r: r["id"]), sorted(tasks, key=lambda t: t.id), strict=True)
    )
    assert (summary.ok, summary.failed) == (48, 0)
    assert summary.retried >= 1  # tasks were running on the node when it went: they ran again elsewhere
    assert any(r.get("attempts", 1) > 1 for r in written)


class GatedBackend(ScriptedBackend):
    """Echoes once ``gate`` exists; each generation first leaves a file in ``started`` (tasks in flight)."""

    def __init__(self, gate: Path, started: Path) -> None:
        super().__init__([echo])
        self.gate, self.started = gate, started

    async def stream(self, request: GenerationRequest) -> AsyncIterator[RawDelta | GenerationDone]:
        (self.started / f"{os.getpid()}-{id(request)}").touch()
        while not self.gate.exists():  # noqa: ASYNC110 - a file the test process creates, no shared Event
            await asyncio.sleep(0.05)
        async for item in super().stream(request):
            yield item


class BwrapOnFirstNodesOnly:
    """A sandboxed agent's factory; on a node started with AGENTKIT_TEST_NODE=no-bwrap, bwrap cannot be found."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self) -> Agent:
        from agentkit.tools import PythonSandbox

        if os.environ.get("AGENTKIT_TEST_NODE") == "no-bwrap":
            (self.folder / "built-on-no-bwrap-node").touch()
            os.environ["PATH"] = "/nonexistent"
        backend = GatedBackend(self.folder / "gate", self.folder / "started")
        return Agent(backend, tools=[PythonSandbox().as_tool()])


@pytest.mark.ray
@pytest.mark.slow
async def test_a_worker_restarted_on_a_node_without_bwrap_takes_no_task(
    ray_cluster: Any, ray_node_adder: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ray restarts a lost node's workers wherever there is room; the preflight runs again there, and a worker
    that fails it is dropped instead of failing every task it is given."""
    out = tmp_path / "results.jsonl"
    (tmp_path / "started").mkdir()
    tasks = [BatchTask(f"t{i}", f"task number {i}") for i in range(16)]
    victim = ray_cluster.list_all_nodes()[1]
    # Four one-CPU workers fill both two-CPU nodes, two tasks each in flight, held at the gate.
    executor = RayExecutor(workers=4)
    batch = asyncio.create_task(
        run_batch(tasks, out, BwrapOnFirstNodesOnly(tmp_path), concurrency=8, executor=executor, console=quiet())
    )
    replacement = None
    try:
        while len(list((tmp_path / "started").iterdir())) < 8:
            assert not batch.done(), batch
            await asyncio.sleep(0.05)
        await asyncio.to_thread(ray_cluster.remove_node, victim, False)
        # The only room for the lost node's two workers is a node where bwrap is missing.
        replacement = ray_node_adder(env_vars={"AGENTKIT_TEST_NODE": "no-bwrap"})  # main thread: Ray sets signals
        while not (tmp_path / "built-on-no-bwrap-node").exists():
            assert not batch.done(), batch
            await asyncio.sleep(0.05)
    finally:
        (tmp_path / "gate").touch()
        try:
            summary = await batch
        finally:
            if replacement is not None:
                await asyncio.to_thread(ray_cluster.remove_node, replacement)
            ray_node_adder()
    written = lines(out)
    assert [r for r in written if not r["ok"]] == []  # no task was given to a worker that cannot run it
    assert sorted(r["id"] for r in written) == sorted(t.id for t in tasks)
    assert (summary.ok, summary.failed) == (16, 0)
    dropped = [r.getMessage() for r in caplog.records if "cannot run tasks" in r.getMessage()]
    assert dropped and all("restarted on" in m and "bubblewrap" in m for m in dropped)


class ProcessNotingStore(SessionStore):
    """A session store that notes which process wrote each session (a line per save in writers.log)."""

    def save(self, session: Session) -> None:
        super().save(session)
        with (self.root / "writers.log").open("a", encoding="utf-8") as log:
            log.write(f"{os.getpid()}\n")


class SavingAgent:
    def __init__(self, sessions: Path) -> None:
        self.sessions = sessions

    def __call__(self) -> Agent:
        return Agent(ScriptedBackend([echo]), store=ProcessNotingStore(self.sessions))


async def test_saved_sessions_are_written_by_the_driver(tmp_path: Path, executor_name: str) -> None:
    """On Ray a session comes back with its result and the driver writes it, before the result line: the
    sessions folder is the driver's, whichever node ran the task (a worker's disk is not the user's)."""
    out, sessions = tmp_path / "results.jsonl", tmp_path / "sessions"
    tasks = [BatchTask(f"t{i}", f"task number {i}") for i in range(6)]
    summary = await run_batch(tasks, out, SavingAgent(sessions), executor=executor_name, console=quiet())
    assert (summary.ok, summary.failed) == (6, 0)
    written = lines(out)
    assert all("_session" not in r for r in written)  # the session travels beside the record, never in the file
    store = SessionStore(sessions)
    for record in written:
        session = store.load(record["session_id"])
        assert [m["content"] for m in session.messages] == [record["task"], record["task"][::-1]]
    log = sessions / "writers.log"
    writers = set(log.read_text(encoding="utf-8").split()) if log.exists() else set()
    assert writers <= {str(os.getpid())}  # no worker process wrote a session
    assert sorted(p.stem for p in sessions.glob("*.json")) == sorted(r["session_id"] for r in written)


def test_a_returned_session_the_driver_cannot_write_fails_its_record(tmp_path: Path) -> None:
    from agentkit.batch.task import save_returned_session

    (tmp_path / "sessions").write_text("a file where the sessions folder should be", encoding="utf-8")
    record: dict[str, Any] = {"id": "a", "ok": True, "session_id": "s1"}
    save_returned_session(record, {"root": str(tmp_path / "sessions"), "session": Session(id="s1").to_dict()})
    assert record["ok"] is False and record["session_id"] is None
    assert record["error"].startswith("the task ran, but its session could not be saved: cannot save session s1")


DRIVER = """
import asyncio, sys
from pathlib import Path
from agentkit import Agent
from agentkit.batch import BatchTask, RayExecutor, run_batch
from agentkit.testing import ScriptedBackend

def echo(request):
    return request.messages[-1]["content"][::-1] + "<turn|>"

def agent():
    return Agent(ScriptedBackend([echo], delay_s=0.02, chunk_size=1))

tasks = [BatchTask(f"t{i}", f"task number {i}") for i in range(int(sys.argv[2]))]
executor = RayExecutor(sys.argv[3]) if len(sys.argv) > 3 else "local"
asyncio.run(run_batch(tasks, Path(sys.argv[1]), agent, concurrency=4, executor=executor))
"""


@pytest.mark.slow
def test_a_driver_killed_mid_run_resumes_where_it_stopped(
    tmp_path: Path, executor_name: str, request: pytest.FixtureRequest
) -> None:
    out = tmp_path / "results.jsonl"
    extra = [request.getfixturevalue("ray_cluster").address] if executor_name == "ray" else []
    command = [sys.executable, "-c", DRIVER, str(out), "40", *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not out.exists() or len(out.read_text(encoding="utf-8").splitlines()) < 5:
            assert driver.poll() is None and time.monotonic() < deadline, "the batch ended before it was killed"
            time.sleep(0.05)
        os.killpg(driver.pid, signal.SIGKILL)
    finally:
        driver.wait(30)
    partial = out.read_bytes()
    assert 5 <= len(partial.splitlines()) < 40
    subprocess.run(command, env=env, check=True, stderr=subprocess.DEVNULL, timeout=300)
    written = lines(out)
    assert sorted(r["id"] for r in written) == sorted(f"t{i}" for i in range(40))  # each once
    assert all(r["ok"] and r["output"] == r["task"][::-1] for r in written)
    assert out.read_bytes().startswith(partial.rsplit(b"\n", 1)[0])  # finished work was kept, not redone


class NoBwrapAgent:
    """A factory whose process cannot find bwrap (as on a node without it) and wants the python tool."""

    def __call__(self) -> Agent:
        from agentkit.tools import PythonSandbox

        os.environ["PATH"] = "/nonexistent"  # this process only: a batch's workers are killed when it ends
        return Agent(ScriptedBackend(["x<turn|>"]), tools=[PythonSandbox().as_tool()])


async def test_workers_without_bwrap_fail_the_batch_before_any_task(tmp_path: Path, executor_name: str) -> None:
    out = tmp_path / "results.jsonl"
    saved = os.environ["PATH"]
    try:
        with pytest.raises(SandboxUnavailable, match="bubblewrap") as caught:
            await run_batch(
                [BatchTask("a", "x"), BatchTask("b", "y")], out, NoBwrapAgent(), executor=executor_name, console=quiet()
            )
    finally:
        os.environ["PATH"] = saved
    if executor_name == "ray":
        assert "Ray workers on " in str(caught.value)
    assert not out.exists()  # failed once, up front: no task records a failure of its own


def test_an_unreachable_backend_fails_the_batch_once_with_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], executor_name: str
) -> None:
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("one\ntwo\n", encoding="utf-8")
    out = tmp_path / "results.jsonl"
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"ollama://127.0.0.1:{port}/gemma4:e4b"
    args = ["batch", str(tasks), "-o", str(out), "--backend", url, *(["--ray"] if executor_name == "ray" else [])]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "127.0.0.1" in err and err.count("agentkit: error:") == 1
    assert not out.exists()


def test_json_progress_events(tmp_path: Path, scripted, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("one\ntwo\nthree\n", encoding="utf-8")
    out = tmp_path / "results.jsonl"
    url = scripted(["A<turn|>", "B<turn|>", "C<turn|>"])
    code = main(
        ["batch", str(tasks), "-o", str(out), "-c", "1", "--json", "--progress-every", "0.000001", "--backend", url]
    )
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["type"] for e in events] == ["batch_progress"] * 4 + ["batch_finished"]
    assert [e["done"] for e in events] == [0, 1, 2, 3, 3]
    last = events[-1]
    assert (last["total"], last["ok"], last["failed"], last["skipped"], last["eta_s"]) == (3, 3, 0, 0, 0)
    assert last["rate_per_s"] > 0


def test_ray_flags_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("one\n", encoding="utf-8")
    out = str(tmp_path / "r.jsonl")
    assert main(["batch", str(tasks), "-o", out, "--ray-workers", "2", "--backend", "scripted:x"]) == 2
    assert "--ray-workers applies to --ray" in capsys.readouterr().err
    assert main(["batch", str(tasks), "-o", out, "--max-attempts", "0", "--backend", "scripted:x"]) == 2
    assert "--max-attempts must be at least 1" in capsys.readouterr().err


def test_the_writer_writes_an_id_once(tmp_path: Path) -> None:
    from agentkit.batch import ResultWriter

    writer = ResultWriter(tmp_path / "r.jsonl")
    assert writer.write({"id": "a", "ok": True, "output": "first"}) is True
    assert writer.write({"id": "a", "ok": True, "output": "again"}) is False  # a retry racing its original
    writer.close()
    assert [r["output"] for r in lines(tmp_path / "r.jsonl")] == ["first"]


def test_once_per_worker_builds_once_per_process_and_never_pickles_its_value() -> None:
    import pickle

    from agentkit.batch import once_per_worker

    built: list[int] = []
    shared = once_per_worker(lambda: built.append(1) or object())
    assert shared() is shared() and built == [1]
    copy = pickle.loads(pickle.dumps(once_per_worker(ScriptedBackend)))  # a class pickles by reference
    assert copy._value is None and not copy._built  # the value stays where it was built
    assert isinstance(copy(), ScriptedBackend)


@pytest.mark.ray
async def test_a_factory_that_cannot_travel_to_workers_is_refused_clearly(ray_cluster: Any, tmp_path: Path) -> None:
    import threading

    from agentkit.errors import UserError

    lock = threading.Lock()  # a live object a factory must not carry to another machine

    def factory() -> Agent:
        with lock:
            return slow_agent()

    with pytest.raises(UserError, match=r"cannot be sent to Ray workers.*once_per_worker"):
        await run_batch([BatchTask("a", "x")], tmp_path / "r.jsonl", factory, executor="ray", console=quiet())


@pytest.mark.ray
def test_more_workers_than_cpus_share_them_rather_than_wait_forever(
    ray_cluster: Any, tmp_path: Path, scripted, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("".join(f"q{i}\n" for i in range(6)), encoding="utf-8")
    out = tmp_path / "r.jsonl"
    url = scripted(["A<turn|>"] * 6)  # each worker reads its own copy of the script
    args = ["batch", str(tasks), "-o", str(out), "-c", "6", "--backend", url, "--ray", "--ray-workers", "6"]
    assert main(args) == 0  # the cluster has 4 CPUs for its workers
    assert "6 ok, 0 failed" in capsys.readouterr().err


def test_a_ray_address_nobody_answers_fails_at_once_with_exit_3(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("one\n", encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "agentkit.cli", "batch", str(tasks), "-o", str(tmp_path / "r.jsonl")]
    command += ["--backend", "scripted:x", "--ray", f"127.0.0.1:{port}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert f"cannot connect to the Ray cluster at 127.0.0.1:{port}" in proc.stderr and "ray start --head" in proc.stderr


def test_the_task_file_is_not_taken_for_a_ray_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["batch", "--ray", "tasks.jsonl", "-o", str(tmp_path / "r.jsonl")])
    assert exit_info.value.code == 2
    assert "'tasks.jsonl' is not a Ray address (HOST:PORT or ray://HOST:PORT)" in capsys.readouterr().err


def test_ray_discovery_is_refused_so_no_stranger_cluster_gets_the_factory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``auto`` joins whatever cluster /tmp/ray/ray_current_cluster names (any local user can write it): a
    cluster is joined by its address only, whether given as --ray, to RayExecutor or in RAY_ADDRESS."""
    from agentkit.errors import UserError

    tasks = tmp_path / "tasks.txt"
    tasks.write_text("one\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["batch", str(tasks), "-o", str(tmp_path / "r.jsonl"), "--backend", "scripted:x", "--ray", "auto"])
    assert exit_info.value.code == 2
    assert "ray_current_cluster" in capsys.readouterr().err
    with pytest.raises(UserError, match="--ray alone for a new private local cluster"):
        RayExecutor("auto")
    command = [sys.executable, "-m", "agentkit.cli", "batch", str(tasks), "-o", str(tmp_path / "r.jsonl")]
    command += ["--backend", "scripted:x", "--ray"]
    env = {**os.environ, "RAY_ADDRESS": "auto"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "RAY_ADDRESS 'auto'" in proc.stderr and "ray_current_cluster" in proc.stderr
    assert not (tmp_path / "r.jsonl").exists()


def test_the_cluster_a_batch_uses_is_said_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentkit.batch import ray_executor

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray_executor, "_connected_cluster", lambda: None)  # as in a fresh `agentkit batch`
    assert RayExecutor().describe().startswith("a new private local Ray cluster")
    assert RayExecutor("head:6379").describe() == "the Ray cluster at head:6379"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert RayExecutor().describe() == "the Ray cluster at 10.0.0.5:6379 (from RAY_ADDRESS)"
