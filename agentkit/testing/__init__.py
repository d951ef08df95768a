"""Helpers for testing agents without a model server.

``ScriptedBackend`` replays raw Gemma 4 outputs and records the prompts it was sent; ``tiny_model`` (needs the
``[transformers]`` extra) builds tiny random-weight Gemma 4 models for tests of the in-process backend;
``backend_contract`` is the conformance suite every backend, agentkit's or a plugin's, runs.
"""

from __future__ import annotations

from agentkit.backends.scripted import ScriptedBackend

__all__ = ["ScriptedBackend"]
