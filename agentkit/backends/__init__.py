"""Inference backends behind one interface (see :mod:`agentkit.backends.base`).

The interface types are imported with the package; the engines (``OllamaBackend``, ``VLLMBackend``,
``TransformersBackend``, ``ScriptedBackend``) and the URL registry on first use (PEP 562), so naming one engine
never imports the others' client libraries, and a missing optional extra fails only for its own engine.
``ReplicaBackend`` (``backend_from_urls`` for several URLs) spreads requests over replicas of one model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import (
    Backend,
    BackendEvent,
    Capabilities,
    GenerationDone,
    GenerationRequest,
    ListsModels,
    RawDelta,
    SamplingParams,
    Timings,
    Usage,
)

if TYPE_CHECKING:
    from .ollama import OllamaBackend
    from .registry import (
        ENTRY_POINT_GROUP,
        BackendFactory,
        backend_from_url,
        backend_schemes,
        is_server_address,
        register_backend,
        split_server_url,
    )
    from .replicas import ReplicaBackend, backend_from_urls
    from .scripted import ScriptedBackend
    from .transformers import TransformersBackend
    from .vllm import VLLMBackend

_LAZY = {
    "OllamaBackend": "agentkit.backends.ollama",
    "VLLMBackend": "agentkit.backends.vllm",
    "TransformersBackend": "agentkit.backends.transformers",
    "ScriptedBackend": "agentkit.backends.scripted",
    "ReplicaBackend": "agentkit.backends.replicas",
    "backend_from_urls": "agentkit.backends.replicas",
    "ENTRY_POINT_GROUP": "agentkit.backends.registry",
    "BackendFactory": "agentkit.backends.registry",
    "backend_from_url": "agentkit.backends.registry",
    "backend_schemes": "agentkit.backends.registry",
    "is_server_address": "agentkit.backends.registry",
    "register_backend": "agentkit.backends.registry",
    "split_server_url": "agentkit.backends.registry",
}

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "BackendEvent",
    "BackendFactory",
    "Capabilities",
    "GenerationDone",
    "GenerationRequest",
    "ListsModels",
    "OllamaBackend",
    "RawDelta",
    "ReplicaBackend",
    "SamplingParams",
    "ScriptedBackend",
    "Timings",
    "TransformersBackend",
    "Usage",
    "VLLMBackend",
    "backend_from_url",
    "backend_from_urls",
    "backend_schemes",
    "is_server_address",
    "register_backend",
    "split_server_url",
]


def __getattr__(name: str) -> Any:
    if name == "TextDelta":  # the old name of RawDelta; base.py warns
        from . import base

        return base.TextDelta
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkit.backends' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
