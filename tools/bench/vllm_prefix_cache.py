"""vLLM's prefix-cache hit rate over a multi-step agent run: generated ids kept (now) against re-tokenized (before).

A real vLLM CPU server (its own, started here: nobody else's traffic in its counters) serves the tiny
random-weight Gemma 4. The agent has agentkit's real file tools and web tools declared, and the model is
scripted (``tests/backends/vllm_scripted_output.py``) to think a few sentences and call ``read_file`` at every
step, with the file's name spelled one character per token where the thought first mentions it: a split the
tokenizer never makes, as real models sometimes do. Within a turn the thought stays in the prompt (the
protocol doc), so every later step's prompt holds it. Every request's
share of prompt tokens served from the cache is read from ``/metrics`` (``vllm:prefix_cache_queries`` /
``vllm:prefix_cache_hits``) before and after it.

Two runs on the same server, side by side:
- ``re-tokenized`` (main before this change): the loop tokenizes the model's output text again, so from the
  first unusual split on, the prompt no longer matches what the server cached;
- ``token ids kept``: the loop appends the ids the server generated (``return_token_ids``).
Each run starts with its own system line, so neither can hit blocks the other cached. Step 1 of a run has
nothing cached by construction; the figure is over steps 2 and later.

Two facts about vLLM 0.32 that decide what a hit can be (checked on its CPU build):
- Gemma 4 is a hybrid model (sliding-window and full-attention layers), and a hit must land on a block
  boundary of every layer group. The tiny model is built with ``global_head_dim = 2 * head_dim`` (the real
  Gemma 4 ratio): the default tiny model's 16x ratio aligns hits to 2,048 tokens, longer than the test
  server's whole context, so that server never reports a hit at all.
- By default (``--prefix-cache-retention-interval 0``) the sliding-window layers keep their state only at the
  end of each *prompt*, so no hit ever reaches into the tokens a request generated: the generated ids then
  cannot matter, and both runs hit the same. ``--retention N`` (a multiple of the hit alignment, which is
  ``--block-size`` times the head-size ratio) keeps checkpoints every N tokens, generated ones included; that
  is where keeping the generated ids pays. The default here is that setting; ``--retention 0`` shows vLLM's.

Run: ``python tools/bench/vllm_prefix_cache.py [--steps 8] [--block-size 32] [--retention 64]`` (needs the
vLLM venv, ``tools/vllm/setup_venv.sh``; about a minute to start the server).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "backends")]

from vllm_server import launch_vllm_server, vllm_python  # noqa: E402

from agentkit import Agent  # noqa: E402
from agentkit.backends.base import BackendEvent, GenerationDone, GenerationRequest  # noqa: E402
from agentkit.backends.vllm import VLLMBackend  # noqa: E402
from agentkit.testing.tiny_model import build_tiny_gemma4  # noqa: E402
from agentkit.tools import Workspace, fetch_url, web_search  # noqa: E402

CONTEXT = 16384
_METRIC = re.compile(r"^(vllm:prefix_cache_(?:queries|hits))_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


@dataclass
class Step:
    prompt_tokens: int
    queried: int
    hit: int


class MeasuredVLLM(VLLMBackend):
    """The real backend; reads the server's prefix-cache counters around each request.

    ``keep_ids=False`` hides the generated ids from the loop, which then tokenizes the output text again:
    exactly the behaviour before the loop kept them.
    """

    def __init__(self, *args: Any, keep_ids: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_ids = keep_ids
        self.steps: list[Step] = []

    async def _counters(self) -> dict[str, float]:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{self.base_url}/metrics")).text
        return {name: float(value) for name, value in _METRIC.findall(text)}

    async def stream(self, request: GenerationRequest) -> AsyncIterator[BackendEvent]:
        before = await self._counters()
        done: GenerationDone | None = None
        async for event in super().stream(request):
            if isinstance(event, GenerationDone):
                done = event if self.keep_ids else replace(event, token_ids=None)
                continue
            yield event
        assert done is not None
        after = await self._counters()
        queried = int(after["vllm:prefix_cache_queries"] - before["vllm:prefix_cache_queries"])
        hit = int(after["vllm:prefix_cache_hits"] - before["vllm:prefix_cache_hits"])
        self.steps.append(Step(done.usage.prompt_tokens, queried, hit))
        yield done


def spelled(tokenizer: Any, text: str, word: str) -> list[int]:
    """Ids writing ``text`` with ``word`` one character per token (never the tokenizer's own split)."""
    before, after = text.split(word, 1)
    ids = [
        *tokenizer.encode(before, add_special_tokens=False),
        *tokenizer.convert_tokens_to_ids(list(word)),
        *tokenizer.encode(after, add_special_tokens=False),
    ]
    assert tokenizer.decode(ids, skip_special_tokens=False) == text
    assert ids != tokenizer.encode(text, add_special_tokens=False)
    return ids


def step_output(path: str) -> str:
    """A tool round as models write them with thinking on: a few sentences of thought, then the call."""
    thought = (
        f"The user wants a summary, so I read {path} next. "
        "I will then compare what it says with the other file and write a short answer. " * 4
    )
    call = f'<|tool_call>call:read_file{{path:<|"|>{path}<|"|>}}<tool_call|><|tool_response>'
    return f"<|channel>thought\n{thought}<channel|>{call}"


async def run(server_url: str, model: str, tokenizer: Any, workdir: Path, steps: int, keep_ids: bool) -> list[Step]:
    xargs = {
        "agentkit_script": spelled(tokenizer, step_output("notes.txt"), "notes"),
        "agentkit_script_after": spelled(tokenizer, step_output("plan.txt"), "plan"),
        "agentkit_switch_token": tokenizer.convert_tokens_to_ids("<tool_response|>"),
    }
    backend = MeasuredVLLM(model, server_url, keep_ids=keep_ids, extra_body={"vllm_xargs": xargs})
    tools = [*Workspace(workdir).tools(), fetch_url, web_search]
    # A fresh first line per run: no block of one run can be a hit for the other.
    system = f"Run {secrets.token_hex(8)}. You are a careful assistant working in a project directory."
    agent = Agent(
        backend,
        tools,
        system=system,
        max_steps=steps,
        max_repeated_calls=steps,
        thinking=True,
        sampling={"temperature": 0.0, "max_tokens": 512},
    )
    result = await agent.arun("Read notes.txt and plan.txt and summarise them.")
    await backend.aclose()
    assert len(result.tool_calls) == steps and all(c.error is None for c in result.tool_calls), result
    return backend.steps


def rate(steps: list[Step]) -> tuple[int, int, float]:
    queried = sum(s.queried for s in steps)
    hit = sum(s.hit for s in steps)
    return queried, hit, hit / queried if queried else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--block-size", type=int, default=32)  # CPU attention: a multiple of 32
    parser.add_argument("--retention", type=int, default=64, help="--prefix-cache-retention-interval")
    args = parser.parse_args()
    python = vllm_python()
    if python is None:
        sys.exit("no vLLM virtualenv: run tools/vllm/setup_venv.sh or set AGENTKIT_VLLM_PYTHON")
    from transformers import AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix="agentkit-prefix-bench-"))
    model_dir = build_tiny_gemma4(work / "tiny-gemma4", max_position_embeddings=CONTEXT, global_head_dim=64)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    project = work / "project"
    project.mkdir()
    (project / "notes.txt").write_text("Meeting moved to Thursday.\nBring the budget draft.\n")
    (project / "plan.txt").write_text("1. Draft the budget.\n2. Review on Thursday.\n")
    extra = ("--max-model-len", str(CONTEXT), "--block-size", str(args.block_size))
    extra += ("--prefix-cache-retention-interval", str(args.retention))
    server = launch_vllm_server(python, model_dir, work / "server.log", extra_args=extra)
    try:
        print(
            f"vLLM 0.32 CPU server ready in {server.start_s:.0f} s (--block-size {args.block_size} "
            f"--prefix-cache-retention-interval {args.retention}; log {server.log_path})"
        )
        runs = {}
        for label, keep in (("re-tokenized (before)", False), ("token ids kept (after)", True)):
            runs[label] = asyncio.run(run(server.base_url, server.model, tokenizer, project, args.steps, keep))
    finally:
        server.stop()
    print(f"\n{args.steps}-step agent run, prompt tokens served from vLLM's prefix cache, per step (hit / queried):")
    labels = list(runs)
    print(f"{'step':>4}  {'prompt':>6}  " + "  ".join(f"{label:>24}" for label in labels))
    for i in range(args.steps):
        cells = []
        for label in labels:
            s = runs[label][i]
            cells.append(f"{s.hit:>6} / {s.queried:<6} {s.hit / s.queried if s.queried else 0:>6.1%}")
        print(f"{i + 1:>4}  {runs[labels[-1]][i].prompt_tokens:>6}  " + "  ".join(f"{c:>24}" for c in cells))
    print("\nsteps 2+:")
    for label in labels:
        queried, hit, share = rate(runs[label][1:])
        print(f"  {label:<24} {hit:>6} of {queried:>6} prompt tokens hit = {share:.1%}")


if __name__ == "__main__":
    main()
