"""Speed of the Gemma 4 protocol layer: render, parse, streaming parse, and how they scale.

Printed figures (min and median of many repeats, time.perf_counter):

- render: a 50-message conversation (tool rounds, results, thinking) with 20 tools declared, as
  ``render(...)`` (segments) and ``render(...).text`` (segments joined, untrusted text sanitized); also the
  first render of new tool dicts (declarations are cached per dict after that) and one without tools;
- parse: a ~2,000-token output (~8,000 characters: thinking, text and 5 calls) with ``parse_response``;
- streaming parse of the same output in chunks of 4 characters: total, and cost per chunk;
- scaling: time(2n) / time(n) for render (50 → 100 messages) and streaming parse (output doubled).
  About 2 means linear work; the goal is "well under 1 ms" at the base sizes;
- tolerant parsing, on two corpora printed separately: ``tests/data/toolcall_corpus.json`` (written alongside
  the recovery code) and the held-out ``tests/data/toolcall_heldout.json`` (collected before the fixes it
  measures); each case cites its public report or states its reason. Calls recovered with the tools
  declared versus the strict parser alone, cut-off calls reported rather than completed, and calls invented
  on the negatives (must be 0). vLLM's own parser on the same corpora:
  ``tools/bench/vllm_parser_corpus.py`` (run with a vLLM install).

Run: ``python tools/bench/protocol.py`` (no extras needed).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentkit.gemma4 import StreamParser, format_tool_call, parse_response, render

REPEATS = 300
CHUNK = 4
DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
CORPUS = DATA / "toolcall_corpus.json"  # written alongside the recovery code
HELDOUT = DATA / "toolcall_heldout.json"  # collected before the fixes it measures (see its description)


def make_tools(n: int) -> list[dict[str, Any]]:
    """Tools of realistic shape: strings, enums, numbers, nullable, a nested array of objects."""
    tools = []
    for i in range(n):
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": f"tool_{i}",
                    "description": f"Look up fact number {i} about a city, with options.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "city": {"type": "string", "description": "City name, e.g. Paris"},
                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                            "days": {"type": "integer", "description": "Forecast days", "nullable": True},
                            "stops": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {"name": {"type": "string"}, "nights": {"type": "integer"}},
                                    "required": ["name"],
                                },
                            },
                        },
                        "required": ["city"],
                    },
                },
            }
        )
    return tools


def make_messages(n: int) -> list[dict[str, Any]]:
    """``n`` messages: system, then rounds of user → assistant(call) → tool → assistant(answer)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a helpful assistant."}]
    i = 0
    while len(messages) < n:
        messages.append({"role": "user", "content": f"Question {i}: what is the weather in city {i}? " * 3})
        call = {
            "id": f"c{i}",
            "type": "function",
            "function": {"name": f"tool_{i % 20}", "arguments": {"city": f"C{i}"}},
        }
        messages.append({"role": "assistant", "content": "", "reasoning_content": "Need data.", "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": {"temp": 18.5, "sky": "cloudy", "i": i}})
        messages.append({"role": "assistant", "content": f"It is 18.5 degrees and cloudy in city {i}. " * 4})
        i += 1
    return messages[:n]


def make_output(scale: int = 1) -> str:
    """About 2,000 tokens per ``scale``: thinking, visible text, 5 calls, the hand-over."""
    parts = []
    for _ in range(scale):
        parts.append("<|channel>thought\n" + "I should check the data for each city, step by step. " * 60)
        parts.append("<channel|>" + "Here is what I found so far, with details and caveats. " * 80)
        for k in range(5):
            args = {"city": f"City {k}", "unit": "celsius", "days": k, "stops": [{"name": "A", "nights": 2}]}
            parts.append(format_tool_call(f"tool_{k}", args))
    return "".join(parts) + "<|tool_response>"


def timeit(fn: Callable[[], object], repeats: int = REPEATS) -> tuple[float, float]:
    """(min, median) seconds of ``fn`` over ``repeats`` runs, after a warm-up."""
    for _ in range(5):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return min(samples), statistics.median(samples)


def stream(text: str, tools: list[dict[str, Any]] | None = None) -> None:
    parser = StreamParser(tools)
    for i in range(0, len(text), CHUNK):
        parser.feed(text[i : i + CHUNK])
    parser.finish()


