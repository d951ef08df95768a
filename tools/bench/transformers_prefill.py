"""Where time to first token goes for a fresh prompt: stock vs each prefill path of agentkit's engine, same run.

An agent's first step (and any step whose prompt does not extend the cache) prefills the whole prompt. This
script times, for several prompt lengths, on the E4B-shaped random-weight model of ``transformers_gpu.py``:

- stock: ``model.generate(max_new_tokens=1)`` and a bare forward over a ``DynamicCache`` (what generate runs);
- the engine's paths from an empty cache: the stock-like eager pass copied into the static cache
  (``_prefill_fresh``), the captured chunk graphs (``_prefill_chunks``), and ``Engine.greedy(ids, 1)``;
- the backend's own time to first token (``TransformersBackend.stream``), compile off and on;

and prints CUDA-kernel and CPU profiles of one prefill per path at ``--profile-len`` tokens, so a gap can be
traced to kernels or to the host. Phases without compilation come first (compiling changes the model's
attention function); ``--no-compile`` stops there.

Run on a CUDA machine: ``python -u tools/bench/transformers_prefill.py [--layers 42] [--out DIR]``;
``--smoke`` runs it on CPU with a small model to check the script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch

import tools.bench.transformers_gpu as gpu

RESULTS: dict[str, dict[str, float]] = {}


def timed(label: str, n: int, fn: Callable[[], Any], reps: int) -> float:
    """Median seconds of ``fn`` over ``reps`` runs after one warm-up; recorded under ``label``/``n``."""
    with torch.inference_mode():
        fn()
        times = []
        for _ in range(reps):
            t0 = gpu.sync()
            fn()
            times.append(gpu.sync() - t0)
    value = statistics.median(times)
    RESULTS.setdefault(label, {})[str(n)] = value
    print(f"{label:<34} n={n:<5} {value * 1e3:8.1f} ms  (min {min(times) * 1e3:.1f})", flush=True)
    return value


def profile(label: str, fn: Callable[[], Any], rows: int = 14) -> None:
    """CUDA kernels by device time and host ops by CPU time, for one call of ``fn`` (after a warm-up)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU]
    if gpu.DEVICE == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with torch.inference_mode():
        fn()
        gpu.sync()
        with torch_profile(activities=activities) as prof:
            fn()
            gpu.sync()
    events = prof.key_averages()
    device_ms = sum(e.self_device_time_total for e in events) / 1e3
    print(f"\n--- profile: {label}: {device_ms:.1f} ms of device time ---", flush=True)
    sort = "self_device_time_total" if gpu.DEVICE == "cuda" else "self_cpu_time_total"
    print(events.table(sort_by=sort, row_limit=rows, max_name_column_width=70), flush=True)
    print(events.table(sort_by="cpu_time_total", row_limit=8, max_name_column_width=70), flush=True)


def stock_paths(model: Any, tok: Any, lengths: list[int], reps: int, tag: str) -> None:
    from transformers import DynamicCache

    from agentkit.backends.transformers.compat import cache_argument

    name = cache_argument(model)
    for n in lengths:
        ids = gpu.ids_of_length(tok, n)
        x = torch.tensor([ids], device=gpu.DEVICE)
        timed(f"stock generate 1 token{tag}", n, lambda ids=ids: gpu.stock_generate(model, ids, 1), reps)

        def forward(x: torch.Tensor = x) -> None:
            model(input_ids=x, use_cache=True, logits_to_keep=1, **{name: DynamicCache(config=model.config)})

        timed(f"stock forward{tag}", n, forward, reps)


def engine_paths(engine: Any, tok: Any, lengths: list[int], reps: int, tag: str) -> None:
    for n in lengths:
        ids = gpu.ids_of_length(tok, n)

        def fresh(ids: list[int] = ids) -> None:
            engine.reset()
            engine.prepare(ids)
            engine._prefill_fresh(ids)

        def chunks(ids: list[int] = ids) -> None:
            engine.reset()
            engine.prepare(ids)
            engine._prefill_chunks(ids)

        def first(ids: list[int] = ids) -> None:
            engine.reset()
            engine.greedy(ids, 1)

        timed(f"engine fresh eager{tag}", n, fresh, reps)
        if n <= 4200:
            timed(f"engine chunk graphs{tag}", n, chunks, reps)
        timed(f"engine greedy 1 token{tag}", n, first, reps)


