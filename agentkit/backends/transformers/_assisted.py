"""Speculative decoding with a Gemma 4 multi-token-prediction drafter, through transformers' ``generate``.

transformers implements the MTP drafter protocol (the drafter reads the target's shared key/value states and
last hidden state, ``SinglePositionMultiTokenCandidateGenerator``) inside ``generate(assistant_model=...)``;
re-implementing it would duplicate fragile internals. Every drafted token is verified by the target model, so
at temperature 0 the output equals plain greedy decoding. This path prefills the whole prompt on each call.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from agentkit.backends.base import SamplingParams
from agentkit.errors import ContextTooLong

from ._engine import Detokenizer, GenerationResult, LogitsProcessor

__all__ = ["generate_assisted"]


class _Streamer:
    """A transformers streamer (``put``/``end``) that detokenizes incrementally and notes the first token time."""

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None]) -> None:
        self.detok = Detokenizer(tokenizer)
        self.on_text = on_text
        self.prompt_seen = False
        self.first_s = 0.0

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt
            self.prompt_seen = True
            return
        for token_id in value.reshape(-1).tolist():
            if not self.first_s:
                self.first_s = time.perf_counter()
            delta = self.detok.push(int(token_id))
            if delta:
                self.on_text(delta)

    def end(self) -> None:
        rest = self.detok.flush()
        if rest:
            self.on_text(rest)


def generate_assisted(
    model: Any,
    assistant: Any,
    tokenizer: Any,
    ids: Sequence[int],
    *,
    sampling: SamplingParams,
    stop_ids: dict[int, str],
    max_len: int,
    logits_processors: Sequence[LogitsProcessor],
    on_text: Callable[[str], None],
    cancel: threading.Event,
    device: torch.device,
) -> GenerationResult:
    """Generate after ``ids`` with ``assistant`` drafting; stop on ``stop_ids``, ``cancel`` or the budget."""
    from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

    if len(ids) >= max_len:
        raise ContextTooLong(
            f"the prompt has {len(ids)} tokens but the model's context holds {max_len}: shorten the conversation",
            backend="transformers",
        )

    class _Cancelled(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

    streamer = _Streamer(tokenizer, on_text)
    greedy = sampling.temperature <= 0
    if not greedy and sampling.seed is not None:
        torch.manual_seed(sampling.seed)
    kwargs: dict[str, Any] = (
        {"do_sample": False}
        if greedy
        else {
            "do_sample": True,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
        }
    )
    # Stop exactly on the request's stop tokens (none: run to the budget), not on the checkpoint's defaults.
    config = copy.deepcopy(model.generation_config)
    config.eos_token_id = list(stop_ids) or None
    input_ids = torch.tensor([list(ids)], dtype=torch.long, device=device)
    with torch.inference_mode():
        out = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            assistant_model=assistant,
            max_new_tokens=min(sampling.max_tokens, max_len - len(ids)),
            generation_config=config,
            pad_token_id=tokenizer.pad_token_id,
            logits_processor=LogitsProcessorList(logits_processors),
            stopping_criteria=StoppingCriteriaList([_Cancelled()]),
            streamer=streamer,
            **kwargs,
        )
    new = out[0, len(ids) :].tolist()
    stop = stop_ids.get(new[-1]) if new else None
    return GenerationResult(
        stop=stop,
        completion_tokens=len(new),
        prompt_tokens=len(ids),
        cached_tokens=0,
        first_token_s=streamer.first_s,
        end_s=time.perf_counter(),
    )
