"""Find a local tokenizer for token-id prompts, without importing transformers.

Token-id prompts make untrusted text unable to become control tokens (see :mod:`agentkit.gemma4.prompt`), so
the vLLM backend uses them whenever the model's tokenizer is on this machine. Loading ``tokenizer.json`` with
the ``tokenizers`` library takes milliseconds where importing transformers takes seconds, and gives the same
ids as transformers' fast tokenizer (whose ``split_special_tokens`` is this library's
``encode_special_tokens``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agentkit.errors import UserError
from agentkit.gemma4.encode import encode_untrusted
from agentkit.gemma4.prompt import SupportsEncode

__all__ = ["FastTokenizer", "load_tokenizer", "locate_tokenizer_json"]


class FastTokenizer:
    """:class:`SupportsEncode` over a bare ``tokenizers.Tokenizer`` loaded from ``tokenizer.json``."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    @property
    def backend_tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` (the name transformers' fast tokenizers give it), for safe encoding."""
        return self._tokenizer

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> FastTokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)))

    def encode(
        self, text: str, *args: Any, add_special_tokens: bool = True, split_special_tokens: bool = False, **_: Any
    ) -> list[int]:
        if split_special_tokens:
            # Never by flipping encode_special_tokens on the shared object: threads would see each other's.
            return encode_untrusted(self, text)
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids
        return ids

    def token_to_id(self, token: str) -> int | None:
        result: int | None = self._tokenizer.token_to_id(token)
        return result


def locate_tokenizer_json(name: str | os.PathLike[str]) -> Path | None:
    """``tokenizer.json`` for a local model directory or a Hugging Face repo already in the local cache."""
    path = Path(name).expanduser()
    if path.is_dir():
        candidate = path / "tokenizer.json"
        return candidate if candidate.is_file() else None
    if path.is_file() and path.name == "tokenizer.json":
        return path
    text = str(name)
    if text.count("/") != 1 or text.startswith(("/", ".", "~")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(text, "tokenizer.json")
    except ValueError:  # not a valid repo id
        return None
    return Path(found) if isinstance(found, str) else None


def load_tokenizer(spec: str | os.PathLike[str] | SupportsEncode, *, required: bool) -> SupportsEncode | None:
    """The tokenizer ``spec`` names, or None when it is not on this machine and was not ``required``."""
    if not isinstance(spec, (str, os.PathLike)):
        return spec
    found = locate_tokenizer_json(spec)
    if found is None:
        if required:
            raise UserError(
                f"No tokenizer.json found for {str(spec)!r}: pass a local model directory, a tokenizer.json path, "
                "a Hugging Face repo id already downloaded (`huggingface-cli download REPO tokenizer.json`), "
                "or a tokenizer object."
            )
        return None
    try:
        return FastTokenizer.from_file(found)
    except ImportError as exc:
        if required:
            raise UserError(
                "Token-id prompts need the tokenizers library: "
                "in the agentkit checkout, pip install -e '.[transformers]'"
            ) from exc
        return None
    except Exception as exc:  # the tokenizers library raises plain Exception on a malformed file
        if required:
            raise UserError(f"Cannot load the tokenizer in {found}: {exc}") from exc
        return None
