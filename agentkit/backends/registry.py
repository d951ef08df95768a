"""Pick a backend from one string: ``backend_from_url``.

Accepted forms (also through ``--backend`` and ``AGENTKIT_BACKEND``):

- ``ollama://HOST:PORT/MODEL`` (``ollama:MODEL`` uses http://localhost:11434), e.g. ``ollama://localhost:11434/gemma4:e4b``
- ``vllm://HOST:PORT/MODEL`` (``vllms://`` for https), e.g. ``vllm://gpu-box:8000/google/gemma-4-31B-it``
- ``transformers:MODEL_OR_PATH``, e.g. ``transformers:google/gemma-4-E2B-it``
- ``scripted:PATH`` — a JSON list of raw model outputs replayed by :class:`ScriptedBackend` (demos, tests)

Engine modules are imported only when chosen, so a missing optional extra fails with a hint, not at import.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from agentkit.errors import UserError

from .base import Backend

__all__ = ["EXAMPLES", "backend_from_url"]

EXAMPLES = (
    "ollama://localhost:11434/gemma4:e4b",
    "vllm://localhost:8000/google/gemma-4-31B-it",
    "transformers:google/gemma-4-E2B-it",
    "scripted:outputs.json",
)


def _bad(url: str, why: str) -> UserError:
    return UserError(f"invalid backend {url!r}: {why}. Examples: " + ", ".join(EXAMPLES))


def backend_from_url(url: str, **options: Any) -> Backend:
    """Build a backend from a URL-like string; ``options`` go to the backend's constructor."""
    if not isinstance(url, str):
        raise UserError(f"backend_from_url() needs a URL string such as {EXAMPLES[0]!r}, got {type(url).__name__}")
    url = url.strip()
    scheme, sep, rest = url.partition(":")
    if not sep or not rest:
        raise _bad(url, "expected SCHEME:... with scheme ollama, vllm, transformers or scripted")
    scheme = scheme.lower()
    if scheme in ("ollama", "vllm", "vllms"):
        if rest.startswith("//"):
            parts = urlsplit(url)
            if not parts.hostname:
                raise _bad(url, "no host given")
            model = parts.path[1:]  # one slash only: "vllm://host:8000//srv/models/x" names a local path
            try:
                port = parts.port
            except ValueError as exc:
                raise _bad(url, str(exc)) from exc
            http = "https" if scheme == "vllms" else "http"
            default_port = 11434 if scheme == "ollama" else 8000
            host = f"{http}://{parts.hostname}:{port or default_port}"
        else:
            model = rest
            host = "http://localhost:11434" if scheme == "ollama" else "http://localhost:8000"
        if not model:
            raise _bad(url, "no model given after the host")
        if scheme == "ollama":
            from .ollama import OllamaBackend

            return OllamaBackend(model=model, host=host, **options)
        from .vllm import VLLMBackend

        return VLLMBackend(model=model, base_url=host, **options)
    if scheme == "transformers":
        from .transformers import TransformersBackend

        return TransformersBackend(rest, **options)
    if scheme == "scripted":
        from .scripted import ScriptedBackend

        return ScriptedBackend.from_file(rest, **options)
    if scheme in ("http", "https"):
        # The address a server prints is the most natural thing to paste; say which form it takes here.
        raise _bad(
            url,
            f"{scheme}:// names no engine; a vLLM server is vllm://HOST:PORT/MODEL (vllms:// for https) "
            "and an Ollama server ollama://HOST:PORT/MODEL",
        )
    if not rest.startswith("/"):
        raise _bad(url, f"unknown backend scheme {scheme!r} (for the Ollama model {url!r} use ollama:{url})")
    raise _bad(url, f"unknown backend scheme {scheme!r}")
