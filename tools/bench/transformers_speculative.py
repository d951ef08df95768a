"""Speculative decoding with a Gemma 4 MTP drafter: acceptance, speed and prefill per agent step, side by side.

Three ways to run the same greedy three-step agent workload (a prompt, then two tool results appended, each step
generating ``--new`` tokens) on the same target model, in one process:

- ``plain``: agentkit's engine, no drafter (KV cache reused across steps);
- ``spec``: agentkit's engine with the drafter driven from its loop (``transformers/_assisted.py``): the drafter
  reads the engine's cache, so steps 2+ prefill only their new tokens;
- ``stock``: transformers' ``generate(assistant_model=...)`` — what agentkit did before: every step re-prefills
  the whole prompt.

The drafter is *derived from the target* so that its guesses correlate with the target's: its layers are copies
of the target's KV-shared layers (which, like a drafter's, attend to the shared keys/values), its embedding,
final norm and output head are the target's, its input projection passes the token embedding through and drops
the hidden state, and its output projection is the identity. It is the target with its first non-shared layers
skipped, so acceptance depends on how much those layers change the prediction — a property of these random
weights, not of Google's trained drafters (which need the real checkpoints, not downloadable here).

Run: ``python tools/bench/transformers_speculative.py`` (CPU, a 34 M-parameter model) or ``--e4b`` on CUDA
(the E4B shape of ``transformers_gpu.py``, bf16; ``--compile`` to compile the step, which takes minutes).
Greedy outputs of the three paths are compared token for token (in fp32; bf16 may differ at near-ties). Also
printed: the cost of one target pass, one verification pass and one drafter step, and the acceptance above
which drafting pays off with these costs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch


def target_config(args: Any, vocab: int) -> Any:
    if args.e4b:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import transformers_gpu

        transformers_gpu.DEVICE = "cuda"
        return transformers_gpu.e4b_config(42)
    from agentkit.testing.tiny_model import tiny_text_config

    layers, shared = args.layers, args.layers // 2
    kinds = ["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"] * layers
    return tiny_text_config(
        vocab,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 4,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=args.hidden // 4,
        hidden_size_per_layer_input=32,
        num_hidden_layers=layers,
        layer_types=[*kinds[: layers - 1], "full_attention"],
        num_kv_shared_layers=shared,
        sliding_window=128,
        max_position_embeddings=4096,
        final_logit_softcapping=30.0,
    )


def derive_drafter(target: Any, layers: int = 0) -> Any:
    """A ``Gemma4AssistantForCausalLM`` made of the target's last ``layers`` KV-shared layers (0: all of them),
    its head and its embedding (see above)."""
    import transformers as hf

    from agentkit.backends.transformers.compat import patch_gemma4_assistant_kv_sharing

    patch_gemma4_assistant_kv_sharing()
    text = target.config.get_text_config()
    shared = text.num_kv_shared_layers
    first = text.num_hidden_layers - (min(layers, shared) if layers > 0 else shared)
    kinds = list(text.layer_types[first:])
    fields = text.to_dict()
    for key in ("architectures", "model_type", "transformers_version", "per_layer_config", "dtype"):
        fields.pop(key, None)
    fields.update(
        num_hidden_layers=len(kinds),
        layer_types=kinds,
        num_kv_shared_layers=len(kinds),
        vocab_size_per_layer_input=0,
        hidden_size_per_layer_input=0,
    )
    draft_text = hf.Gemma4TextConfig(**fields)
    config = hf.Gemma4AssistantConfig(text_config=draft_text, backbone_hidden_size=text.hidden_size)
    dtype = next(target.parameters()).dtype
    device = next(target.parameters()).device
    with torch.device(device):
        drafter = hf.Gemma4AssistantForCausalLM._from_config(config, dtype=dtype).eval()
    with torch.no_grad():
        for j, layer in enumerate(drafter.model.layers):
            missing, _ = layer.load_state_dict(target.model.layers[first + j].state_dict(), strict=False)
            assert not missing, missing
        drafter.model.norm.load_state_dict(target.model.norm.state_dict())
        drafter.model.embed_tokens.weight.copy_(target.model.embed_tokens.weight)
        drafter.lm_head.weight = drafter.model.embed_tokens.weight
        h = text.hidden_size
        drafter.pre_projection.weight.zero_()
        drafter.pre_projection.weight[:, :h].copy_(torch.eye(h))  # the token embedding, as layer 0 gets it
        drafter.post_projection.weight.copy_(torch.eye(h))
    drafter.generation_config = hf.GenerationConfig(num_assistant_tokens=4, num_assistant_tokens_schedule="constant")
    return drafter


def sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--e4b", action="store_true", help="E4B-shaped bf16 model on CUDA")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--prompt", type=int, default=300, help="first prompt length (tokens)")
    parser.add_argument("--append", type=int, default=60, help="tokens appended per later step (a tool result)")
    parser.add_argument("--new", type=int, default=64, help="tokens generated per step")
    parser.add_argument("--draft", type=int, default=4, help="drafted tokens per round")
    parser.add_argument("--draft-layers", type=int, default=0, help="drafter layers (0: all KV-shared layers)")
    parser.add_argument("--compile", action="store_true", help="compile the engines' step (CUDA; minutes)")
    parser.add_argument("--no-stock", action="store_true", help="skip transformers' assisted generate")
    args = parser.parse_args()

    import transformers as hf

    from agentkit.backends.transformers._assisted import Drafter, generate_speculative
    from agentkit.backends.transformers._decoding import greedy_options
    from agentkit.backends.transformers._engine import Engine
    from agentkit.testing.tiny_model import build_tiny_tokenizer

    device = torch.device("cuda" if args.e4b else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)  # 2 cores shared with other jobs: more threads wait on each other
    tok = build_tiny_tokenizer()
    vocab = -(-len(tok) // 64) * 64
    torch.manual_seed(0)
    dtype = torch.bfloat16 if args.e4b else torch.float32
    with torch.device(device):
        model = hf.Gemma4ForCausalLM._from_config(target_config(args, vocab), dtype=dtype).eval()
    model.generation_config.eos_token_id = None
    drafter = derive_drafter(model, args.draft_layers)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    dparams = sum(p.numel() for p in drafter.parameters() if p is not drafter.lm_head.weight) / 1e6
    print(
        f"device {torch.cuda.get_device_name() if args.e4b else 'cpu'}; target {params:.0f} M parameters, "
        f"drafter {dparams:.1f} M (shares the target's embedding), draft {args.draft} tokens/round",
        flush=True,
    )

    text = "The weather in Paris stays sunny while the quick brown fox jumps over the lazy dog. " * 200
    pool = tok.encode(text, add_special_tokens=False)
    prompts = [pool[: args.prompt]]
    appends = [pool[args.prompt + i * args.append : args.prompt + (i + 1) * args.append] for i in range(2)]
    greedy = greedy_options()
    cache = 4096 if not args.e4b else 8192
    results: dict[str, list[tuple[int, int, float, float, list[int]]]] = {}

    def run(name: str, step: Any) -> None:
        rows = []
        history = list(prompts[0])
        for i in range(3):
            t0 = sync(device)
            prefilled, first_s, out = step(history)
            end = sync(device)
            ttft = first_s - t0
            rate = (len(out) - 1) / (end - first_s) if end > first_s else 0.0
            rows.append((len(history), prefilled, ttft, rate, out))
            if i < 2:
                history = [*history, *out, *appends[i]]
        results[name] = rows

    plain = Engine(model, tok, device=device, max_cache_len=cache, compile_decode=args.compile)
    spec = Engine(model, tok, device=device, max_cache_len=cache, compile_decode=args.compile, keep_hidden=True)
    mtp = Drafter(spec, drafter, draft_tokens=args.draft)
    if args.e4b:
        for engine in (plain, spec):
            engine.warm_up()

    def engine_step(engine: Engine, use: Drafter | None) -> Any:
        def step(history: list[int]) -> tuple[int, float, list[int]]:
            with torch.inference_mode():
                if use is None:
                    res = engine.generate(history, max_new_tokens=args.new, **greedy)
                else:
                    res = generate_speculative(engine, use, history, max_new_tokens=args.new, **greedy)
            return res.prompt_tokens - res.cached_tokens, res.first_token_s, list(res.token_ids or ())

        return step

    def stock_step(history: list[int]) -> tuple[int, float, list[int]]:
        first: list[float] = []

        class Streamer:
            def put(self, value: torch.Tensor) -> None:
                if put_calls and not first:  # the first put is the prompt
                    first.append(sync(device))
                put_calls.append(1)

            def end(self) -> None:
                pass

        put_calls: list[int] = []
        ids = torch.tensor([history], device=device)
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                assistant_model=drafter,
                max_new_tokens=args.new,
                do_sample=False,
                streamer=Streamer(),
            )
        return len(history), first[0] if first else sync(device), out[0, len(history) :].tolist()

    run("plain", engine_step(plain, None))  # warms the CPU kernels too; rerun below for the timing
    plain.reset()
    run("plain", engine_step(plain, None))
    run("spec", engine_step(spec, mtp))
    stats = mtp.stats
    if not args.no_stock:
        run("stock", stock_step)

    # Cost of the pieces, on the spec engine's cache as the last step left it: one target pass of one token (a
    # plain decode step), one verification pass of a drafted block, one drafter step.
    def per_call(fn: Any, n: int = 10) -> float:
        fn()
        t0 = sync(device)
        for _ in range(n):
            fn()
        return (sync(device) - t0) / n

    base = len(spec.cache_ids)
    hidden = torch.zeros((1, model.config.get_text_config().hidden_size), device=device, dtype=dtype)

    def one() -> None:
        spec.forward_block([5])
        spec.truncate(base)

    def block() -> None:
        spec.forward_block([5] * (args.draft + 1), pad_to=args.draft + 1)
        spec.truncate(base)

    def draft_step() -> None:
        mtp.draft(5, hidden, 1, temperature=0.0, top_p=1.0, top_k=0, generator=None)

    with torch.inference_mode():
        t_one, t_block, t_draft = per_call(one), per_call(block), per_call(draft_step)
    even = (t_block + args.draft * t_draft) / t_one

    print(f"\n{'path':<6} {'step':>4} {'history':>8} {'prefilled':>9} {'TTFT ms':>8} {'decode tok/s':>13}")
    for name, rows in results.items():
        for i, (hist, pre, ttft, rate, _out) in enumerate(rows, 1):
            print(f"{name:<6} {i:>4} {hist:>8} {pre:>9} {ttft * 1000:>8.1f} {rate:>13.1f}")
    same = {n: [r[4] for r in rows] == [r[4] for r in results["plain"]] for n, rows in results.items()}
    rates = {n: sum(r[3] for r in rows) / len(rows) for n, rows in results.items()}
    print(
        f"\nacceptance (spec): {stats.accepted}/{stats.drafted} drafted tokens = {stats.acceptance:.1%}; "
        f"{(stats.accepted + stats.rounds) / max(stats.rounds, 1):.2f} tokens per target pass "
        f"over {stats.rounds} rounds"
    )
    print(
        "mean decode tok/s: "
        + ", ".join(f"{n} {r:.1f}" for n, r in rates.items())
        + f"; spec / plain {rates['spec'] / rates['plain']:.2f}x"
        + (f", spec / stock {rates['spec'] / rates['stock']:.2f}x" if "stock" in rates else "")
    )
    print(
        f"per pass: target 1 token {t_one * 1000:.2f} ms, target {args.draft + 1}-token block "
        f"{t_block * 1000:.2f} ms, drafter step {t_draft * 1000:.2f} ms: a round costs {even:.2f} plain steps, so "
        f"drafting pays off above {even:.2f} tokens per target pass ({max(even - 1, 0) / args.draft:.0%} acceptance)"
    )
    pre = {n: [r[1] for r in rows] for n, rows in results.items()}
    print("prefilled tokens per step: " + "; ".join(f"{n} {p}" for n, p in pre.items()))
    print("greedy tokens equal to plain: " + ", ".join(f"{n} {'yes' if s else 'NO'}" for n, s in same.items()))
    return 0 if all(same.values()) or args.e4b else 1


if __name__ == "__main__":
    raise SystemExit(main())
