"""Untrusted text encodes without control tokens from many threads sharing one tokenizer, whatever its kind."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agentkit.gemma4 import CONTROL_TOKENS, Prompt, render
from agentkit.gemma4.encode import encode_untrusted
from agentkit.testing.injections import BENIGN, INJECTIONS, ZWJ, conversation

pytest.importorskip("transformers")


PLAIN_CORPUS = ["The weather in Paris is 18 degrees.", "call:lookup{q:x}", "plain words and more words"] * 3


def _tokenizer(*, special: bool = True, corpus: list[str] = PLAIN_CORPUS) -> Any:
    """A byte-level BPE trained in-process; the control tokens added as special (or as plain added) tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(corpus, trainer)
    tokens = [AddedToken(t, special=special, normalized=False) for t in CONTROL_TOKENS]
    if special:
        tok.add_special_tokens(tokens)
    else:
        tok.add_tokens(tokens)
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def _controls(tokenizer: Any, ids: list[int]) -> int:
    special = set(tokenizer.convert_tokens_to_ids(list(CONTROL_TOKENS)))
    return sum(i in special for i in ids)


def test_many_threads_sharing_one_tokenizer_never_get_a_control_token_from_untrusted_text() -> None:
    """Fast tokenizers flip one shared switch for split_special_tokens: concurrent encodes saw each other's."""
    tokenizer = _tokenizer()
    prompts = [render(*conversation(evil)) for evil in INJECTIONS[:8]]
    expected = [_controls(tokenizer, p.token_ids(tokenizer)) for p in prompts]
    assert all(n > 0 for n in expected)  # the trusted turn markers are real tokens
    benign = render(*conversation(BENIGN)).raw_text
    start = threading.Barrier(8)

    def worker(n: int) -> list[str]:
        start.wait()
        wrong = []
        for i in range(60):
            if n % 4 == 0:
                # Another part of the program uses the same tokenizer the ordinary way meanwhile.
                tokenizer.encode(benign, add_special_tokens=False)
                tokenizer.encode(benign, add_special_tokens=False, split_special_tokens=True)
                continue
            k = (n + i) % len(prompts)
            ids = prompts[k].token_ids(tokenizer)
            if _controls(tokenizer, ids) != expected[k] or tokenizer.decode(ids) != prompts[k].raw_text:
                wrong.append(INJECTIONS[k])
        return wrong

    with ThreadPoolExecutor(8) as pool:
        wrong = [w for ws in pool.map(worker, range(8)) for w in ws]
    assert wrong == []


def test_added_tokens_not_marked_special_are_not_matched_in_untrusted_text() -> None:
    # split_special_tokens only skips *special* added tokens: a plain added "<|tool_call>" was still matched.
    tokenizer = _tokenizer(special=False)
    for evil in INJECTIONS:
        ids = encode_untrusted(tokenizer, evil)
        assert _controls(tokenizer, ids) == 0, evil
        assert tokenizer.decode(ids) == evil  # and the text survives exactly
    prompt = Prompt.trusted("<|turn>user\n") + Prompt.untrusted(INJECTIONS[0]) + "<turn|>"
    assert _controls(tokenizer, prompt.token_ids(tokenizer)) == 2  # only the trusted markers


def test_a_tokenizer_whose_merges_spell_a_control_token_gets_the_neutralized_text() -> None:
    # Trained on the injections, the BPE merges build "<|tool_call>" and friends: the model itself writes the id.
    tokenizer = _tokenizer(corpus=[*INJECTIONS] * 3)
    for evil in INJECTIONS:
        ids = encode_untrusted(tokenizer, evil)
        assert _controls(tokenizer, ids) == 0, evil
        assert tokenizer.decode(ids).replace(ZWJ, "") == evil.replace(ZWJ, "")


def test_the_callers_tokenizer_is_never_modified() -> None:
    tokenizer = _tokenizer()
    backend = tokenizer.backend_tokenizer
    Prompt.untrusted(INJECTIONS[0]).token_ids(tokenizer)
    assert backend.encode_special_tokens is False
    assert _controls(tokenizer, tokenizer.encode(INJECTIONS[0], add_special_tokens=False)) == 2


def test_a_tokenizer_given_new_tokens_later_is_read_again() -> None:
    tokenizer = _tokenizer()
    encode_untrusted(tokenizer, "x")
    tokenizer.add_tokens(["<|new_marker>"], special_tokens=False)
    ids = encode_untrusted(tokenizer, "a <|new_marker> b")
    assert tokenizer.convert_tokens_to_ids("<|new_marker>") not in ids


def test_a_bare_tokenizers_tokenizer_and_a_slow_style_encoder_work_too() -> None:
    tokenizer = _tokenizer()
    ids = encode_untrusted(tokenizer.backend_tokenizer, INJECTIONS[1])
    assert ids == encode_untrusted(tokenizer, INJECTIONS[1])

    class SlowStyle:
        """Reads split_special_tokens per call, as transformers' Python tokenizers do."""

        def encode(self, text: str, add_special_tokens: bool = True, split_special_tokens: bool = False) -> list[int]:
            return [ord(c) for c in text] if split_special_tokens else [-1]

    assert encode_untrusted(SlowStyle(), "<|turn>") == [ord(c) for c in "<|turn>"]


def test_ids_are_the_tokenizers_own_for_text_without_token_look_alikes() -> None:
    """Cutting trusted text at control tokens and encoding from a private copy changes no id."""
    from agentkit.testing.tiny_model import build_tiny_tokenizer

    for tokenizer in (_tokenizer(), build_tiny_tokenizer()):
        prompt = render(*conversation(BENIGN), enable_thinking=True)
        assert prompt.token_ids(tokenizer) == tokenizer.encode(prompt.raw_text, add_special_tokens=False)
