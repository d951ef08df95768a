"""Helpers for testing agents without a model server.

``ScriptedBackend`` replays raw Gemma 4 outputs and records the prompts it was sent; ``tiny_model`` (needs the
``[transformers]`` extra) builds tiny random-weight Gemma 4 models for tests of the in-process backend.
"""

from __future__ import annotations

from agentkit.backends.scripted import ScriptedBackend

__all__ = ["ScriptedBackend"]
