"""GPU numbers for the transformers backend: stock ``model.generate`` vs agentkit's fast path, same model, same run.

The model is E4B-shaped Gemma 4 (42 layers, hidden 2560, 8 heads / 2 KV heads, head size 256 sliding / 512
global, per-layer embeddings 256, the last 18 layers sharing KV, vocabulary 262,144; about 7.5 B parameters in
bf16) with random weights: nothing can be downloaded on the GPU machine, and timing does not depend on weight
values. Prompts are token ids from agentkit's tiny tokenizer (ids below 1,000).

Measured (batch 1, temperature 0 unless said otherwise):
- decode tokens/s and time to first token, stock eager ``generate`` vs ``TransformersBackend`` (static cache,
  decode step compiled with ``torch.compile(mode="reduce-overhead")`` and replayed as a CUDA graph);
- an agent step: 150 new tokens appended to an H-token history, first token latency, with and without KV-cache
  reuse, for H = 2k, 4k, 6k, 8k (stock: full prefill through ``generate``; stock with reuse: eager forward of the
  150 tokens on a prefilled ``DynamicCache``).

Also measured: the first request's time to first token and decode rate while the background compilation
is still running (no stall), the compilation time (cold: empty cache directory), the decode ms/token against
the bandwidth floor (weight bytes read per token over a measured device-to-device copy rate), and with
``--startup-only`` the time a fresh process needs until the compiled step is ready (warm: run it after a cold
run with the same ``AGENTKIT_COMPILE_CACHE``).

Run on a CUDA machine: ``python tools/bench/transformers_gpu.py [--out DIR] [--layers N]``. Prints a table last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch

from agentkit.backends.base import GenerationDone, GenerationRequest, SamplingParams
from agentkit.backends.transformers.compat import cache_argument
from agentkit.gemma4.prompt import Prompt

STEP_APPEND = 150
HISTORIES = (2000, 4000, 6000, 8000)


DEVICE = "cuda"


def e4b_config(layers: int) -> Any:
    from transformers import Gemma4TextConfig

    if DEVICE != "cuda":  # --smoke: the same script on CPU with a small model, to check it runs
        from agentkit.testing.tiny_model import tiny_text_config

        return tiny_text_config(
            1024,
            max_position_embeddings=16_384,
            num_kv_shared_layers=1,
            num_hidden_layers=3,
            layer_types=["sliding_attention", "full_attention"] * 1 + ["full_attention"],
        )
    return Gemma4TextConfig(
        vocab_size=262_144,
        vocab_size_per_layer_input=262_144,
        hidden_size=2560,
        intermediate_size=10_240,
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=2,
        head_dim=256,
        hidden_size_per_layer_input=256,
        sliding_window=512,
        num_kv_shared_layers=layers * 18 // 42,
        final_logit_softcapping=30.0,
        max_position_embeddings=131_072,
    )


def build_model(layers: int) -> Any:
    from transformers import Gemma4ForCausalLM

    torch.manual_seed(0)
    with torch.device(DEVICE):
        dtype = torch.bfloat16 if DEVICE == "cuda" else torch.float32
        model = Gemma4ForCausalLM._from_config(e4b_config(layers), dtype=dtype)
    model.eval()
    model.generation_config.eos_token_id = None  # random weights: never stop early in the stock runs
    return model


def sync() -> float:
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def ids_of_length(tok: Any, n: int, salt: int = 0) -> list[int]:
    base = tok.encode(
        "The quick brown fox jumps over the lazy dog while the weather in Paris stays sunny. ",
        add_special_tokens=False,
    )
    out: list[int] = []
    i = salt
    while len(out) < n:
        out.extend(base)
        out.extend(tok.encode(f" step {i}.", add_special_tokens=False))
        i += 1
    return out[:n]


def copy_bandwidth() -> float:
    """Bytes/s of a large device-to-device copy, counting bytes read and written (the practical ceiling)."""
    x = torch.empty(1 << 30, dtype=torch.uint8, device=DEVICE)
    y = torch.empty_like(x)
    y.copy_(x)
    t0 = sync()
    for _ in range(10):
        y.copy_(x)
    return 2 * 10 * x.numel() / (sync() - t0)


def decode_bytes(model: Any) -> int:
    """Weight bytes one decode step reads: every parameter but the per-layer embedding table (only gathered)."""
    return sum(
        p.numel() * p.element_size() for name, p in model.named_parameters() if "embed_tokens_per_layer" not in name
    )


def startup_only(args: Any) -> int:
    """A fresh process: build the model, create the backend, and time until the compiled step is ready."""
    from agentkit.backends.transformers import TransformersBackend
    from agentkit.testing.tiny_model import build_tiny_tokenizer

    model = build_model(args.layers)
    tok = build_tiny_tokenizer()
    t0 = time.perf_counter()
    backend = TransformersBackend(model, tok, device=DEVICE, compile=True, max_cache_len=12_288)
    status = backend._engine.wait_compiled()
    ready = time.perf_counter() - t0
    backend._engine.warm_up()
    captured = time.perf_counter() - t0
    print(f"startup: compiled step ready after {ready:.1f} s ({status}); graphs captured after {captured:.1f} s")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "startup.json").write_text(json.dumps({"ready_s": ready, "captured_s": captured}))
    return 0


# --- stock transformers ------------------------------------------------------------------------------------


def stock_generate(model: Any, ids: list[int], new: int) -> float:
    x = torch.tensor([ids], device=DEVICE)
    t0 = sync()
    with torch.inference_mode():
        model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new, min_new_tokens=new, do_sample=False)
    return sync() - t0


def stock_reuse_step(model: Any, history: list[int], new: list[int]) -> float:
    from transformers import DynamicCache

    with torch.inference_mode():
        cache = {cache_argument(model): DynamicCache(config=model.config)}  # the name this transformers takes
        model(input_ids=torch.tensor([history], device=DEVICE), use_cache=True, logits_to_keep=1, **cache)
        x = torch.tensor([new], device=DEVICE)
        t0 = sync()
        out = model(input_ids=x, use_cache=True, logits_to_keep=1, **cache)
        int(out.logits[0, -1].argmax())
        return sync() - t0


# --- agentkit --------------------------------------------------------------------------------------------


def run_stream(backend: Any, prompt: Prompt, max_tokens: int, **sampling: Any) -> tuple[str, GenerationDone]:
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens).with_overrides(**sampling)
    request = GenerationRequest(prompt=prompt, sampling=params, stop=())

    async def go() -> tuple[str, GenerationDone]:
        text: list[str] = []
        done: GenerationDone | None = None
        async for event in backend.stream(request):
            if isinstance(event, GenerationDone):
                done = event
            else:
                text.append(event.text)
        assert done is not None
        return "".join(text), done

    return asyncio.run(go())


def prompt_of(tok: Any, ids: list[int]) -> Prompt:
    return Prompt.trusted(tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))


def main() -> int:
    parser = argparse.ArgumentParser(description="transformers backend GPU benchmark")
    parser.add_argument("--layers", type=int, default=42)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--stock-decode-tokens", type=int, default=48)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--skip-stock", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="run on CPU with a small model (checks the script)")
    parser.add_argument("--startup-only", action="store_true", help="only time a fresh process until compiled")
    args = parser.parse_args()
    global DEVICE
    if args.smoke:
        DEVICE = "cpu"
        torch.set_num_threads(1)
    if args.startup_only:
        return startup_only(args)

    import transformers

    from agentkit.backends.transformers import TransformersBackend
    from agentkit.testing.tiny_model import build_tiny_tokenizer

    gpu = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (smoke)"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {gpu}")
    t0 = time.perf_counter()
    model = build_model(args.layers)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e9:.2f} B parameters, built in {time.perf_counter() - t0:.1f} s", flush=True)
    tok = build_tiny_tokenizer()
    rows: list[tuple[str, str, str]] = []
    results: dict[str, Any] = {"params_b": n_params / 1e9, "layers": args.layers}
    med = statistics.median

    prompt_ids = ids_of_length(tok, 512)
    if not args.skip_stock:
        stock_generate(model, prompt_ids, 2)  # warm-up (cuBLAS handles, kernels)
        ttft = med(stock_generate(model, prompt_ids, 1) for _ in range(args.reps))
        n = args.stock_decode_tokens
        total = stock_generate(model, prompt_ids, n)
        stock_rate = (n - 1) / (total - ttft)
        results["stock"] = {"ttft_s": ttft, "decode_tok_s": stock_rate}
        print(f"stock: ttft {ttft * 1e3:.1f} ms, decode {stock_rate:.1f} tok/s", flush=True)
        for h in HISTORIES:
            hist = ids_of_length(tok, h)
            new = ids_of_length(tok, STEP_APPEND, salt=7)
            full = med(stock_generate(model, hist + new, 1) for _ in range(args.reps))
            reuse = med(stock_reuse_step(model, hist, new) for _ in range(args.reps))
            results.setdefault("stock_steps", {})[h] = {"no_reuse_s": full, "reuse_s": reuse}
            print(f"stock step H={h}: no reuse {full * 1e3:.1f} ms, reuse {reuse * 1e3:.1f} ms", flush=True)

    prompt = prompt_of(tok, prompt_ids)
    t0 = time.perf_counter()
    backend = TransformersBackend(model, tok, device=DEVICE, compile=DEVICE == "cuda", max_cache_len=12_288)
    if DEVICE != "cuda":
        backend._engine.static = True  # exercise the static-cache / chunked-prefill path
    # The first request, right away: served on the eager path while the compilation runs in the background.
    first = run_stream(backend, prompt, 32)[1]
    status = backend._engine.compile_status
    results["first_request"] = {
        "ttft_s": first.timings.ttft_s,
        "decode_tok_s": first.timings.tokens_per_s,
        "since_start_s": time.perf_counter() - t0,
        "status": str(status),
    }
    print(
        f"first request while {status.state}: ttft {first.timings.ttft_s * 1e3:.1f} ms, "
        f"decode {first.timings.tokens_per_s:.1f} tok/s, done {time.perf_counter() - t0:.1f} s after start",
        flush=True,
    )
    status = backend._engine.wait_compiled()
    ready_s = time.perf_counter() - t0
    backend.reset_cache()
    backend._engine.warm_up()
    compile_s = time.perf_counter() - t0
    results["compile_s"] = compile_s
    results["ready_s"] = ready_s
    results["compile_status"] = str(status)
    print(f"fast path: {status}; ready {ready_s:.1f} s, graphs captured {compile_s:.1f} s after start", flush=True)
    if DEVICE == "cuda":
        from torch._dynamo.utils import counters

        breaks = sum(counters["graph_break"].values())
        graph, _ = next(v for k, v in sorted(backend._engine._graphs.items()) if k[0] == 1)
        t0 = sync()
        for _ in range(50):
            graph.replay()
        replay_ms = (sync() - t0) / 50 * 1e3
        backend.reset_cache()
        bandwidth = copy_bandwidth()
        floor_ms = decode_bytes(model) / bandwidth * 1e3
        results["graph_breaks"] = breaks
        results["decode_replay_ms"] = replay_ms
        results["copy_bandwidth_tb_s"] = bandwidth / 1e12
        results["decode_floor_ms"] = floor_ms
        print(
            f"graph breaks: {breaks}; one decode-step graph replay: {replay_ms:.2f} ms; floor {floor_ms:.2f} ms "
            f"({decode_bytes(model) / 1e9:.2f} GB at {bandwidth / 1e12:.2f} TB/s copy rate)",
            flush=True,
        )
    # Same function? Greedy tokens of the fast path vs stock generate on the same prompt.
    check_n = 16
    backend.reset_cache()
    run_stream(backend, prompt, check_n)
    fast_ids = backend._engine.cache_ids[len(prompt.token_ids(tok)) :]
    with torch.inference_mode():
        x = torch.tensor([prompt.token_ids(tok)], device=DEVICE)
        ref = model.generate(
            x, attention_mask=torch.ones_like(x), max_new_tokens=check_n, min_new_tokens=check_n, do_sample=False
        )[0, x.shape[1] :].tolist()
    same = next((i for i, (a, b) in enumerate(zip(fast_ids, ref, strict=False)) if a != b), len(fast_ids))
    results["greedy_prefix_match"] = f"{same}/{len(fast_ids)}"
    print(f"greedy tokens identical to stock generate: first {same} of {len(fast_ids)}", flush=True)
    dec: list[GenerationDone] = []
    for _ in range(args.reps):
        backend.reset_cache()
        dec.append(run_stream(backend, prompt, args.decode_tokens)[1])
    fast_rate = med(d.timings.tokens_per_s for d in dec)
    fast_ttft = med(d.timings.ttft_s for d in dec)
    backend.reset_cache()
    sampled = run_stream(backend, prompt, args.decode_tokens, temperature=1.0, top_p=0.95, top_k=64, seed=1)[1]
    results["fast"] = {
        "ttft_s": fast_ttft,
        "decode_tok_s": fast_rate,
        "decode_tok_s_sampled": sampled.timings.tokens_per_s,
        "prompt_tokens": dec[0].usage.prompt_tokens,
    }
    rate_sampled = sampled.timings.tokens_per_s
    print(f"fast: ttft {fast_ttft * 1e3:.1f} ms, decode {fast_rate:.1f} tok/s (sampled {rate_sampled:.1f})")

    for h in HISTORIES:
        hist = prompt_of(tok, ids_of_length(tok, h))
        tool_result = Prompt.untrusted(tok.decode(ids_of_length(tok, STEP_APPEND, salt=7)))
        reuse: list[GenerationDone] = []
        fresh: list[GenerationDone] = []
        for _ in range(args.reps):
            backend.reset_cache()
            out, _ = run_stream(backend, hist, 8)
            step_prompt = hist + out + tool_result
            reuse.append(run_stream(backend, step_prompt, 8)[1])
            backend.reset_cache()
            fresh.append(run_stream(backend, step_prompt, 8)[1])
        results.setdefault("fast_steps", {})[h] = {
            "reuse_ttft_s": med(d.timings.ttft_s for d in reuse),
            "no_reuse_ttft_s": med(d.timings.ttft_s for d in fresh),
            "prompt_tokens": reuse[0].usage.prompt_tokens,
            "cached_tokens": reuse[0].usage.cached_tokens,
            "prefilled_reuse": reuse[0].usage.prompt_tokens - reuse[0].usage.cached_tokens,
            "prefilled_no_reuse": fresh[0].usage.prompt_tokens - fresh[0].usage.cached_tokens,
        }
        r = results["fast_steps"][h]
        print(
            f"fast step H={h}: reuse {r['reuse_ttft_s'] * 1e3:.1f} ms ({r['prefilled_reuse']} prefilled), "
            f"no reuse {r['no_reuse_ttft_s'] * 1e3:.1f} ms ({r['prefilled_no_reuse']} prefilled)",
            flush=True,
        )

    # --- table ---
    fast = results["fast"]
    stock = results.get("stock")
    rows.append(
        ("decode tok/s (greedy)", f"{stock['decode_tok_s']:.1f}" if stock else "-", f"{fast['decode_tok_s']:.1f}")
    )
    rows.append(("decode tok/s (T=1, top-p/k)", "-", f"{fast['decode_tok_s_sampled']:.1f}"))
    rows.append(
        ("TTFT, 512-token prompt (ms)", f"{stock['ttft_s'] * 1e3:.1f}" if stock else "-", f"{fast['ttft_s'] * 1e3:.1f}")
    )
    for h in HISTORIES:
        f = results["fast_steps"][h]
        s = results.get("stock_steps", {}).get(h)
        rows.append(
            (
                f"step +{STEP_APPEND} @ {h} history, no reuse (ms)",
                f"{s['no_reuse_s'] * 1e3:.1f}" if s else "-",
                f"{f['no_reuse_ttft_s'] * 1e3:.1f} ({f['prefilled_no_reuse']} tok prefilled)",
            )
        )
        rows.append(
            (
                f"step +{STEP_APPEND} @ {h} history, reuse (ms)",
                f"{s['reuse_s'] * 1e3:.1f}" if s else "-",
                f"{f['reuse_ttft_s'] * 1e3:.1f} ({f['prefilled_reuse']} tok prefilled)",
            )
        )
    if stock:
        rows.append(("decode speed-up vs stock", "1.0x", f"{fast['decode_tok_s'] / stock['decode_tok_s']:.1f}x"))
    fr = results["first_request"]
    rows.append(
        (
            "first request, during compilation",
            "-",
            f"ttft {fr['ttft_s'] * 1e3:.0f} ms, {fr['decode_tok_s']:.1f} tok/s, done at {fr['since_start_s']:.1f} s",
        )
    )
    rows.append(("compiled step ready (s, background)", "-", f"{results['ready_s']:.0f}"))
    rows.append(("+ graphs captured (s)", "-", f"{results['compile_s']:.0f}"))
    rows.append(("greedy tokens = stock generate (bf16)", "-", results["greedy_prefix_match"]))
    if "decode_replay_ms" in results:
        rows.append(("decode graph replay alone (ms/token)", "-", f"{results['decode_replay_ms']:.2f}"))
        rows.append(
            (
                "bandwidth floor (ms/token), replay / floor",
                "-",
                f"{results['decode_floor_ms']:.2f}, {results['decode_replay_ms'] / results['decode_floor_ms']:.2f}x",
            )
        )
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'metric':<{width}} | {'stock generate':>14} | agentkit TransformersBackend")
    print(f"{'-' * width}-+-{'-' * 14}-+-{'-' * 30}")
    for name, a, b in rows:
        print(f"{name:<{width}} | {a:>14} | {b}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "transformers_gpu.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
