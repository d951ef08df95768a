"""Speculative decoding with a Gemma 4 multi-token-prediction (MTP) drafter, inside agentkit's engine loop.

How the drafter works (transformers' ``SinglePositionMultiTokenCandidateGenerator``): it has no key/value
projections and no cache of its own. Every layer attends to the keys/values the *target* stored (one "store"
layer per attention type, the ones the target's KV-shared layers read), and its input is the target's embedding
of the last token concatenated with the target's last hidden state at the position before it. It drafts ``k``
tokens from that single position (position ids stay constant), feeding its own projected hidden state back.

Why this loop and not transformers' ``generate(assistant_model=...)`` with a persistent cache: ``generate``
prefills the whole prompt on each call and needs every layer's hidden states (``output_hidden_states``) and a
dynamic cache it crops itself, so agentkit's static cache, captured graphs and cross-step prefix reuse would be
lost. Here the drafter's whole state is the target's cache, which the engine already keeps across rounds and
agent steps (only new tokens are prefilled), plus one hidden-state row: nothing is ever re-prefilled, for the
target or the drafter. The target verifies each drafted block in one forward pass (:meth:`Engine.forward_block`)
and the rejected tail is rolled back (:meth:`Engine.truncate`).

Drafter context: the drafter attends to the target's keys/values for exactly the positions before the token it
is given, in every round. (transformers 5.24 slices the shared states to the sequence length after a partial
acceptance, which leaves the rejected draft's keys/values at the last position in view.)

Acceptance: greedy keeps the longest drafted prefix equal to the target's argmax, so the output is plain greedy
decoding token for token. Sampling uses the standard speculative-sampling rule (Leviathan et al. 2023, Chen et
al. 2023): a draft ``d`` drawn from the drafter's distribution ``q`` is kept with probability
``min(1, p(d) / q(d))``, a rejection is replaced by a sample from ``max(0, p - q)`` renormalised, and a fully
accepted block earns a bonus token from ``p``; the output then follows the target's distribution exactly. ``p``
and ``q`` are both warped by the request's temperature, top-k and top-p; logits processors (grammars, tests)
apply to the target's logits, position by position, only along the history that is actually kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentkit.errors import UserError

from ._decoding import GenerationResult, LogitsProcessor, TokenOutput, apply_processors, sampling_probs
from ._engine import Engine

__all__ = ["DraftStats", "Drafter", "generate_speculative"]

#: Drafted tokens per round when the drafter's generation config does not say (real drafters ship one).
DEFAULT_DRAFT_TOKENS = 4


@dataclass(slots=True)
class DraftStats:
    """Running counts, for benchmarks and logs: acceptance = accepted / drafted."""

    rounds: int = 0
    drafted: int = 0
    accepted: int = 0

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


class Drafter:
    """A Gemma 4 MTP drafter bound to the engine whose cache it reads."""

    def __init__(self, engine: Engine, assistant: Any, *, draft_tokens: int | None = None) -> None:
        if not engine.keep_hidden:
            raise ValueError("the engine must be created with keep_hidden=True to drive a drafter")
        name = type(assistant).__name__
        if not name.startswith(("Gemma4Assistant", "Gemma4UnifiedAssistant")):
            raise UserError(
                f"assistant_model must be a Gemma 4 multi-token-prediction drafter (Gemma4AssistantForCausalLM, "
                f"e.g. google/gemma-4-E4B-it-assistant), not {name}"
            )
        self.engine = engine
        self.assistant = assistant
        target = engine.model.config.get_text_config()
        # The drafter reads, per attention type, the keys/values of the target layer that stores them for sharing.
        self.store: dict[str, int] = {}
        for i, (mode, kind) in enumerate(zip(target.kv_sharing_modes, target.layer_types, strict=True)):
            if mode == "store":
                self.store[kind] = i
        mine = assistant.config.get_text_config()
        needed = set(mine.layer_types)
        if not needed <= set(self.store) or assistant.config.backbone_hidden_size != target.hidden_size:
            raise UserError(
                f"the drafter {getattr(assistant, 'name_or_path', name)!r} does not match the target model: it needs "
                f"shared key/value states for {sorted(needed)} (the target shares {sorted(self.store) or 'none'}) "
                f"and a {assistant.config.backbone_hidden_size}-wide hidden state (the target's is "
                f"{target.hidden_size}). Use the drafter published for this model (e.g. gemma-4-E4B-it-assistant "
                "for gemma-4-E4B-it)"
            )
        if mine.vocab_size != target.vocab_size:
            raise UserError(
                f"the drafter's vocabulary ({mine.vocab_size}) differs from the target's ({target.vocab_size}): "
                "use the drafter published for this model"
            )
        configured = getattr(assistant.generation_config, "num_assistant_tokens", None)
        self.draft_tokens = max(1, int(draft_tokens or configured or DEFAULT_DRAFT_TOKENS))
        self.embed = engine.model.get_input_embeddings()
        self.stats = DraftStats()

    def draft(
        self,
        token: int,
        hidden: torch.Tensor,
        k: int,
        *,
        temperature: float,
        top_p: float,
        top_k: int,
        generator: torch.Generator | None,
    ) -> tuple[list[int], list[torch.Tensor]]:
        """Draft ``k`` tokens after ``token`` (not yet in the cache); ``hidden`` is the target's ``[1, H]`` before it.

        Returns the drafted ids and, when sampling, the drafter's distribution each was drawn from.
        """
        if k <= 0:
            return [], []
        engine = self.engine
        length = len(engine.cache_ids)
        layers = engine.cache.layers
        shared = {
            kind: (layers[i].keys[:, :, :length], layers[i].values[:, :, :length]) for kind, i in self.store.items()
        }
        device = engine.device
        mask = torch.ones((1, length), dtype=torch.long, device=device)
        position = torch.full((1, 1), length, dtype=torch.long, device=device)
        last = torch.full((1, 1), token, dtype=torch.long, device=device)
        state = hidden.view(1, 1, -1)
        drafted: list[torch.Tensor] = []
        dists: list[torch.Tensor] = []
        for _ in range(k):
            embedded = self.embed(last)
            out = self.assistant(
                inputs_embeds=torch.cat([embedded, state.to(embedded.dtype)], dim=-1),
                attention_mask=mask,
                position_ids=position,
                shared_kv_states=shared,
                use_cache=False,
            )
            logits = out.logits[:, -1, :]
            if temperature <= 0:
                nxt = logits.argmax(dim=-1)
            else:
                q = sampling_probs(logits, temperature=temperature, top_p=top_p, top_k=top_k)
                nxt = torch.multinomial(q, 1, generator=generator).squeeze(-1)
                dists.append(q[0])
            drafted.append(nxt)
            last = nxt.view(1, 1)
            state = out.last_hidden_state
        ids = [int(t) for t in torch.cat(drafted).tolist()]
        return ids, dists


def generate_speculative(
    engine: Engine,
    drafter: Drafter,
    ids: Sequence[int],
    *,
    max_new_tokens: int,
    stop_ids: frozenset[int],
    temperature: float,
    top_p: float,
    top_k: int,
    seed: int | None,
    on_text: Callable[[str], None],
    cancel: threading.Event,
    stop_texts: Sequence[str] = (),
    logits_processors: Sequence[LogitsProcessor] = (),
    id_to_stop: Callable[[int], str | None] = lambda _i: None,
) -> GenerationResult:
    """:meth:`Engine.generate` with ``drafter`` proposing tokens; same arguments, same result, same cache reuse."""
    max_new_tokens, generator = engine.budget(ids, max_new_tokens, temperature, seed)
    greedy = temperature <= 0
    out = TokenOutput(
        engine.tokenizer,
        on_text,
        stop_ids=stop_ids,
        stop_texts=stop_texts,
        id_to_stop=id_to_stop,
        max_new_tokens=max_new_tokens,
        cancel=cancel,
    )
    all_ids = list(ids)
    stats = drafter.stats

    def target_probs(logits: torch.Tensor) -> torch.Tensor:
        """The target's processed scores (greedy) or distribution (sampling) after ``all_ids``, ``[1, vocab]``."""
        logits = apply_processors(logits_processors, all_ids, logits)
        if greedy:
            return logits
        return sampling_probs(logits, temperature=temperature, top_p=top_p, top_k=top_k)

    def pick(dist: torch.Tensor) -> int:
        if greedy:
            return int(dist.argmax(dim=-1).item())
        return int(torch.multinomial(dist, 1, generator=generator).item())

    with engine.lock, torch.inference_mode():
        cached = engine.begin(ids)
        # The last prompt token goes through forward_block: its hidden state is the drafter's first input.
        if len(ids) - 1 > cached:
            engine._prefill(ids[cached:-1])
        logits, hidden = engine.forward_block([ids[-1]])
        token = pick(target_probs(logits[-1:]))
        all_ids.append(token)
        out.push(token)
        state = hidden[-1:]
        block_len = drafter.draft_tokens + 1
        while not out.done:
            # Never draft past the budget: a round emits at most k + 1 tokens.
            k = min(drafter.draft_tokens, out.max_new_tokens - out.n - 1)
            drafts, dists = drafter.draft(
                token, state, k, temperature=temperature, top_p=top_p, top_k=top_k, generator=generator
            )
            logits, hidden = engine.forward_block([token, *drafts], pad_to=block_len)
            accepted = 0
            for i in range(k + 1):
                p = target_probs(logits[i : i + 1])
                if i < k:
                    d = drafts[i]
                    if greedy:
                        keep = int(p.argmax(dim=-1).item()) == d
                    else:
                        q = dists[i]
                        ratio = (p[0, d] / q[d]).item() if q[d] > 0 else 0.0
                        keep = torch.rand((), generator=generator, device=engine.device).item() < ratio
                        if not keep:
                            residual = (p[0] - q).clamp_min(0)
                            total = residual.sum()
                            p = (residual / total).unsqueeze(0) if total > 0 else p
                    if keep:
                        accepted += 1
                        all_ids.append(d)
                        out.push(d)
                        if out.done:
                            break
                        continue
                token = pick(p)
                all_ids.append(token)
                out.push(token)
                break
            stats.rounds += 1
            stats.drafted += k
            stats.accepted += accepted
            state = hidden[accepted : accepted + 1]
            # Keep what was fed and kept; the last emitted token is fed next round (or by the next request).
            engine.truncate(len(all_ids) - 1)
        out.finish()
    return out.result(ids, all_ids, cached)
