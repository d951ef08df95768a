"""Inference backends behind one interface (see :mod:`agentkit.backends.base`)."""

from __future__ import annotations

from .base import (
    Backend,
    BackendEvent,
    Capabilities,
    GenerationDone,
    GenerationRequest,
    ListsModels,
    SamplingParams,
    TextDelta,
    Timings,
    Usage,
)

__all__ = [
    "Backend",
    "BackendEvent",
    "Capabilities",
    "GenerationDone",
    "GenerationRequest",
    "ListsModels",
    "SamplingParams",
    "TextDelta",
    "Timings",
    "Usage",
]
