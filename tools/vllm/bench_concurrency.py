"""Side-by-side: N requests one after another vs. all at once through one VLLMBackend.

Shows what the pooled client and vLLM's continuous batching give an agent that fans out (batch runs, parallel
sub-agents). Needs a running server, e.g. ``python tests/backends/vllm_server.py`` (tiny model on CPU):

    python tools/vllm/bench_concurrency.py --base-url http://127.0.0.1:PORT [-n 32] [--max-tokens 32]

The model defaults to the first one the server lists. Output tokens are forced to ``--max-tokens`` with
``min_tokens`` so both runs do the same work.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from agentkit.backends.base import GenerationDone, GenerationRequest, SamplingParams
from agentkit.backends.vllm import VLLMBackend
from agentkit.gemma4 import Prompt


async def one(backend: VLLMBackend, request: GenerationRequest) -> GenerationDone:
    done: GenerationDone | None = None
    async for event in backend.stream(request):
        if isinstance(event, GenerationDone):
            done = event
    assert done is not None
    return done


async def run(args: argparse.Namespace, model: str) -> None:
    backend = VLLMBackend(model, args.base_url, extra_body={"min_tokens": args.max_tokens})
    sampling = SamplingParams(temperature=1.0, top_p=0.95, top_k=64, max_tokens=args.max_tokens)
    requests = [
        GenerationRequest(
            prompt=Prompt.trusted("<bos><|turn>user\n")
            + Prompt.untrusted(f"Request {i}: what is the weather in Paris?")
            + "<turn|>\n<|turn>model\n",
            sampling=sampling,
        )
        for i in range(args.n)
    ]
    await one(backend, requests[0])  # warm-up: connection, model listing, first-request costs

    start = time.perf_counter()
    sequential = [await one(backend, r) for r in requests]
    seq_s = time.perf_counter() - start
    start = time.perf_counter()
    concurrent = await asyncio.gather(*(one(backend, r) for r in requests))
    con_s = time.perf_counter() - start
    await backend.aclose()

    def line(name: str, wall: float, results: list[GenerationDone]) -> None:
        tokens = sum(d.usage.completion_tokens for d in results)
        ttft = statistics.median(d.timings.ttft_s for d in results) * 1000
        print(f"{name:<11} {wall:7.2f} s  {tokens / wall:8.1f} tokens/s  median ttft {ttft:7.1f} ms  ({tokens} tokens)")

    print(f"{args.n} requests x {args.max_tokens} tokens, {model} at {args.base_url}")
    line("sequential", seq_s, sequential)
    line("concurrent", con_s, list(concurrent))
    print(f"concurrent / sequential throughput: {seq_s / con_s:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model")
    parser.add_argument("-n", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    model = args.model or httpx.get(f"{args.base_url}/v1/models").json()["data"][0]["id"]
    asyncio.run(run(args, model))


if __name__ == "__main__":
    main()
