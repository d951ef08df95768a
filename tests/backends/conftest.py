"""Fixtures of the backend tests, defined once for the folder (a session fixture defined in two modules is
made twice).

The real vLLM server is a session fixture; pytest keeps one instance per place a fixture is defined, so two test
modules that each import it would start the server twice. Defining it here starts it once per test session.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the test doubles live next to this file

from vllm_server import vllm_server

__all__ = ["tiny_gemma4_with_drafter", "vllm_server"]


@pytest.fixture(scope="session")
def tiny_gemma4_with_drafter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a tiny random Gemma 4 (``model/``, one KV-shared layer) and an MTP drafter for it
    (``drafter/``), built once for every in-process test that reads it (the tests only load from it)."""
    pytest.importorskip("torch")
    from agentkit.testing.tiny_model import build_tiny_drafter, build_tiny_gemma4

    root = tmp_path_factory.mktemp("tiny-gemma4-with-drafter")
    model = build_tiny_gemma4(root / "model", kv_shared_layers=1)
    build_tiny_drafter(root / "drafter", model)
    return root
