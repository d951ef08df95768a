"""``agentkit models``: what the backend can serve, so ``--model NAME`` is picked from a list, not guessed.

Servers are asked (Ollama's pulled models, vLLM's served names); an in-process model is never loaded just to
be listed (that takes seconds to minutes, or starts a download), so for transformers the answer is the
configured model and whether it is already on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from agentkit.backends import is_server_address
from agentkit.errors import UserError

from . import config
from .common import EXIT_OK, safe_json, terminal_safe
from .config import Settings, default_backend_url, hf_model_available

__all__ = ["list_models", "models_command", "only_served_model", "served_models"]


def _name(text: str) -> str:
    """A name from a server (or a URL built from one) shown on one line: no escape sequence, and no newline that
    would show a name the server does not have."""
    return terminal_safe(text, one_line=True)


async def _ask_server(url: str, **options: Any) -> tuple[str, list[str]]:
    """The configured model and the server's list of models."""
    from agentkit.assemble import build_backend

    backend = build_backend(url, **options)
    try:
        lister = getattr(backend, "list_models", None)
        if not callable(lister):
            raise UserError(f"the {backend.name} backend cannot list its models; it runs {backend.model}")
        names: list[str] = await lister()
        return backend.model, names
    finally:
        await backend.aclose()


def list_models(url: str) -> dict[str, Any]:
    """``{"backend": url, "current": model, "models": [...]}``; for transformers, whether it is downloaded.

    A server URL without a model (``vllm://HOST:PORT``) lists what that server has, ``current`` being None:
    asking the server is how one learns the name to put there.
    """
    scheme, _, rest = url.partition(":")
    if scheme.lower() == "transformers" and rest.strip():
        available = hf_model_available(rest)
        installed = config.transformers_installed()
        return {
            "backend": url,
            "current": rest,
            "models": [rest] if available else [],
            "downloaded": available,
            "installed": installed,
        }
    if is_server_address(url):
        # Listing needs only the address; the placeholder model is never requested (and reads as one in the
        # advice of a server that does not answer: "start it with vllm serve MODEL ...").
        return {"backend": url, "current": None, "models": asyncio.run(served_models(url))}
    current, models = asyncio.run(_ask_server(url))
    return {"backend": url, "current": current, "models": models}


async def served_models(url: str, **options: Any) -> list[str]:
    """What the server at ``vllm://HOST:PORT`` (no model) serves."""
    # Listing needs only the address; the placeholder model is never requested (and reads as one in the
    # advice of a server that does not answer: "start it with vllm serve MODEL ...").
    return (await _ask_server(url.rstrip("/") + "/MODEL", **options))[1]


def only_served_model(url: str, names: list[str] | None = None, *, quiet: bool = False) -> str:
    """``vllm://HOST:PORT`` completed with the one model that server serves (said on stderr unless ``quiet``),
    as ``vllm serve`` runs one model and a person who started it should not have to copy its name; with
    several, or none, a clear error listing them. ``names``: the server's list, when already asked."""
    if names is None:
        names = list_models(url)["models"]
    base = url.rstrip("/")
    safe = _name(base)
    if len(names) == 1:
        if not quiet:
            print(f"agentkit: {safe} serves one model; using {_name(names[0])}", file=sys.stderr)
        return f"{base}/{names[0]}"
    if not names:
        raise UserError(f"{safe} serves no model yet; pull or serve one first (e.g. ollama pull gemma4:e4b)")
    shown = ", ".join(_name(n) for n in names[:10]) + (" ..." if len(names) > 10 else "")
    example = f"{safe}/{_name(names[0])}"
    raise UserError(f"{safe} serves {len(names)} models ({shown}); name one: --backend {example}")


def models_command(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.backend_url or default_backend_url()
    info = list_models(url)
    if args.json:
        print(safe_json(info, indent=2))
        return EXIT_OK
    current, names = info["current"], info["models"]
    if url.startswith("transformers:"):
        state = "on this machine" if info["downloaded"] else "not downloaded yet; agentkit run asks before fetching it"
        if not info["installed"]:  # otherwise agentkit run, as said here, would only say the extra is missing
            state += (
                "; first install the transformers extra (in the agentkit checkout: pip install -e '.[transformers]')"
            )
        print(
            f"transformers runs the configured model in this process: {terminal_safe(current)} ({state})",
            file=sys.stderr,
        )
        print(terminal_safe(current))
        return EXIT_OK
    server = "/".join(url.split("/", 3)[:3]) if "://" in url else url
    print(f"models served by {server}:", file=sys.stderr)
    if not names:
        print("  (none: pull or serve a model first, e.g. ollama pull gemma4:e4b)", file=sys.stderr)
    for name in names:
        print(_name(name))  # names come from the server: never escape sequences, one name a line
    if current and current not in names and names:
        print(f"the configured model {terminal_safe(repr(current))} is not among them", file=sys.stderr)
    if current is None and names:
        example = f"{url.rstrip('/')}/{names[0]}"
        print(f"use one with: agentkit run --backend {_name(example)} ...", file=sys.stderr)
    return EXIT_OK
