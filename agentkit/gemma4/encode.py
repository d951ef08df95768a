"""Encode prompt segments to token ids, safely from any number of threads sharing one tokenizer.

Hugging Face fast tokenizers take ``split_special_tokens=True`` per call, but implement it by flipping
``encode_special_tokens`` on the one Rust tokenizer they share: two threads encoding at once see each
other's setting, and untrusted text comes back with real ``<|tool_call>`` ids. The flag also covers only
*special* added tokens; an added token not marked special is still matched.

So nothing here ever changes a tokenizer a caller holds, nor depends on that switch:

- a Hugging Face fast tokenizer or a bare ``tokenizers.Tokenizer`` gets a private copy, made once, whose
  ``encode_special_tokens`` is set when it is built and never touched again. Trusted text goes through the
  same copy: it is cut at agentkit's control tokens, which are looked up by id, and the text between them
  is plain (so another thread using the caller's tokenizer with the switch on cannot break the markers);
- a slow (Python) Hugging Face tokenizer gets ``split_special_tokens=True`` as a call argument, which it
  reads per call;
- the result is checked against the tokenizer's control-token ids (added tokens that look like one, see
  :func:`~agentkit.gemma4.sanitize.sanitize`); if one slipped through (an added token not marked special),
  the text is encoded again through the bare model pipeline (normalizer, pre-tokenizer, model: no added
  tokens at all), and as a last resort its neutralized form is encoded.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from .sanitize import sanitize
from .tokens import CONTROL_TOKENS

__all__ = ["SupportsEncode", "encode_trusted", "encode_untrusted"]

_CONTROL_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in sorted(CONTROL_TOKENS, key=len, reverse=True)) + ")")


class SupportsEncode(Protocol):
    """The part of a Hugging Face tokenizer that token-id prompts need."""

    def encode(self, text: str, *args: Any, **kwargs: Any) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class _Encoders:
    """What one tokenizer needs for prompt segments; built once, then only read."""

    size: int  # the vocabulary size it was built for: adding tokens later makes a new one
    split: Any  # private tokenizers.Tokenizer with encode_special_tokens=True, or None (slow tokenizer)
    model: Any  # the bare pipeline owner (tokenizers.Tokenizer) or None
    controls: frozenset[int]
    token_ids: dict[str, int]  # agentkit's control tokens that are single tokens of this tokenizer


_CACHE: OrderedDict[int, tuple[Any, _Encoders]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_MAX_CACHED = 8


def _rust_tokenizer(tokenizer: Any) -> Any:
    """The ``tokenizers.Tokenizer`` behind ``tokenizer`` (itself, a fast tokenizer's backend), or None."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return backend
    if type(tokenizer).__module__.split(".")[0] == "tokenizers":
        return tokenizer
    return None


def _vocab_size(tokenizer: Any, rust: Any) -> int:
    if rust is not None:
        return int(rust.get_vocab_size(with_added_tokens=True))
    try:
        return len(tokenizer)
    except TypeError:
        return -1


def _control_ids(tokenizer: Any, rust: Any) -> frozenset[int]:
    if rust is not None:
        added = rust.get_added_tokens_decoder()
    else:
        added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids = set()
    for index, token in added.items():
        content = str(getattr(token, "content", token))
        if sanitize(content) != content:
            ids.add(int(index))
    return frozenset(ids)


def _encoders(tokenizer: Any) -> _Encoders:
    rust = _rust_tokenizer(tokenizer)
    size = _vocab_size(tokenizer, rust)
    key = id(tokenizer)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] is tokenizer and cached[1].size == size:
        return cached[1]
    with _CACHE_LOCK:
        split = None
        token_ids: dict[str, int] = {}
        if rust is not None:
            split = type(rust).from_str(rust.to_str())
            split.encode_special_tokens = True  # set before anyone can see it; never changed afterwards
            for token in CONTROL_TOKENS:
                index = split.token_to_id(token)
                if index is not None:
                    token_ids[token] = int(index)
        state = _Encoders(size, split, rust, _control_ids(tokenizer, rust), token_ids)
        _CACHE[key] = (tokenizer, state)  # holding the tokenizer keeps its id from being reused
        _CACHE.move_to_end(key)
        while len(_CACHE) > _MAX_CACHED:
            _CACHE.popitem(last=False)
        return state


def _bare_pipeline(rust: Any, text: str) -> list[int]:
    """Normalizer, pre-tokenizer and model only: the path on which added tokens cannot be matched."""
    if rust.normalizer is not None:
        text = rust.normalizer.normalize_str(text)
    pieces = [p for p, _ in rust.pre_tokenizer.pre_tokenize_str(text)] if rust.pre_tokenizer is not None else [text]
    model = rust.model
    return [token.id for piece in pieces for token in model.tokenize(piece)]


def encode_trusted(tokenizer: SupportsEncode, text: str) -> list[int]:
    """Ids of agentkit-written ``text``: its control tokens as single ids, the rest as plain text."""
    state = _encoders(tokenizer)
    if state.split is None:
        return tokenizer.encode(text, add_special_tokens=False)
    ids: list[int] = []
    for i, piece in enumerate(_CONTROL_SPLIT.split(text)):
        if i % 2 and piece in state.token_ids:
            ids.append(state.token_ids[piece])
        elif piece:
            ids.extend(state.split.encode(piece, add_special_tokens=False).ids)
    return ids


def encode_untrusted(tokenizer: SupportsEncode, text: str) -> list[int]:
    """Ids of ``text`` read as plain text: no control token can come out, whatever it contains.

    Safe to call from many threads with one shared tokenizer; the tokenizer is never modified.
    """
    state = _encoders(tokenizer)
    ids: list[int]
    if state.split is not None:
        ids = state.split.encode(text, add_special_tokens=False).ids
    else:
        ids = tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)
    if not state.controls.intersection(ids):
        return ids
    if state.model is not None:
        ids = _bare_pipeline(state.model, text)
        if not state.controls.intersection(ids):
            return ids
    safe = sanitize(text)
    ids = (
        _bare_pipeline(state.model, safe)
        if state.model is not None
        else tokenizer.encode(safe, add_special_tokens=False, split_special_tokens=True)
    )
    if state.controls.intersection(ids):
        raise ValueError("the tokenizer turns plain text into control tokens even after neutralizing it")
    return ids
