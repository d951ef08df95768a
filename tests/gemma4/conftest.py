"""Shared fixtures for the protocol tests: the conformance vectors from tests/data/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "data"


def load_vectors(name: str) -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads((DATA / name).read_text(encoding="utf-8"))["vectors"]
    return vectors


RENDER_VECTORS = load_vectors("render_vectors.json")
PARSE_VECTORS = load_vectors("parse_vectors.json")
