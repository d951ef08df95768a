"""What the engine does with each new token: pick it (sampling, logits processors) and turn it into text, with
the stop rules (stop ids, stop strings, the budget, cancellation).

One piece for the plain decode loop (:mod:`._engine`) and speculative decoding (:mod:`._assisted`), so both pick
and stop at exactly the same place; nothing here knows about caches, graphs or compilation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "Detokenizer",
    "GenerationResult",
    "LogitsProcessor",
    "TokenOutput",
    "apply_processors",
    "greedy_options",
    "sample_next",
    "sampling_probs",
]

#: The Hugging Face logits-processor call shape: ``(input_ids [1, n], scores [1, vocab]) -> scores``.
LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(slots=True)
class GenerationResult:
    stop: str | None
    completion_tokens: int
    prompt_tokens: int
    cached_tokens: int
    first_token_s: float  # perf_counter time of the first generated token
    end_s: float
    token_ids: tuple[int, ...] | None = None  # the generated ids, when they are exactly the emitted text


class Detokenizer:
    """Turns a growing list of token ids into text deltas without splitting multi-byte characters.

    Decoding token by token breaks characters that span tokens (byte-level BPE) and loses the spacing some
    tokenizers apply in context. This keeps a small window: text is emitted only once it no longer ends in an
    incomplete character (U+FFFD), the approach vLLM's incremental detokenizer takes.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        self.ids: list[int] = []
        self._prefix = 0  # start of the decode window
        self._read = 0  # ids before this are emitted

    def _decode(self, ids: Sequence[int]) -> str:
        text: str = self._tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return text

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix_text = self._decode(self.ids[self._prefix : self._read])
        full = self._decode(self.ids[self._prefix :])
        if full.endswith("\ufffd") or len(full) <= len(prefix_text):
            return ""
        self._prefix, self._read = self._read, len(self.ids)
        return full[len(prefix_text) :]

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character at the very end is emitted as U+FFFD)."""
        prefix_text = self._decode(self.ids[self._prefix : self._read])
        full = self._decode(self.ids[self._prefix :])
        self._prefix = self._read = len(self.ids)
        return full[len(prefix_text) :]


def sample_next(
    logits: torch.Tensor, *, temperature: float, top_p: float, top_k: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Pick the next token id from ``[1, vocab]`` logits; temperature 0 (or less) is greedy."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = sampling_probs(logits, temperature=temperature, top_p=top_p, top_k=top_k)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def sampling_probs(logits: torch.Tensor, *, temperature: float, top_p: float, top_k: int) -> torch.Tensor:
    """The distribution ``sample_next`` draws from (temperature, then top-k, then top-p), as float32 ``[.., vocab]``.

    Separate because speculative sampling needs the probabilities themselves, for the target and the drafter.
    """
    scores = logits.float() / temperature
    if 0 < top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if 0 < top_p < 1:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        # Drop tokens once the mass before them already reaches top_p (the best token always stays).
        drop_sorted = (cumulative - sorted_scores.softmax(dim=-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores.softmax(dim=-1)


def greedy_options() -> dict[str, Any]:
    """The keywords of ``Engine.generate`` for plain greedy decoding: no stop, no text callback, no cancel."""
    return {
        "stop_ids": frozenset(),
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": 0,
        "seed": 0,
        "on_text": lambda _t: None,
        "cancel": threading.Event(),
    }


def apply_processors(
    processors: Sequence[LogitsProcessor], all_ids: Sequence[int], logits: torch.Tensor
) -> torch.Tensor:
    """Run the Hugging Face logits processors on ``[1, vocab]`` logits after ``all_ids`` (prompt + generated)."""
    if processors:
        history = torch.tensor([all_ids], dtype=torch.long, device=logits.device)
        for proc in processors:
            logits = proc(history, logits)
    return logits


class TokenOutput:
    """Emits generated tokens one by one as text, with the stop rules (stop ids, stop strings, budget, cancel).

    One piece for the plain loop and speculative decoding, so both stop at exactly the same place. A stop
    *string* (a marker that is no single token here) may end inside a token and is not one id at the end
    either: ``by_text`` then says the generated ids are not to be reported (the loop tokenizes the text).
    """

    def __init__(
        self,
        tokenizer: Any,
        on_text: Callable[[str], None],
        *,
        stop_ids: frozenset[int],
        stop_texts: Sequence[str],
        id_to_stop: Callable[[int], str | None],
        max_new_tokens: int,
        cancel: threading.Event,
    ) -> None:
        self.detok = Detokenizer(tokenizer)
        self.on_text = on_text
        self.stop_ids = stop_ids
        self.stop_texts = stop_texts
        self.id_to_stop = id_to_stop
        self.max_new_tokens = max_new_tokens
        self.cancel = cancel
        self.keep = max((len(t) for t in stop_texts), default=0)
        self.tail = ""
        self.stop: str | None = None
        self.by_text = False
        self.first_s = 0.0
        self.n = 0

    @property
    def done(self) -> bool:
        return self.stop is not None or self.n >= self.max_new_tokens or self.cancel.is_set()

    def push(self, token_id: int) -> None:
        self.n += 1
        if self.n == 1:
            self.first_s = time.perf_counter()
        delta = self.detok.push(token_id)
        if token_id in self.stop_ids:
            delta += self.detok.flush()
            self.stop = self.id_to_stop(token_id)
        if self.keep and delta and self.stop is None:
            hit = _first_stop(self.tail + delta, self.stop_texts)
            if hit is not None:
                end, self.stop = hit
                self.by_text = True
                delta = delta[: end - len(self.tail)]
            self.tail = (self.tail + delta)[-self.keep :]
        if delta:
            self.on_text(delta)

    def finish(self) -> None:
        if self.stop is None:
            rest = self.detok.flush()
            if rest:
                self.on_text(rest)

    def result(self, ids: Sequence[int], all_ids: Sequence[int], cached: int) -> GenerationResult:
        """What a generation after the prompt ``ids`` reports, ``all_ids`` being the prompt and what followed."""
        return GenerationResult(
            stop=self.stop,
            completion_tokens=self.n,
            prompt_tokens=len(ids),
            cached_tokens=cached,
            first_token_s=self.first_s,
            end_s=time.perf_counter(),
            token_ids=None if self.by_text else tuple(all_ids[len(ids) :]),
        )


def _first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """The end offset and marker of the earliest stop string in ``text`` (marker included), if any."""
    best: tuple[int, str] | None = None
    for s in stops:
        i = text.find(s)
        if i != -1 and (best is None or i + len(s) < best[0]):
            best = (i + len(s), s)
    return best
