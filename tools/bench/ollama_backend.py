"""What OllamaBackend adds on top of the official ollama client, measured side by side.

1. In process, no network: the same NDJSON answer is read plainly (each line parsed into an
   ``ollama.ChatResponse``, as any client must) and through ``OllamaBackend.stream`` (its HTTP send replaced by a
   ready response holding those bytes), so the difference is exactly the backend's per-chunk work (error
   mapping, rebuild of native Gemma 4 text, events).
2. Over loopback: both read the same streamed answers from FakeOllamaServer (tests/backends/fake_ollama.py):
   the plain ``ollama.AsyncClient.chat(stream=True)`` loop, and ``OllamaBackend.stream`` (request mapping,
   retries set-up, the rebuild of native Gemma 4 text). The server's own cost is the same for both. Printed:
   min and median per answer and the ratios backend / plain client (the min is the steadier figure on a shared
   machine; server and client share one process and its GIL).

Run: ``python tools/bench/ollama_backend.py`` (no Ollama needed).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import ollama

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "backends")]

from fake_ollama import FakeOllamaServer, ScriptedReply  # noqa: E402

from agentkit.backends.base import GenerationRequest  # noqa: E402
from agentkit.backends.ollama import OllamaBackend  # noqa: E402
from agentkit.gemma4 import Prompt  # noqa: E402

MODEL = "gemma4:e4b"
CHUNKS = 500  # streamed pieces per answer (thinking + content), plus one tool call
REPEATS = 30


def reply() -> ScriptedReply:
    half = CHUNKS // 2 * 4
    return ScriptedReply(
        thinking=("think " * half)[:half],
        content=("word " * half)[:half],
        tool_calls=[("get_weather", {"city": "Paris", "days": 3})],
        chunk_size=4,
    )


def serve(urls: multiprocessing.Queue[str], answers: int) -> None:
    with FakeOllamaServer() as fake:
        fake.script(*[reply() for _ in range(answers)])
        urls.put(fake.url)
        threading.Event().wait()  # until terminated


async def plain_client(client: ollama.AsyncClient) -> int:
    n = 0
    stream = await client.chat(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True, think=True, options={"top_k": 64}
    )
    async for _ in stream:
        n += 1
    return n


async def backend_stream(backend: OllamaBackend, request: GenerationRequest) -> int:
    n = 0
    async for _ in backend.stream(request):
        n += 1
    return n


def answer_lines() -> bytes:
    """The NDJSON body Ollama streams for :func:`reply`: thinking and content in 4-character pieces, a call, done."""
    r = reply()

    def chunk(**message: Any) -> ollama.ChatResponse:
        return ollama.ChatResponse(
            model=MODEL, message=ollama.Message(role="assistant", content=message.pop("content", ""), **message)
        )

    chunks = [chunk(thinking=r.thinking[i : i + 4]) for i in range(0, len(r.thinking), 4)]
    chunks += [chunk(content=r.content[i : i + 4]) for i in range(0, len(r.content), 4)]
    calls = [{"function": {"name": n, "arguments": dict(a)}} for n, a in r.tool_calls]
    chunks.append(chunk(tool_calls=calls))
    chunks.append(
        ollama.ChatResponse(
            model=MODEL,
            message=ollama.Message(role="assistant", content=""),
            done=True,
            done_reason="stop",
            eval_count=CHUNKS,
            eval_duration=10**9,
        )
    )
    return b"".join(c.model_dump_json(exclude_none=True).encode() + b"\n" for c in chunks)


async def in_process(request: GenerationRequest) -> None:
    body = answer_lines()

    async def plain() -> None:
        async for line in httpx.Response(200, content=body).aiter_lines():
            if line:
                ollama.ChatResponse.model_validate_json(line)

    async def ready_response(*_args: Any, **_kwargs: Any) -> httpx.Response:
        return httpx.Response(200, content=body)

    backend = OllamaBackend(MODEL)
    backend._send = ready_response  # type: ignore[method-assign]
    plain_s: list[float] = []
    ours: list[float] = []
    for _ in range(REPEATS * 10):
        t0 = time.perf_counter()
        await plain()
        t1 = time.perf_counter()
        await backend_stream(backend, request)
        t2 = time.perf_counter()
        plain_s.append(t1 - t0)
        ours.append(t2 - t1)
    n = body.count(b"\n")
    extra = (min(ours) - min(plain_s)) / n * 1e6
    print(f"in process, {n} NDJSON chunks per answer, best of {len(ours)}:")
    print(f"  plain read and parse {min(plain_s) * 1e3:.2f} ms, OllamaBackend.stream {min(ours) * 1e3:.2f} ms")
    print(f"  backend work per chunk beyond parsing: {extra:.1f} us")


async def main() -> None:
    request = GenerationRequest(
        prompt=Prompt.trusted(""), messages=[{"role": "user", "content": "Hi"}], enable_thinking=True
    )
    await in_process(request)
    # The server runs in its own process so that it does not compete with the client for one GIL.
    context = multiprocessing.get_context("spawn")
    urls: multiprocessing.Queue[str] = context.Queue()
    server = context.Process(target=serve, args=(urls, 2 * (REPEATS + 1)), daemon=True)
    server.start()
    url = urls.get(timeout=60)
    try:
        client = ollama.AsyncClient(host=url)
        backend = OllamaBackend(MODEL, url)
        await plain_client(client), await backend_stream(backend, request)  # warm both connections
        plain: list[float] = []
        ours: list[float] = []
        for i in range(REPEATS):  # interleaved (order alternating), so both see the same machine load
            runs = [("plain", plain_client(client)), ("ours", backend_stream(backend, request))]
            for name, run in runs if i % 2 else runs[::-1]:
                t0 = time.perf_counter()
                await run
                (plain if name == "plain" else ours).append(time.perf_counter() - t0)
        await backend.aclose()
        await client.close()  # type: ignore[no-untyped-call]
    finally:
        server.terminate()
        server.join()
    print(f"loopback HTTP, {CHUNKS} chunks per answer, {REPEATS} answers each (min / median):")
    for name, times in (("ollama.AsyncClient.chat", plain), ("OllamaBackend.stream", ours)):
        lo, mid = min(times), statistics.median(times)
        per_chunk = lo / CHUNKS * 1e6
        print(f"  {name:24}  {lo * 1e3:6.1f} / {mid * 1e3:6.1f} ms per answer  {per_chunk:6.1f} us per chunk (min)")
    by_min = min(ours) / min(plain)
    by_median = statistics.median(ours) / statistics.median(plain)
    print(f"  ratio backend / client    {by_min:.2f} (min)  {by_median:.2f} (median)")


if __name__ == "__main__":
    asyncio.run(main())
