"""Grammar-constrained tool calls in process: the structural tag vLLM takes, compiled by xgrammar for our tokenizer.

Why xgrammar: vLLM applies the same structural tag with the xgrammar it bundles, so both engines read one grammar
with one set of semantics (``any_text`` excludes, ``max_chars`` budgets, tags); llguidance would need the grammar
translated to its Lark dialect and would diverge in exactly those corners. xgrammar installs from a wheel that
accepts the torch already here (``torch>=1.10``; on Linux x86-64 it also pulls triton, which CUDA builds of torch
bring anyway) and ships a CPU mask kernel. A tool set compiles once per backend: tens of milliseconds for a small
vocabulary, seconds for Gemma 4's 262,144 tokens (tools/bench/toolcall_reliability.py --cost).

The processor is a Hugging Face style ``(input_ids, scores) -> scores`` callable, so the hand decode loop and
``generate(assistant_model=...)`` take it alike. It does not assume it sees every token once, in order:
speculative decoding calls it on drafted prefixes that are then rejected, so each call brings the matcher to the
tokens it is given (rolling back what differs) before masking. A prefix the grammar rejects can only be a draft
that verification throws away; its scores are returned unmasked.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import torch

from agentkit.gemma4.grammar import ToolCallGrammar

__all__ = ["GrammarProcessor", "Grammars", "xgrammar_missing"]


def xgrammar_missing() -> str:
    """Why grammars cannot be used here ('' when they can)."""
    try:
        import xgrammar  # noqa: F401
    except ImportError as exc:
        return (
            f"xgrammar is not installed ({exc}); pip install -e '.[transformers]' in the agentkit checkout "
            "or pip install xgrammar"
        )
    return ""


class Grammars:
    """Compiles grammars for one tokenizer once each (a tool set's grammar is compiled on first use)."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._compiler: Any = None
        self._compiled: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.compile_s = 0.0  # time spent compiling, for benchmarks

    def compiled(self, grammar: ToolCallGrammar) -> Any:
        import xgrammar as xgr

        with self._lock:
            found = self._compiled.get(grammar.structural_tag)
            if found is not None:
                return found
            start = time.perf_counter()
            if self._compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(self._tokenizer, vocab_size=self._vocab_size)
                self._compiler = xgr.GrammarCompiler(info)
            compiled = self._compiler.compile_structural_tag(grammar.structural_tag)
            self.compile_s += time.perf_counter() - start
            if len(self._compiled) >= 32:  # tool sets rarely change; keep memory bounded when they do
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[grammar.structural_tag] = compiled
            return compiled

    def processor(self, grammar: ToolCallGrammar, prompt_len: int) -> GrammarProcessor:
        return GrammarProcessor(self.compiled(grammar), prompt_len)


class GrammarProcessor:
    """Masks every token the grammar does not allow after the tokens generated so far (one sequence)."""

    def __init__(self, compiled: Any, prompt_len: int) -> None:
        import xgrammar as xgr

        self._xgr = xgr
        self._matcher = xgr.GrammarMatcher(compiled)
        self._prompt_len = prompt_len
        self._accepted: list[int] = []  # the generated tokens the matcher holds
        self._bitmask = xgr.allocate_token_bitmask(1, compiled.tokenizer_info.vocab_size)
        self.mask_s = 0.0  # time spent matching and masking, for benchmarks
        self.steps = 0

    def _sync(self, generated: list[int]) -> bool:
        """Bring the matcher to ``generated``; False when the grammar rejects it (a draft about to be dropped)."""
        held = self._accepted
        same = 0
        limit = min(len(held), len(generated))
        while same < limit and held[same] == generated[same]:
            same += 1
        if same < len(held):
            self._matcher.rollback(len(held) - same)
            del held[same:]
        for token in generated[same:]:
            if not self._matcher.accept_token(token):
                return False
            held.append(token)
        return True

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        generated = input_ids[0, self._prompt_len :].tolist()
        if not self._sync(generated):
            return scores
        self._matcher.fill_next_token_bitmask(self._bitmask)
        bitmask = self._bitmask if scores.device.type == "cpu" else self._bitmask.to(scores.device)
        width = scores.shape[-1]
        if scores.device.type == "cpu" and scores.dtype != torch.float32:
            masked = scores.float()
            self._xgr.apply_token_bitmask_inplace(masked, bitmask, vocab_size=width)
            scores = masked.to(scores.dtype)
        else:
            self._xgr.apply_token_bitmask_inplace(scores, bitmask, vocab_size=width)
        self.mask_s += time.perf_counter() - start
        self.steps += 1
        return scores
