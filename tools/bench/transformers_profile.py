"""Where a decode step of the transformers fast path spends its GPU time, and whether it computes the right thing.

For an E4B-shaped model (``--layers`` to shrink it): one eager decode step over the static cache is profiled
(top CUDA kernels), timed at two cache sizes, and the compiled + CUDA-graph step is checked against the eager
step on the same cache state (relative logits error per step, bf16 expected around 1e-2).

Run on a CUDA machine: ``python tools/bench/transformers_profile.py [--layers 12]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch

from tools.bench.transformers_gpu import build_model, ids_of_length


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--cache", type=int, nargs="*", default=[1024, 12288])
    parser.add_argument("--fp32", action="store_true", help="float32 weights, TF32 off: checks exactness")
    parser.add_argument("--compiled-only", action="store_true", help="only profile the compiled step's kernels")
    parser.add_argument("--prefill", action="store_true", help="where a fresh prompt's prefill spends its time")
    args = parser.parse_args()

    from agentkit.backends.transformers._engine import Engine
    from agentkit.testing.tiny_model import build_tiny_tokenizer

    model = build_model(args.layers)
    if args.fp32:
        model.float()
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    tok = build_tiny_tokenizer()
    prompt = ids_of_length(tok, 512)
    dev = torch.device("cuda")

    if args.compiled_only:
        profile_compiled(model, tok, prompt, dev)
        return 0
    if args.prefill:
        profile_prefill(model, tok, dev)
        return 0

    for size in args.cache:
        eager = Engine(model, tok, device=dev, max_cache_len=size, compile_decode=False)
        prime(eager, prompt)
        n = len(eager.cache_ids)
        token = torch.tensor([5], device=dev)
        with torch.inference_mode():
            for _ in range(3):
                eager._decode_step(token, 5)
                eager._truncate(n)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(10):
                eager._decode_step(token, 5)
                eager._truncate(n)
            torch.cuda.synchronize()
            print(f"eager static step, cache {size}: {(time.perf_counter() - t0) / 10 * 1e3:.1f} ms", flush=True)
            if size == max(args.cache):
                from torch.profiler import ProfilerActivity, profile

                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    eager._decode_step(token, 5)
                    torch.cuda.synchronize()
                eager._truncate(n)
                print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18), flush=True)

    # Correctness of the compiled + captured step against the eager one, same cache state.
    size = max(args.cache)
    eager = Engine(model, tok, device=dev, max_cache_len=size, compile_decode=False)
    fast = Engine(model, tok, device=dev, max_cache_len=size, compile_decode=True)
    print(fast.wait_compiled(), flush=True)
    prime(eager, prompt)
    prime(fast, prompt)
    token_id = 5
    with torch.inference_mode():
        for step in range(6):
            token = torch.tensor([token_id], device=dev)
            a = eager._decode_step(token, token_id).float()
            b = fast._decode_step(token, token_id).float()
            err = ((a - b).norm() / a.norm()).item()
            print(
                f"step {step}: rel err {err:.2e}, argmax eager {int(a.argmax())} fast {int(b.argmax())}, "
                f"top gap {float(a.topk(2).values[0, 0] - a.topk(2).values[0, 1]):.3f}",
                flush=True,
            )
            token_id = int(a.argmax()) % 500  # stay inside the tokenizer
        graph, _ = next(v for k, v in sorted(fast._graphs.items()) if k[0] == 1)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(50):
            graph.replay()
        torch.cuda.synchronize()
        print(f"graph replay, cache {size}: {(time.perf_counter() - t0) / 50 * 1e3:.2f} ms", flush=True)
    return 0


def profile_prefill(model: Any, tok: Any, dev: torch.device) -> None:
    """A fresh prompt's prefill: stock forward vs the engine's path, before and after compilation is installed."""
    from torch.profiler import ProfilerActivity, profile
    from transformers import DynamicCache

    from agentkit.backends.transformers._engine import Engine

    def timed(label: str, fn: Any, reps: int = 5) -> None:
        with torch.inference_mode():
            fn()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            torch.cuda.synchronize()
        print(f"{label}: {(time.perf_counter() - t0) / reps * 1e3:.1f} ms", flush=True)

    for n in (512, 8150):
        ids = torch.tensor([ids_of_length(tok, n)], device=dev)

        def stock(ids: torch.Tensor = ids) -> None:
            model(input_ids=ids, use_cache=True, logits_to_keep=1, cache=DynamicCache(config=model.config))

        timed(f"stock forward, {n} tokens, before the engine", stock)
    engine = Engine(model, tok, device=dev, max_cache_len=12_288, compile_decode=True)
    print(engine.wait_compiled(), flush=True)
    for n in (512, 8150):
        ids_list = ids_of_length(tok, n)
        ids = torch.tensor([ids_list], device=dev)

        def stock(ids: torch.Tensor = ids) -> None:
            model(input_ids=ids, use_cache=True, logits_to_keep=1, cache=DynamicCache(config=model.config))

        def fresh(ids_list: list[int] = ids_list) -> None:
            engine.reset()
            engine.prepare(ids_list)
            engine._prefill_fresh(ids_list)

        def first_token(ids_list: list[int] = ids_list) -> None:
            engine.reset()
            prime(engine, ids_list)

        timed(f"stock forward, {n} tokens, after", stock)
        timed(f"engine fresh prefill, {n} tokens", fresh)
        timed(f"engine generate 1 token, {n} tokens", first_token)
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        first_token(ids_of_length(tok, 512))
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=25, max_name_column_width=60))


def prime(engine: Any, ids: list[int]) -> None:
    """Fill the engine's cache with ``ids`` (one greedy token generated), the state every measurement starts from."""
    engine.greedy(ids, 1)


def profile_compiled(model: Any, tok: Any, prompt: list[int], dev: torch.device) -> None:
    """Kernel times of the compiled step (run without its CUDA graph so the profiler sees each kernel)."""
    from torch.profiler import ProfilerActivity, profile

    from agentkit.backends.transformers._engine import Engine

    engine = Engine(model, tok, device=dev, max_cache_len=12_288, compile_decode=True)
    print(engine.wait_compiled(), flush=True)
    engine.use_graphs = False
    for history, shape in ((512, 1), (8000, 256), (2000, 64)):
        engine.reset()
        ids = (prompt * (history // len(prompt) + 1))[:history]
        prime(engine, ids)
        n = len(engine.cache_ids)
        buf_ids, buf_pos = (engine._step_ids, engine._step_pos) if shape == 1 else engine._chunk_bufs[shape]
        torch.arange(n, n + shape, out=buf_pos[0])
        with torch.inference_mode():
            for _ in range(3):
                engine._run(buf_ids, buf_pos, 1 if shape == 1 else 0)
                engine._set_length(n)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(5):
                engine._run(buf_ids, buf_pos, 1 if shape == 1 else 0)
                engine._set_length(n)
            torch.cuda.synchronize()
            ms = (time.perf_counter() - t0) / 5 * 1e3
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                engine._run(buf_ids, buf_pos, 1 if shape == 1 else 0)
                torch.cuda.synchronize()
            engine._set_length(n)
        total = sum(e.self_device_time_total for e in prof.key_averages()) / 1e3
        print(f"compiled step, {shape} token(s) at history {history}: {ms:.2f} ms wall, {total:.2f} ms GPU", flush=True)
        print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=12, max_name_column_width=70))


if __name__ == "__main__":
    raise SystemExit(main())
