"""How often tool calls come out well-formed and valid, with and without grammar-constrained decoding.

Runs a fixed set of tool-calling prompts (four tools: strings with maxLength, enums, integers, booleans, a nullable
number, a list of objects, a tool without parameters) against a backend, each prompt in turn, ``-n`` generations
per mode, and sends each request exactly as :class:`agentkit.Agent` does (its rendering, its grammar). Modes:

- ``unconstrained``: tool_choice ``auto``, no grammar (what Ollama gives you);
- ``constrained-auto``: tool_choice ``auto`` with the grammar;
- ``constrained-required``: tool_choice ``required`` with the grammar.

For each mode it prints the calls *emitted* (``<|tool_call>`` openers, or parsed calls where more), *clean* (parsed
as written and valid against the tool's JSON schema), *repaired* (parsed only after tolerant repair, then valid),
*invalid* (parsed but failing the schema, or an undeclared tool), *lost* (emitted but not parsed) and *cut* (the last
call of an output that max_tokens ended, which no grammar can finish), plus how many generations had no call.

``--cost`` adds grammar compile time (cold, each tool_choice) and the per-token mask cost (fill the token bitmask,
apply it to the logits, accept the token) over a canonical call, for the backend's tokenizer where it is local and
for a vocabulary padded to 262,144 tokens (Gemma 4's size).

Run::

    python tools/bench/toolcall_reliability.py transformers:/path/to/gemma-4-E4B-it -n 100
    python tools/bench/toolcall_reliability.py vllm://127.0.0.1:8000/google/gemma-4-E4B-it -n 100 --cost

A random-weight model (``agentkit.testing.tiny_model``) never ends a string or a list on its own; every string
here declares ``maxLength``, which the grammar enforces, so its calls end within the token budget.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import string
import sys
import time
from dataclasses import dataclass
from typing import Any

import jsonschema

from agentkit import backend_from_url, gemma4
from agentkit.backends.base import Backend, GenerationRequest, SamplingParams, TextDelta

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather and forecast for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name", "maxLength": 40},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer", "description": "Forecast days"},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "create_event",
            "description": "Put an event in the calendar.",
            "parameters": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "maxLength": 40},
                    "all_day": {"type": "boolean"},
                    "attendees": {
                        "type": "array",
                        "maxItems": 3,
                        "items": {
                            "type": "object",
                            "properties": {
                                "email": {"type": "string", "maxLength": 30},
                                "optional": {"type": "boolean"},
                            },
                            "required": ["email"],
                        },
                    },
                    "priority": {"type": "number", "nullable": True},
                },
                "required": ["title", "all_day"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_files",
            "description": "Search the workspace for a text pattern.",
            "parameters": {
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "maxLength": 60},
                    "max_results": {"type": "integer"},
                    "include_hidden": {"type": "boolean"},
                },
                "required": ["pattern"],
            },
        },
    },
    {"type": "function", "function": {"name": "get_time", "description": "The current time."}},
]

PROMPTS = [
    "What is the weather in Paris for the next 3 days, in celsius?",
    "Create an all-day event called Offsite with a@example.org and b@example.org.",
    "Find every TODO comment in the workspace, at most 20 results.",
    "What time is it?",
]

MODES = {
    "unconstrained": (None, "auto"),
    "constrained-auto": (True, "auto"),
    "constrained-required": (True, "required"),
}


def _jsonschema(schema: Any) -> Any:
    """The declared schema as JSON Schema proper (Gemma's ``nullable`` becomes a null alternative)."""
    if isinstance(schema, list):
        return [_jsonschema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _jsonschema(v) for k, v in schema.items() if k != "nullable"}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: _jsonschema(v) for k, v in schema["properties"].items()}
        out["additionalProperties"] = False
    if schema.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


SCHEMAS = {
    t["function"]["name"]: _jsonschema(t["function"].get("parameters") or {"type": "object", "properties": {}})
    for t in TOOLS
}


@dataclass
class Tally:
    generations: int = 0
    without_call: int = 0
    emitted: int = 0
    clean: int = 0
    repaired: int = 0
    invalid: int = 0
    lost: int = 0
    cut: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def add(self, raw: str, budget_ran_out: bool) -> None:
        parsed = gemma4.parse_response(raw, tools=TOOLS)  # declared tools: drifted calls are recovered
        opened = raw.count(gemma4.tokens.TOOL_CALL_START)
        self.generations += 1
        self.emitted += max(opened, len(parsed.tool_calls))
        unparsed = max(0, opened - len(parsed.tool_calls))
        # The last call of an output cut by max_tokens was never finished: no grammar can help that one.
        cut = 1 if budget_ran_out and unparsed and not raw.rstrip().endswith(gemma4.tokens.TOOL_CALL_END) else 0
        self.cut += cut
        self.lost += unparsed - cut
        if not parsed.tool_calls:
            self.without_call += 1
        for call in parsed.tool_calls:
            schema = SCHEMAS.get(call.name)
            valid = schema is not None and not list(jsonschema.Draft202012Validator(schema).iter_errors(call.arguments))
            if not valid:
                self.invalid += 1
            elif call.repair is not None:
                self.repaired += 1
            else:
                self.clean += 1


