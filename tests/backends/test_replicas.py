"""ReplicaBackend: least-outstanding balancing, failover, health checks; over real HTTP to several fake Ollamas."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fake_ollama import FakeOllamaServer, ScriptedReply
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from agentkit import Agent, gemma4
from agentkit.backends import OllamaBackend, ReplicaBackend, ScriptedBackend
from agentkit.backends.base import BackendEvent, GenerationDone, GenerationRequest, RawDelta
from agentkit.batch import BatchTask, run_batch
from agentkit.cli import main
from agentkit.cli.config import resolve_settings
from agentkit.errors import BackendUnavailable, ContextTooLong, UserError

MODEL = "gemma4:e4b"


def request(text: str = "Hi") -> GenerationRequest:
    return GenerationRequest(prompt=gemma4.Prompt.trusted("<bos>x"), messages=[{"role": "user", "content": text}])


async def drain(backend: ReplicaBackend, req: GenerationRequest | None = None) -> str:
    text = "".join([e.text async for e in backend.stream(req or request()) if isinstance(e, RawDelta)])
    return text.removesuffix("<turn|>")


class Switchable(ScriptedBackend):
    """A scripted replica that can be taken down and brought back, counting what it served."""

    def __init__(self, label: str) -> None:
        super().__init__([lambda r: f"{label}<turn|>"] * 100)
        self.down = False
        self.checks = 0

    async def stream(self, request: GenerationRequest) -> AsyncIterator[BackendEvent]:
        if self.down:
            raise BackendUnavailable("connection refused", backend="scripted")
        async for event in super().stream(request):
            yield event

    async def check(self) -> None:
        self.checks += 1
        if self.down:
            raise BackendUnavailable("connection refused", backend="scripted")


async def test_least_outstanding_requests_wins_and_ties_go_round_robin() -> None:
    a, b = Switchable("A"), Switchable("B")
    replicas = ReplicaBackend([a, b], labels=["a", "b"])
    held = replicas.stream(request())
    first = await anext(held)  # a stream left open keeps its replica busy
    assert isinstance(first, RawDelta) and first.text.startswith("A")
    assert [await drain(replicas) for _ in range(3)] == ["B", "B", "B"]  # A has one in flight, B none
    await held.aclose()
    assert [await drain(replicas) for _ in range(4)] == ["A", "B", "A", "B"]
    assert [s["outstanding"] for s in replicas.stats()] == [0, 0]


async def test_a_replica_that_fails_is_taken_out_checked_later_and_put_back() -> None:
    a, b = Switchable("A"), Switchable("B")
    replicas = ReplicaBackend([a, b], labels=["a", "b"], retry_after_s=0.05, max_retry_after_s=0.1)
    a.down = True
    assert [await drain(replicas) for _ in range(3)] == ["B", "B", "B"]  # the first failed over, unseen
    assert replicas.stats()[0]["healthy"] is False and "refused" in str(replicas.stats()[0]["last_error"])
    a.down = False
    await asyncio.sleep(0.06)
    await drain(replicas)  # due for a check: it runs beside this request
    await asyncio.sleep(0)
    assert replicas.stats()[0]["healthy"] is True and a.checks >= 1
    assert "A" in [await drain(replicas) for _ in range(2)]


async def test_every_replica_down_is_one_error_naming_each() -> None:
    a, b = Switchable("A"), Switchable("B")
    a.down = b.down = True
    replicas = ReplicaBackend([a, b], labels=["http://a:1", "http://b:2"])
    with pytest.raises(BackendUnavailable, match=r"none of the 2 replicas") as caught:
        await drain(replicas)
    assert "http://a:1: connection refused" in str(caught.value) and "http://b:2" in str(caught.value)
    with pytest.raises(BackendUnavailable):
        await replicas.check()
    b.down = False
    await replicas.check()  # one answering is enough
    assert await drain(replicas) == "B"


async def test_request_errors_are_not_failed_over() -> None:
    def too_long(r: GenerationRequest) -> str:
        raise ContextTooLong("the prompt does not fit", backend="scripted")

    a, b = ScriptedBackend([too_long]), ScriptedBackend(["B<turn|>"])
    replicas = ReplicaBackend([a, b])
    with pytest.raises(ContextTooLong):
        await drain(replicas)
    assert all(s["healthy"] for s in replicas.stats())  # a bad request says nothing about the server


def test_replicas_must_be_alike() -> None:
    with pytest.raises(UserError, match="different models"):
        ReplicaBackend([ScriptedBackend(model="a"), ScriptedBackend(model="b")])
    with pytest.raises(UserError, match="at least one"):
        ReplicaBackend([])


def test_backend_repeated_and_config_lists_make_replicas(tmp_path: Path) -> None:
    settings = resolve_settings(backend=["vllm://a:8000/m", "vllm://b:8000/m"], model="gemma", environ={})
    assert settings.backend_replicas == ("vllm://a:8000/gemma", "vllm://b:8000/gemma")
    assert settings.backend_url == "vllm://a:8000/gemma"
    config = tmp_path / "config.toml"
    config.write_text('backend = ["one", "vllm://c:8000/m"]\n[backends]\none = "vllm://d:8000/m"\n', encoding="utf-8")
    from_file = resolve_settings(config=str(config), environ={})
    assert from_file.backend_replicas == ("vllm://d:8000/m", "vllm://c:8000/m")
    assert resolve_settings(backend=["vllm://a:8000/m"], environ={}).backend_replicas == ()
    config.write_text("backend = [1]\n", encoding="utf-8")
    with pytest.raises(UserError, match="list of URLs"):
        resolve_settings(config=str(config), environ={})


# -- over real HTTP --------------------------------------------------------------------------------------


def ollama(server: FakeOllamaServer) -> OllamaBackend:
    return OllamaBackend(MODEL, server.url, retry_wait=0.001)


def replies(n: int, delay_s: float = 0.0) -> list[ScriptedReply]:
    return [ScriptedReply(content=f"answer {i}", delay_s=delay_s) for i in range(n)]


def chats(server: FakeOllamaServer) -> int:
    return len(server.bodies("/api/chat"))


async def test_concurrent_requests_spread_evenly_over_real_servers() -> None:
    with FakeOllamaServer() as s1, FakeOllamaServer() as s2, FakeOllamaServer() as s3:
        for server in (s1, s2, s3):
            server.script(*replies(4, delay_s=0.02))
        replicas = ReplicaBackend([ollama(s1), ollama(s2), ollama(s3)])
        try:
            answers = await asyncio.gather(*(drain(replicas, request(f"q{i}")) for i in range(12)))
        finally:
            await replicas.aclose()
    assert all(a.startswith("answer") for a in answers)
    assert [chats(s1), chats(s2), chats(s3)] == [4, 4, 4]


async def test_a_replica_killed_mid_batch_costs_no_task(tmp_path: Path) -> None:
    with FakeOllamaServer() as alive, FakeOllamaServer() as doomed:
        alive.script(*replies(40, delay_s=0.005))
        doomed.script(*replies(40, delay_s=0.005))
        replicas = ReplicaBackend([ollama(alive), ollama(doomed)], retry_after_s=30)
        out = tmp_path / "results.jsonl"
        tasks = [BatchTask(str(i), f"task {i}") for i in range(30)]

        async def kill_after(n: int) -> None:
            while not out.exists() or len(out.read_text(encoding="utf-8").splitlines()) < n:  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # the results file is the batch's progress, as a user would watch it
            doomed.stop()  # streams already running finish; every new connection is refused

        killer = asyncio.create_task(kill_after(6))
        try:
            summary = await run_batch(tasks, out, lambda: Agent(replicas), concurrency=4, console=Console(quiet=True))
        finally:
            killer.cancel()
            await replicas.aclose()
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert (summary.ok, summary.failed) == (30, 0)
    assert sorted(int(r["id"]) for r in records) == list(range(30))
    served_after = next(s for s in replicas.stats() if s["replica"] == doomed.url)
    assert served_after["healthy"] is False and served_after["failures"] >= 1
    assert chats(alive) > 15 and chats(doomed) >= 3  # both worked until one went


async def test_a_stream_cut_before_any_text_moves_to_another_replica() -> None:
    with FakeOllamaServer() as flaky, FakeOllamaServer() as steady:
        flaky.script(ScriptedReply(content="never sent", drop_after=0))
        steady.script(ScriptedReply(content="from steady"))
        replicas = ReplicaBackend([ollama(flaky), ollama(steady)])
        try:
            events = [e async for e in replicas.stream(request())]
        finally:
            await replicas.aclose()
    assert "".join(e.text for e in events if isinstance(e, RawDelta)).startswith("from steady")
    assert isinstance(events[-1], GenerationDone)
    assert chats(flaky) >= 1  # it was asked first (the Ollama backend retries on its own before giving up)


def test_batch_command_with_replicas_one_of_them_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AGENTKIT_CONFIG", str(tmp_path / "none.toml"))
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("".join(f"question {i}\n" for i in range(6)), encoding="utf-8")
    out = tmp_path / "results.jsonl"
    with FakeOllamaServer() as up, FakeOllamaServer() as gone:
        up.script(*replies(6))
        dead = gone.url
        gone.stop()
        host = lambda url: url.removeprefix("http://")  # noqa: E731
        args = ["batch", str(tasks), "-o", str(out), "-b", f"ollama://{host(up.url)}/{MODEL}"]
        assert main([*args, "-b", f"ollama://{host(dead)}/{MODEL}"]) == 0
    assert "6 ok, 0 failed" in capsys.readouterr().err
    assert chats(up) == 6


def test_doctor_checks_each_replica(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AGENTKIT_CONFIG", str(tmp_path / "none.toml"))
    with FakeOllamaServer() as up, FakeOllamaServer() as gone:
        dead = gone.url.removeprefix("http://")
        gone.stop()
        urls = [f"ollama://{up.url.removeprefix('http://')}/{MODEL}", f"ollama://{dead}/{MODEL}"]
        assert main(["doctor", "--no-probe", "--json", "-b", urls[0], "-b", urls[1]]) == 3
    report = json.loads(capsys.readouterr().out)
    status = {c["target"]: c["status"] for c in report["checks"] if c["check"] == "backend"}
    assert status == {urls[0]: "ok", urls[1]: "fail"}


@settings(max_examples=60, deadline=None)
@given(
    replicas=st.integers(min_value=1, max_value=4),
    steps=st.lists(st.tuples(st.sampled_from(["open", "close", "down", "up"]), st.integers(0, 3)), max_size=30),
)
def test_each_request_goes_to_a_least_loaded_healthy_replica(replicas: int, steps: list[tuple[str, int]]) -> None:
    async def scenario() -> None:
        backends = [Switchable(str(i)) for i in range(replicas)]
        labels = [str(i) for i in range(replicas)]
        balancer = ReplicaBackend(backends, labels=labels, retry_after_s=3600, max_retry_after_s=3600)
        held: list[AsyncIterator[BackendEvent]] = []
        for action, n in steps:
            target = backends[n % replicas]
            if action == "open":
                before = {s["replica"]: s for s in balancer.stats()}
                up = [s for s in before.values() if not backends[int(s["replica"])].down]
                # Replicas in rotation that answer; when there are none, those taken out are checked at once.
                candidates = [s for s in up if s["healthy"]] or up
                stream = balancer.stream(request())
                try:
                    first = await anext(stream)
                except BackendUnavailable:
                    assert not up  # only when no replica could take it
                    continue
                assert isinstance(first, RawDelta)
                chosen = first.text[0]
                assert any(s["replica"] == chosen for s in candidates)
                assert before[chosen]["outstanding"] == min(int(s["outstanding"]) for s in candidates)
                held.append(stream)
            elif action == "close" and held:
                await held.pop(n % len(held)).aclose()
            elif action == "down":
                target.down = True  # found out on its next request, as a real server's outage is
            elif action == "up":
                target.down = False
        for stream in held:
            await stream.aclose()
        assert all(s["outstanding"] == 0 for s in balancer.stats())

    asyncio.run(scenario())
