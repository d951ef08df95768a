"""Speculative decoding with a Gemma 4 MTP drafter inside the engine loop (``transformers/_assisted.py``).

The tiny random drafter almost never guesses right, so the accept/rollback paths are driven by an *oracle*
drafter that proposes the target's own greedy continuation with chosen positions corrupted: the number of
accepted drafts is then known exactly, and the output must still be plain greedy decoding token for token,
across agent steps that reuse the cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from agentkit.backends.transformers._assisted import Drafter, generate_speculative  # noqa: E402
from agentkit.backends.transformers._decoding import greedy_options  # noqa: E402
from agentkit.backends.transformers._engine import Engine  # noqa: E402
from agentkit.backends.transformers.compat import patch_gemma4_assistant_kv_sharing  # noqa: E402
from agentkit.errors import UserError  # noqa: E402
from agentkit.testing.tiny_model import build_tiny_drafter, build_tiny_gemma4  # noqa: E402

pytestmark = pytest.mark.transformers


@pytest.fixture(scope="module")
def models(tiny_gemma4_with_drafter: Path) -> Iterator[tuple[Any, Any, Any]]:
    import transformers as hf

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tiny_gemma4_with_drafter
    target = root / "model"
    patch_gemma4_assistant_kv_sharing()
    model = hf.AutoModelForCausalLM.from_pretrained(target).eval()
    tok = hf.AutoTokenizer.from_pretrained(target)
    drafter = hf.AutoModelForCausalLM.from_pretrained(root / "drafter").eval()
    yield model, tok, drafter
    torch.set_num_threads(threads)


def _kw(**over: Any) -> dict[str, Any]:
    return {**greedy_options(), **over}


class OracleDrafter(Drafter):
    """Proposes the reference continuation, corrupting every ``wrong_every``-th drafted position."""

    def __init__(self, engine: Engine, assistant: Any, reference: Sequence[int], wrong_every: int) -> None:
        super().__init__(engine, assistant, draft_tokens=4)
        self.reference = list(reference)
        self.wrong_every = wrong_every
        self.calls = 0
        self.expected_accepted = 0

    def draft(self, token: int, hidden: torch.Tensor, k: int, **_: Any) -> tuple[list[int], list[torch.Tensor]]:
        at = len(self.engine.cache_ids) + 1  # the drafted tokens' positions in the reference
        out: list[int] = []
        right = True
        for i in range(k):
            self.calls += 1
            want = self.reference[at + i]
            if self.calls % self.wrong_every == 0:
                want = (want + 1) % 50
                right = False
            elif right:
                self.expected_accepted += 1
            out.append(want)
        return out, []


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_greedy_equals_plain_across_steps_with_cache_reuse(models: tuple[Any, Any, Any], static: bool) -> None:
    model, tok, assistant = models
    plain = Engine(model, tok, device=torch.device("cpu"), max_cache_len=512, compile_decode=False, static=static)
    spec = Engine(
        model, tok, device=torch.device("cpu"), max_cache_len=512, compile_decode=False, static=static, keep_hidden=True
    )
    prompt = tok.encode("The weather in Paris today is sunny", add_special_tokens=False)
    steps = []
    for _ in range(3):
        ref = plain.generate(prompt, max_new_tokens=30, **_kw())
        assert ref.token_ids is not None
        oracle = OracleDrafter(spec, assistant, [*prompt, *ref.token_ids, *[0] * 8], wrong_every=3)
        got = generate_speculative(spec, oracle, prompt, max_new_tokens=30, **_kw())
        assert got.token_ids == ref.token_ids
        assert oracle.stats.accepted == oracle.expected_accepted > 0
        assert oracle.stats.rounds < 30  # accepted drafts save target passes
        steps.append((ref.cached_tokens, got.cached_tokens))
        prompt = [*prompt, *ref.token_ids, *tok.encode(" The tool said: rain.", add_special_tokens=False)]
    # Steps 2 and 3 prefill only their new tokens, as plain decoding does.
    assert [s for s, _ in steps] == [g for _, g in steps]
    assert steps[1][1] > 0 and steps[2][1] > steps[1][1]


def test_real_tiny_drafter_equals_plain(models: tuple[Any, Any, Any]) -> None:
    model, tok, assistant = models
    plain = Engine(model, tok, device=torch.device("cpu"), max_cache_len=512, compile_decode=False)
    spec = Engine(model, tok, device=torch.device("cpu"), max_cache_len=512, compile_decode=False, keep_hidden=True)
    drafter = Drafter(spec, assistant)
    calls: list[int] = []
    handle = assistant.register_forward_hook(lambda *_: calls.append(1))
    try:
        prompt = tok.encode("Hello! How can I help you today?", add_special_tokens=False)
        ref = plain.generate(prompt, max_new_tokens=40, **_kw())
        got = generate_speculative(spec, drafter, prompt, max_new_tokens=40, **_kw())
    finally:
        handle.remove()
    assert calls and drafter.stats.drafted == len(calls)
    assert got.token_ids == ref.token_ids


def test_stop_inside_an_accepted_block(models: tuple[Any, Any, Any]) -> None:
    model, tok, assistant = models
    plain = Engine(model, tok, device=torch.device("cpu"), max_cache_len=512, compile_decode=False)
    spec = Engine(model, tok, device=torch.device("cpu"), max_cache_len=512, compile_decode=False, keep_hidden=True)
    prompt = tok.encode("Two plus two is four.", add_special_tokens=False)
    free = plain.generate(prompt, max_new_tokens=30, **_kw())
    assert free.token_ids is not None
    stop = free.token_ids[6]  # a token the (perfect) drafter proposes mid-block
    ref = plain.generate(prompt, max_new_tokens=30, **_kw(stop_ids=frozenset({stop}), id_to_stop=lambda _i: "X"))
    oracle = OracleDrafter(spec, assistant, [*prompt, *free.token_ids, *[0] * 8], wrong_every=10_000)
    got = generate_speculative(
        spec, oracle, prompt, max_new_tokens=30, **_kw(stop_ids=frozenset({stop}), id_to_stop=lambda _i: "X")
    )
    assert got.token_ids == ref.token_ids and got.stop == ref.stop == "X"
    # The cache holds a prefix of what was emitted, so the next step reuses it.
    assert spec.cache_ids == [*prompt, *got.token_ids][: len(spec.cache_ids)]


def test_sampling_follows_the_target_distribution(models: tuple[Any, Any, Any]) -> None:
    """The second token goes through accept/reject against the random drafter; its law must be the target's."""
    model, tok, assistant = models
    spec = Engine(model, tok, device=torch.device("cpu"), max_cache_len=256, compile_decode=False, keep_hidden=True)
    drafter = Drafter(spec, assistant, draft_tokens=1)
    prompt = tok.encode("The answer is", add_special_tokens=False)
    temp, top_k = 2.0, 3
    # Exact law of the second token under the target: sum over the first token.
    with torch.inference_mode():
        first = model(torch.tensor([prompt])).logits[0, -1].float() / temp
        kth = torch.topk(first, top_k).values[-1]
        p1 = first.masked_fill(first < kth, float("-inf")).softmax(-1)
        exact: dict[int, float] = {}
        for t1 in torch.nonzero(p1).flatten().tolist():
            second = model(torch.tensor([[*prompt, t1]])).logits[0, -1].float() / temp
            kth2 = torch.topk(second, top_k).values[-1]
            p2 = second.masked_fill(second < kth2, float("-inf")).softmax(-1)
            for t2 in torch.nonzero(p2).flatten().tolist():
                exact[t2] = exact.get(t2, 0.0) + float(p1[t1] * p2[t2])
    n = 400
    counts: dict[int, int] = {}
    for seed in range(n):
        res = generate_speculative(
            spec, drafter, prompt, max_new_tokens=3, **_kw(temperature=temp, top_k=top_k, seed=seed)
        )
        assert res.token_ids is not None
        counts[res.token_ids[1]] = counts.get(res.token_ids[1], 0) + 1
    assert set(counts) <= set(exact)
    tv = 0.5 * sum(abs(counts.get(t, 0) / n - p) for t, p in exact.items())
    assert tv < 0.1, (tv, counts, exact)
    assert drafter.stats.drafted == n and drafter.stats.accepted < n  # the residual path ran


def test_a_drafter_for_another_model_is_refused(models: tuple[Any, Any, Any], tmp_path: Path) -> None:
    import transformers as hf

    model, tok, _ = models
    other = build_tiny_gemma4(tmp_path / "other", kv_shared_layers=1, hidden_size=96)
    build_tiny_drafter(tmp_path / "drafter", other)
    wrong = hf.AutoModelForCausalLM.from_pretrained(tmp_path / "drafter").eval()
    engine = Engine(model, tok, device=torch.device("cpu"), max_cache_len=64, compile_decode=False, keep_hidden=True)
    with pytest.raises(UserError, match="does not match the target model"):
        Drafter(engine, wrong)
    with pytest.raises(UserError, match="multi-token-prediction drafter"):
        Drafter(engine, model)