def backend_ttft(backend: Any, tok: Any, lengths: list[int], reps: int, tag: str) -> None:
    for n in lengths:
        prompt = gpu.prompt_of(tok, gpu.ids_of_length(tok, n))
        backend.reset_cache()
        gpu.run_stream(backend, prompt, 1)
        ttfts = []
        for _ in range(reps):
            backend.reset_cache()
            ttfts.append(gpu.run_stream(backend, prompt, 1)[1].timings.ttft_s)
        value = statistics.median(ttfts)
        RESULTS.setdefault(f"backend ttft{tag}", {})[str(n)] = value
        print(f"{'backend ttft' + tag:<34} n={n:<5} {value * 1e3:8.1f} ms  (min {min(ttfts) * 1e3:.1f})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=42)
    parser.add_argument("--lengths", type=int, nargs="*", default=[512, 768, 1024, 1536, 2150, 4150, 8150])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--profile-len", type=int, nargs="*", default=[1024, 2150])
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--diagnose", action="store_true", help="only: why the eager pass slows once compiled")
    parser.add_argument("--compiled-only", action="store_true", help="stock, then the compiled phase, no profiles")
    args = parser.parse_args()
    if args.smoke:
        gpu.DEVICE = "cpu"
        torch.set_num_threads(1)
    import transformers

    from agentkit.backends.transformers import TransformersBackend
    from agentkit.backends.transformers._compile import install_attention
    from agentkit.backends.transformers._engine import Engine
    from agentkit.testing.tiny_model import build_tiny_tokenizer

    dev = torch.device(gpu.DEVICE)
    name = torch.cuda.get_device_name() if gpu.DEVICE == "cuda" else "cpu (smoke)"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {name}", flush=True)
    model = gpu.build_model(args.layers)
    tok = build_tiny_tokenizer()
    lengths = args.lengths

    if args.diagnose:
        return diagnose_eager(model, tok, dev, args)

    print("\n== phase 1: stock, engine and backend, no compilation (sdpa) ==", flush=True)
    stock_paths(model, tok, lengths, args.reps, "")
    if args.compiled_only:
        return compiled_phase(model, tok, args, profile_with=None)
    engine = Engine(model, tok, device=dev, max_cache_len=12_288, compile_decode=False, static=True)
    engine_paths(engine, tok, lengths, args.reps, "")
    backend = TransformersBackend(model, tok, device=gpu.DEVICE, compile=False, max_cache_len=12_288)
    backend._engine.static = True
    backend_ttft(backend, tok, lengths, args.reps, "")
    print("\n== phase 2: agentkit's attention function installed (as once compilation starts) ==", flush=True)
    install_attention(model)
    stock_paths(model, tok, lengths[:3], args.reps, " [ak attn]")
    engine_paths(engine, tok, lengths[:3], args.reps, " [ak attn]")
    if args.no_compile or gpu.DEVICE != "cuda":
        profiles(model, tok, engine, None, args.profile_len)
        return finish(args)

    return compiled_phase(model, tok, args, profile_with=engine)


def compiled_phase(model: Any, tok: Any, args: Any, *, profile_with: Any) -> int:
    from agentkit.backends.transformers import TransformersBackend

    lengths = args.lengths
    print("\n== phase 3: compiled (background compilation waited for) ==", flush=True)
    t0 = time.perf_counter()
    fast = TransformersBackend(model, tok, device=gpu.DEVICE, compile=True, max_cache_len=12_288)
    status = fast._engine.wait_compiled()
    fast._engine.warm_up()
    print(f"compiled: {status}, {time.perf_counter() - t0:.1f} s with graphs", flush=True)
    stock_paths(model, tok, lengths, args.reps, " [after]")
    engine_paths(fast._engine, tok, lengths, args.reps, " [compiled]")
    backend_ttft(fast, tok, lengths, args.reps, " [compiled]")
    if profile_with is not None:
        profiles(model, tok, profile_with, fast._engine, args.profile_len)
    return finish(args)


def diagnose_eager(model: Any, tok: Any, dev: torch.device, args: Any) -> int:
    """The eager fresh prefill before and after the compiled step exists: wall vs this thread's CPU time,
    allocator calls, garbage collection, threads. Run 2 saw it go from ~50 to ~80 ms at 1,024 tokens."""
    import gc
    import threading

    from transformers import DynamicCache

    from agentkit.backends.transformers import TransformersBackend
    from agentkit.backends.transformers._engine import Engine
    from agentkit.backends.transformers.compat import cache_argument

    kw = cache_argument(model)
    stats: Any = torch.cuda.memory_stats if gpu.DEVICE == "cuda" else dict

    def probe(label: str, engine: Any) -> None:
        for n in args.lengths:
            ids = gpu.ids_of_length(tok, n)
            x = torch.tensor([ids], device=gpu.DEVICE)

            def fresh(ids: list[int] = ids) -> None:
                engine.reset()
                engine.prepare(ids)
                engine._prefill_fresh(ids)

            def stock(x: torch.Tensor = x) -> None:
                model(input_ids=x, use_cache=True, logits_to_keep=1, **{kw: DynamicCache(config=model.config)})

            with torch.inference_mode():
                for name, fn in (("fresh", fresh), ("stock", stock)):
                    fn()
                    walls, cpus = [], []
                    before = stats()
                    for _ in range(args.reps):
                        t0, c0 = gpu.sync(), time.thread_time()
                        fn()
                        walls.append(gpu.sync() - t0)
                        cpus.append(time.thread_time() - c0)
                    after = stats()
                    allocs = {
                        k.replace("num_", ""): after.get(k, 0) - before.get(k, 0)
                        for k in ("num_device_alloc", "num_device_free", "num_alloc_retries", "num_sync_all_streams")
                    }
                    gc.disable()
                    t0 = gpu.sync()
                    for _ in range(args.reps):
                        fn()
                    no_gc = (gpu.sync() - t0) / args.reps
                    gc.enable()
                    print(
                        f"{label:<9} {name:<6} n={n:<5} wall {statistics.median(walls) * 1e3:6.1f} ms, thread cpu "
                        f"{statistics.median(cpus) * 1e3:6.1f} ms, gc off {no_gc * 1e3:6.1f} ms, allocator {allocs}",
                        flush=True,
                    )

    eager = Engine(model, tok, device=dev, max_cache_len=12_288, compile_decode=False, static=True)
    probe("before", eager)
    t0 = time.perf_counter()
    fast = TransformersBackend(model, tok, device=gpu.DEVICE, compile=True, max_cache_len=12_288)
    status = fast._engine.wait_compiled()
    print(f"compiled: {status} in {time.perf_counter() - t0:.0f} s; threads {[t.name for t in threading.enumerate()]}")
    probe("compiled", eager)  # the uncompiled engine again, now that compiled code exists in the process
    if fast._engine.static:  # CUDA (a CPU smoke run keeps a growing cache)
        fast._engine.warm_up()
        probe("captured", fast._engine)
    print(f"gc counts {gc.get_count()}, objects {len(gc.get_objects())}, threads {threading.active_count()}")
    return 0


def profiles(model: Any, tok: Any, eager: Any, compiled: Any, lengths: list[int]) -> None:
    """Kernel and host profiles, last: a profiler session leaves launches slower for the rest of the process."""
    from transformers import DynamicCache

    from agentkit.backends.transformers.compat import cache_argument

    kw = cache_argument(model)
    for n in lengths:
        ids = gpu.ids_of_length(tok, n)
        x = torch.tensor([ids], device=gpu.DEVICE)
        profile(
            f"stock forward {n}",
            lambda x=x: model(input_ids=x, use_cache=True, logits_to_keep=1, **{kw: DynamicCache(config=model.config)}),
        )
        for label, e in (("eager", eager), ("compiled", compiled)):
            if e is None:
                continue
            profile(f"{label} engine greedy 1 token {n}", lambda ids=ids, e=e: (e.reset(), e.greedy(ids, 1)))
            if n <= 1024:
                profile(
                    f"{label} engine chunks {n} (uncaptured)",
                    lambda ids=ids, e=e: _uncaptured(e, lambda: (e.reset(), e.prepare(ids), e._prefill_chunks(ids))),
                )


def _uncaptured(engine: Any, fn: Callable[[], Any]) -> None:
    """Run ``fn`` with graph replay off, so the profiler sees each kernel of the step."""
    before = engine.use_graphs
    engine.use_graphs = False
    try:
        fn()
    finally:
        engine.use_graphs = before


def finish(args: Any) -> int:
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "transformers_prefill.json").write_text(json.dumps(RESULTS, indent=2))
    print("\n== summary (median ms) ==")
    lengths = sorted({int(n) for v in RESULTS.values() for n in v})
    print(f"{'path':<34}" + "".join(f"{n:>9}" for n in lengths))
    for label, values in RESULTS.items():
        cells = "".join(f"{values[str(n)] * 1e3:9.1f}" if str(n) in values else f"{'-':>9}" for n in lengths)
        print(f"{label:<34}{cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
