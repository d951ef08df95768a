"""Shared by the protocol tests: the conformance vectors from tests/data/ and a token counter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentkit.gemma4 import CONTROL_TOKENS

DATA = Path(__file__).resolve().parent.parent / "data"


def load_vectors(name: str) -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads((DATA / name).read_text(encoding="utf-8"))["vectors"]
    return vectors


RENDER_VECTORS = load_vectors("render_vectors.json")
PARSE_VECTORS = load_vectors("parse_vectors.json")


def count_tokens(text: str) -> int:
    """Control tokens in ``text`` by longest-match tokenization (what a tokenizer would see)."""
    count = i = 0
    while (i := text.find("<", i)) >= 0:
        tok = next((t for t in CONTROL_TOKENS if text.startswith(t, i)), None)
        count += tok is not None
        i += len(tok) if tok else 1
    return count