def corpus_figures(path: Path = CORPUS, round_: int | None = None) -> dict[str, tuple[int, int]]:
    """(hits, total) per figure on a tolerant-parsing corpus (only one collection round of it, if given)."""
    corpus = json.loads(path.read_text(encoding="utf-8"))
    cases = [c for c in corpus["cases"] if round_ is None or c.get("round", 1) == round_]
    negatives = [c for c in corpus["negatives"] if round_ is None or c.get("round", 1) == round_]
    positives = [c for c in cases if c["expected_calls"]]
    cut = [c for c in cases if c.get("expect_error")]

    def calls(case: dict[str, Any], tools: Any) -> list[dict[str, Any]]:
        return [{"name": c.name, "arguments": c.arguments} for c in parse_response(case["text"], tools).tool_calls]

    return {
        "recovered, tools declared": (
            sum(calls(c, c["tools"]) == c["expected_calls"] for c in positives),
            len(positives),
        ),
        "recovered, strict parser only": (
            sum(calls(c, None) == c["expected_calls"] for c in positives),
            len(positives),
        ),
        "cut-off calls reported, none run": (
            sum(
                calls(c, c["tools"]) == c["expected_calls"] and bool(parse_response(c["text"], c["tools"]).errors)
                for c in cut
            ),
            len(cut),
        ),
        "negatives with an invented call": (
            sum(bool(calls(c, c["tools"])) for c in negatives),
            len(negatives),
        ),
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.3f} ms"


def main() -> None:
    tools = make_tools(20)
    msgs50, msgs100 = make_messages(50), make_messages(100)
    out1, out2 = make_output(1), make_output(2)
    assert len(parse_response(out1).tool_calls) == 5

    fresh = iter([make_tools(20) for _ in range(REPEATS + 5)])  # new dicts: declarations not cached yet
    f_min, f_med = timeit(lambda: render(msgs50, next(fresh), enable_thinking=True).text)
    m_min, m_med = timeit(lambda: render(msgs50, enable_thinking=True).text)
    m2_min, m2_med = timeit(lambda: render(msgs100, enable_thinking=True).text)
    r_min, r_med = timeit(lambda: render(msgs50, tools, enable_thinking=True))
    t_min, t_med = timeit(lambda: render(msgs50, tools, enable_thinking=True).text)
    r2_min, r2_med = timeit(lambda: render(msgs100, tools, enable_thinking=True).text)
    p_min, p_med = timeit(lambda: parse_response(out1))
    s_min, s_med = timeit(lambda: stream(out1), repeats=100)
    s2_min, s2_med = timeit(lambda: stream(out2), repeats=100)
    st_min, st_med = timeit(lambda: stream(out1, tools), repeats=100)  # recovery on: boundaries checked
    chunks = (len(out1) + CHUNK - 1) // CHUNK
    prompt_chars = len(render(msgs50, tools, enable_thinking=True).text)

    print(f"render, 50 messages + 20 tools ({prompt_chars} chars of prompt)")
    print(f"  render() segments      min {ms(r_min)}   median {ms(r_med)}")
    print(f"  render().text          min {ms(t_min)}   median {ms(t_med)}")
    print(f"  .text, first render    min {ms(f_min)}   median {ms(f_med)}   (declarations not cached yet)")
    print(f"  .text, no tools        min {ms(m_min)}   median {ms(m_med)}")
    print(f"parse_response, ~2,000-token output ({len(out1)} chars, 5 calls)")
    print(f"  whole text             min {ms(p_min)}   median {ms(p_med)}")
    print(f"streaming parse, {CHUNK}-char chunks ({chunks} chunks)")
    print(f"  total                  min {ms(s_min)}   median {ms(s_med)}")
    print(f"  per chunk              min {s_min / chunks * 1e6:8.3f} µs   median {s_med / chunks * 1e6:8.3f} µs")
    print(f"  tools declared (recovery on)  min {ms(st_min)}   median {ms(st_med)}   ({st_min / s_min:4.2f}x by min)")
    print("scaling, time(2n) / time(n) (≈2 = linear)")
    print(f"  render 50 → 100 messages    min {r2_min / t_min:5.2f}   median {r2_med / t_med:5.2f}   (20 tools)")
    print(f"  render 50 → 100 messages    min {m2_min / m_min:5.2f}   median {m2_med / m_med:5.2f}   (no tools)")
    print(f"  stream parse 1x → 2x output min {s2_min / s_min:5.2f}   median {s2_med / s_med:5.2f}")
    later = sorted({c.get("round", 1) for c in json.loads(HELDOUT.read_text(encoding="utf-8"))["cases"]} - {1})
    for path, round_, label in (
        (CORPUS, None, ""),
        (HELDOUT, None, ""),
        *((HELDOUT, r, f", round {r} only (collected after the fixes of round {r - 1})") for r in later),
    ):
        print(f"tolerant parsing, {path.name}{label}")
        for figure, (hits, total) in corpus_figures(path, round_).items():
            print(f"  {figure:34} {hits:3d} / {total}")


if __name__ == "__main__":
    main()
