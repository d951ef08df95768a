"""Batch script: many independent tasks against one backend, a few at a time, results as JSON lines.

    AGENTKIT_BACKEND=vllm://gpu-box:8000/google/gemma-4-31B-it python examples/batch_script.py questions.txt

One question per line in the file (or a built-in list without one). Each task gets its own Agent (its own
conversation) on the shared backend; a semaphore bounds how many run at once, which is what lets vLLM
batch them. A failed task is reported in its result line and does not stop the others. For resumable
runs over large files, use the command instead: ``agentkit batch tasks.jsonl -o results.jsonl``.
"""

from __future__ import annotations

import ast
import asyncio
import json
import operator
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agentkit import Agent, Backend, backend_from_url, tool
from agentkit.errors import AgentkitError

DEFAULT_QUESTIONS = [
    "Convert 37 degrees Celsius to Fahrenheit.",
    "How many seconds are there in a leap year?",
    "What is 15% of 2,340?",
    "Convert 5 miles to kilometres.",
]

SYSTEM = "Answer in one short sentence. Use the calculator for any arithmetic."


_OPS: dict[type[ast.AST], Callable[..., float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ValueError("exponents above 100 are not supported")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.operand))
    raise ValueError("use only numbers, + - * / ** and parentheses")


@tool
def calculator(expression: str) -> float:
    """Evaluate an arithmetic expression with + - * / ** and parentheses.

    Args:
        expression: for example "37 * 9 / 5 + 32".
    """
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {exc.msg}") from exc
    return _evaluate(tree.body)


def build_agent(backend: Backend) -> Agent:
    return Agent(backend, tools=[calculator], system=SYSTEM, max_steps=5)


async def run_all(backend: Backend, questions: Sequence[str], concurrency: int = 4) -> list[dict[str, Any]]:
    """Results in question order; each has ``ok``, ``output`` or ``error``, and the time it took."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int, question: str) -> dict[str, Any]:
        async with gate:
            start = time.perf_counter()
            try:
                result = await build_agent(backend).arun(question)
            except Exception as exc:  # one failure must not sink the batch; record it instead
                return {"index": index, "question": question, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
            return {
                "index": index,
                "question": question,
                "ok": result.ok,
                "output": result.output,
                "tool_calls": len(result.tool_calls),
                "seconds": round(time.perf_counter() - start, 3),
            }

    return list(await asyncio.gather(*(one(i, q) for i, q in enumerate(questions))))


def backend_from_env() -> Backend:
    url = os.environ.get("AGENTKIT_BACKEND")
    if not url:
        sys.exit("set AGENTKIT_BACKEND, e.g. AGENTKIT_BACKEND=ollama://localhost:11434/gemma4:e4b")
    return backend_from_url(url)


def main(argv: Sequence[str] | None = None, backend: Backend | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    questions = DEFAULT_QUESTIONS
    if args:
        try:
            text = Path(args[0]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            sys.exit(f"cannot read questions from {args[0]}: {exc}")
        questions = [q.strip() for q in text.splitlines() if q.strip()]
    results = asyncio.run(run_all(backend or backend_from_env(), questions))
    for record in results:
        print(json.dumps(record, ensure_ascii=False))
    failed = sum(not r["ok"] for r in results)
    print(f"{len(results) - failed} ok, {failed} failed", file=sys.stderr)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AgentkitError as exc:  # server not running, model not pulled, bad URL: the message says what to do
        sys.exit(f"error: {exc}")
