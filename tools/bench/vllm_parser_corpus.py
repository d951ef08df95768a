"""vLLM's own Gemma 4 parser on agentkit's tolerant-parsing corpus, for a side-by-side figure.

Runs ``vllm.parser.gemma4.Gemma4Parser.parse`` (what ``--tool-call-parser gemma4 --reasoning-parser gemma4``
runs for a chat completion) on every case of ``tests/data/toolcall_corpus.json`` and of the held-out
``toolcall_heldout.json`` with the case's tools, and prints how many expected calls it returns exactly and
how many negatives yield a call. The tokenizer is a stand-in that knows the Gemma 4 control tokens, as in
vLLM's own parser tests.

Run with a Python that has vLLM (it pins its own transformers, so keep it in its own venv):
``~/.cache/agentkit/vllm-venv/bin/python tools/bench/vllm_parser_corpus.py``; compare with the
"tolerant parsing" lines of ``tools/bench/protocol.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest  # type: ignore[import-not-found]
from vllm.parser.gemma4 import Gemma4Parser  # type: ignore[import-not-found]

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
CORPORA = (DATA / "toolcall_corpus.json", DATA / "toolcall_heldout.json")
TOKENS = ["<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>", '<|"|>', "<|tool_response>", "<turn|>", "<eos>"]


def vllm_calls(case: dict[str, Any]) -> list[dict[str, Any]]:
    tokenizer = MagicMock()
    tokenizer.get_vocab.return_value = {t: 100 + i for i, t in enumerate(TOKENS)}
    tools = [
        {"type": "function", "function": t if isinstance(t, dict) else {"name": t, "parameters": {"type": "object"}}}
        for t in case["tools"]
    ]
    request = ChatCompletionRequest(model="gemma-4", messages=[{"role": "user", "content": "x"}], tools=tools)
    try:
        _, _, calls = Gemma4Parser(tokenizer, request.tools).parse(case["text"], request, enable_auto_tools=True)
        return [{"name": c.name, "arguments": json.loads(c.arguments)} for c in calls or []]
    except Exception as exc:  # a parser crash counts as no call
        return [{"error": repr(exc)}]


def report(path: Path) -> None:
    corpus = json.loads(path.read_text(encoding="utf-8"))
    positives = [c for c in corpus["cases"] if c["expected_calls"]]
    hits = [c["id"] for c in positives if vllm_calls(c) == c["expected_calls"]]
    invented = [c["id"] for c in corpus["negatives"] if any("name" in x for x in vllm_calls(c))]
    print(f"vLLM gemma4 parser, {path.name}")
    print(f"  recovered                          {len(hits):3d} / {len(positives)}")
    print(f"  negatives with an invented call    {len(invented):3d} / {len(corpus['negatives'])}  {invented}")


def main() -> None:
    for path in CORPORA:
        report(path)


if __name__ == "__main__":
    main()