async def run_mode(backend: Backend, mode: str, n: int, max_tokens: int, temperature: float) -> Tally:
    constrain, choice = MODES[mode]
    grammar_ok = backend.capabilities.grammar
    tally = Tally()
    for i in range(n):
        prompt = PROMPTS[i % len(PROMPTS)]
        messages = [{"role": "user", "content": prompt}]
        request = GenerationRequest(
            prompt=gemma4.render(messages, TOOLS),
            sampling=SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=i),
            messages=messages,
            tools=TOOLS,
            grammar=gemma4.tool_call_grammar(TOOLS, choice) if constrain and grammar_ok else None,
        )
        parts: list[str] = []
        stop: str | None = None
        start = time.perf_counter()
        async for event in backend.stream(request):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            else:
                tally.tokens += event.usage.completion_tokens
                stop = event.stop
        tally.seconds += time.perf_counter() - start
        tally.add("".join(parts), budget_ran_out=stop is None)
    return tally


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def print_table(url: str, results: dict[str, Tally]) -> None:
    print(f"\nbackend {url}")
    header = f"{'mode':<22}{'gens':>6}{'no call':>9}{'emitted':>9}{'clean':>8}{'repaired':>10}{'invalid':>9}{'lost':>6}"
    print(header + f"{'cut':>5}{'ok % of finished':>18}{'tok/s':>8}")
    for mode, t in results.items():
        ok = t.clean + t.repaired
        rate = t.tokens / t.seconds if t.seconds else 0.0
        print(
            f"{mode:<22}{t.generations:>6}{t.without_call:>9}{t.emitted:>9}{t.clean:>8}{t.repaired:>10}"
            f"{t.invalid:>9}{t.lost:>6}{t.cut:>5}{_pct(ok, t.emitted - t.cut):>18}{rate:>8.0f}"
        )
    print("(cut: the call the token budget ended; ok % counts clean + repaired among the other calls)")


# -- cost -----------------------------------------------------------------------------------------------------


def _canonical_output(choice: str) -> str:
    """A well-formed output for ``choice``: ``required`` allows no text before the calls."""
    return (
        ("Let me check." if choice == "auto" else "")
        + gemma4.format_tool_call("get_weather", {"city": "Paris", "days": 3, "unit": "celsius"})
        + gemma4.format_tool_call(
            "create_event",
            {"all_day": True, "attendees": [{"email": "a@example.org"}], "priority": None, "title": "Offsite"},
        )
        + gemma4.tokens.TOOL_RESPONSE_START
    )


def measure_cost(tokenizer: Any, label: str, pad_to: int | None) -> None:
    import torch
    import xgrammar as xgr

    vocab = [tok for tok, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
    if pad_to:
        rng = random.Random(0)
        seen = set(vocab)
        while len(vocab) < pad_to:
            word = "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(2, 9)))
            if word not in seen:
                seen.add(word)
                vocab.append(word)
        info = xgr.TokenizerInfo(vocab, vocab_type=xgr.VocabType.BYTE_LEVEL, stop_token_ids=[tokenizer.eos_token_id])
    else:
        info = xgr.TokenizerInfo.from_huggingface(tokenizer)
    print(f"\ncost with {label} ({info.vocab_size:,} tokens)")
    for choice in ("auto", "required"):
        ids = tokenizer.encode(_canonical_output(choice), add_special_tokens=False)
        grammar = gemma4.tool_call_grammar(TOOLS, choice)
        compiler = xgr.GrammarCompiler(info, cache_enabled=False)
        start = time.perf_counter()
        compiled = compiler.compile_structural_tag(grammar.structural_tag)
        compile_ms = (time.perf_counter() - start) * 1000
        logits = torch.zeros((1, info.vocab_size), dtype=torch.float32)
        bitmask = xgr.allocate_token_bitmask(1, info.vocab_size)
        per_token: list[float] = []
        for _ in range(5):
            matcher = xgr.GrammarMatcher(compiled)
            for token in ids:
                t0 = time.perf_counter()
                matcher.fill_next_token_bitmask(bitmask)
                xgr.apply_token_bitmask_inplace(logits, bitmask)
                accepted = matcher.accept_token(token)
                per_token.append(time.perf_counter() - t0)
                if not accepted:
                    raise SystemExit(f"the grammar ({choice}) rejected the canonical output at token {token}")
        median = statistics.median(per_token) * 1e6
        mean = statistics.fmean(per_token) * 1e6
        print(
            f"  tool_choice={choice:<9} ({len(ids)} tokens) compile {compile_ms:7.1f} ms   "
            f"mask per token: median {median:6.1f} µs, mean {mean:6.1f} µs, max {max(per_token) * 1e6:7.1f} µs"
        )


def _tokenizer_of(backend: Backend) -> Any:
    """The backend's Hugging Face tokenizer (in process), or the served model's when it is a local directory."""
    tok = getattr(backend, "tokenizer", None)
    if tok is not None:
        return tok
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(backend.model)
    except Exception:  # a Hub id not in the cache, or no transformers: no cost section
        return None


async def main_async(args: argparse.Namespace) -> int:
    backend = backend_from_url(args.backend_url)
    try:
        if not backend.capabilities.grammar:
            print(
                f"note: {backend.name} cannot constrain ({backend.capabilities.grammar_note}); "
                "constrained modes run unconstrained"
            )
        results = {}
        for mode in args.modes:
            results[mode] = await run_mode(backend, mode, args.n, args.max_tokens, args.temperature)
        print_table(args.backend_url, results)
        if args.cost:
            tokenizer = _tokenizer_of(backend)
            if tokenizer is None:
                print("\n(no local tokenizer for this backend: cost section skipped)")
            else:
                measure_cost(tokenizer, "the backend's tokenizer", None)
                measure_cost(tokenizer, "its vocabulary padded to Gemma 4's size", 262_144)
    finally:
        await backend.aclose()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backend_url", help="e.g. vllm://127.0.0.1:8000/MODEL or transformers:/path/to/model")
    parser.add_argument("-n", type=int, default=100, help="generations per mode (default 100)")
    parser.add_argument("--max-tokens", type=int, default=600)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--cost", action="store_true", help="also print compile time and per-token mask cost")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
