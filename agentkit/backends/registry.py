"""Pick a backend from one string (``backend_from_url``), through an open table of URL schemes.

Built-in forms (also through ``--backend``, ``AGENTKIT_BACKEND``, the config file and the TUI's backend picker):

- ``ollama://HOST:PORT/MODEL`` (``ollama:MODEL`` uses http://localhost:11434), e.g. ``ollama://localhost:11434/gemma4:e4b``
- ``vllm://HOST:PORT/MODEL`` (``vllms://`` for https), e.g. ``vllm://gpu-box:8000/google/gemma-4-31B-it``
- ``transformers:MODEL_OR_PATH``, e.g. ``transformers:google/gemma-4-E2B-it``
- ``scripted:PATH`` — a JSON list of raw model outputs replayed by :class:`ScriptedBackend` (demos, tests)

Other engines plug in by scheme, the way the built-ins do (each is one :func:`register_backend` call below):

- in code: ``register_backend("myengine", factory)``;
- from an installed package, with no code to run first: an entry point in the ``agentkit.backends`` group,
  named by the scheme, pointing at the factory (``myengine = "myengine_agentkit:from_url"`` under
  ``[project.entry-points."agentkit.backends"]``). It is loaded when a URL with that scheme is first used,
  so a broken plugin breaks its own scheme only, and ``import agentkit`` scans nothing.

A factory is called as ``factory(url, **options)`` with the whole URL and returns a :class:`Backend`;
:func:`split_server_url` reads the ``scheme://HOST:PORT/MODEL`` form for engines that are HTTP servers. Engine
modules are imported only when chosen, so a missing optional extra fails with a hint, not at import.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any
from urllib.parse import urlsplit

from agentkit.errors import BackendError, BackendUnavailable, UserError

from .base import Backend

__all__ = [
    "ENTRY_POINT_GROUP",
    "EXAMPLES",
    "BackendFactory",
    "backend_from_url",
    "backend_schemes",
    "is_server_address",
    "register_backend",
    "split_server_url",
]

ENTRY_POINT_GROUP = "agentkit.backends"

EXAMPLES = (
    "ollama://localhost:11434/gemma4:e4b",
    "vllm://localhost:8000/google/gemma-4-31B-it",
    "transformers:google/gemma-4-E2B-it",
    "scripted:outputs.json",
)

BackendFactory = Callable[..., Backend]
"""``factory(url: str, **options) -> Backend``: builds a backend from its whole URL and constructor options."""

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")  # RFC 3986's scheme syntax, lower-cased
_FACTORIES: dict[str, BackendFactory] = {}


def _bad(url: str, why: str) -> UserError:
    end = " " if why.endswith("?") else ". "
    return UserError(f"invalid backend {url!r}: {why}{end}Examples: " + ", ".join(EXAMPLES))


# What follows each built-in scheme, for "nothing after vllm:".
_FORMS = {
    "ollama": "give the model, and the server if not local: ollama://HOST:11434/MODEL or ollama:MODEL",
    "vllm": "give the server and the model it serves: vllm://HOST:8000/MODEL",
    "vllms": "give the server and the model it serves: vllms://HOST:443/MODEL",
    "transformers": "give a Hugging Face model id or a local folder: transformers:google/gemma-4-E2B-it",
    "scripted": "give a JSON file of raw model outputs: scripted:outputs.json",
}

# A server address written without an engine in front: HOST:PORT, optionally followed by /MODEL.
_HOST_PORT = re.compile(r"(?:localhost|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]|[\w-]+(?:\.[\w-]+)+):\d+(?:/.*)?")


def _guess(url: str) -> str:
    """``; did you mean ...`` for the usual slips: a server address with no engine (``localhost:8000/m``), a
    misspelt scheme (``olama://``) or separator (``vllm//host``, ``vllm:/host``); empty when nothing fits."""
    if _HOST_PORT.fullmatch(url):
        return f"; a server address needs its engine in front: vllm://{url} or ollama://{url}"
    word = re.match(r"[A-Za-z][A-Za-z0-9+-]*", url)
    if word is None:
        return ""
    name, after = word.group(0).lower(), url[word.end() :]
    known = backend_schemes()
    close = [name] if name in known else difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    if not close:
        return ""
    body = after.lstrip(":/")
    if not body:
        return f"; did you mean {close[0]}:?"
    fixed = f"{close[0]}:{body}" if close[0] in ("transformers", "scripted") else f"{close[0]}://{body}"
    return f"; did you mean {fixed}?" if fixed != url else ""


def register_backend(scheme: str, factory: BackendFactory, *, replace: bool = False) -> None:
    """Make ``scheme:...`` URLs build backends with ``factory`` (for ``backend_from_url``, the CLI, the TUI).

    A scheme registered here wins over an installed entry point of the same name; registering one twice is an
    error unless ``replace=True``, so two plugins cannot silently take each other's scheme.
    """
    if not isinstance(scheme, str) or not _SCHEME.fullmatch(scheme.lower()):
        raise UserError(
            f"register_backend() needs a URL scheme such as 'myengine' (a letter, then letters, digits, "
            f"'+', '-' or '.'), got {scheme!r}"
        )
    if not callable(factory):
        raise UserError(
            f"register_backend({scheme!r}, ...) needs a factory called as factory(url, **options), "
            f"got {type(factory).__name__}"
        )
    scheme = scheme.lower()
    if scheme in _FACTORIES and not replace and _FACTORIES[scheme] is not factory:
        raise UserError(
            f"backend scheme {scheme!r} is already registered (to {_describe(_FACTORIES[scheme])}); "
            "pass replace=True to register_backend() to take it over"
        )
    _FACTORIES[scheme] = factory


def _describe(factory: Any) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', type(factory).__name__)}"


def _installed(scheme: str | None = None) -> list[EntryPoint]:
    found = entry_points(group=ENTRY_POINT_GROUP)
    return [ep for ep in found if scheme is None or ep.name.lower() == scheme]


def backend_schemes() -> list[str]:
    """Every scheme ``backend_from_url`` accepts now: registered ones and installed plugins' (not loaded)."""
    return sorted({*_FACTORIES, *(ep.name.lower() for ep in _installed())})


def _from_entry_point(scheme: str) -> BackendFactory | None:
    """Load and register the installed plugin for ``scheme``; None when no package provides it."""
    candidates = _installed(scheme)
    if not candidates:
        return None
    if len({ep.value for ep in candidates}) > 1:
        owners = "; ".join(f"{ep.value} (package {ep.dist.name if ep.dist else '?'})" for ep in candidates)
        raise UserError(
            f"more than one installed package provides the backend scheme {scheme!r}: {owners}. Uninstall one, "
            f"or call agentkit.register_backend({scheme!r}, factory) to choose"
        )
    ep = candidates[0]
    package = ep.dist.name if ep.dist else "an unknown package"
    try:
        factory = ep.load()
    except Exception as exc:
        raise BackendUnavailable(
            f"the backend plugin for {scheme}: URLs ({ep.value}, from {package}) failed to load: "
            f"{type(exc).__name__}: {exc}. Reinstall or upgrade {package}",
            backend=scheme,
        ) from exc
    if not callable(factory):
        raise BackendError(
            f"the backend plugin for {scheme}: URLs ({ep.value}, from {package}) is a {type(factory).__name__}, "
            "not a factory called as factory(url, **options); report this to its authors",
            backend=scheme,
        )
    _FACTORIES.setdefault(scheme, factory)
    return _FACTORIES[scheme]


def backend_from_url(url: str, **options: Any) -> Backend:
    """Build a backend from a URL-like string; ``options`` go to the backend's constructor."""
    if not isinstance(url, str):
        raise UserError(f"backend_from_url() needs a URL string such as {EXAMPLES[0]!r}, got {type(url).__name__}")
    url = url.strip()
    scheme, sep, rest = url.partition(":")
    if not sep or not rest:
        if sep and scheme.lower() in backend_schemes():
            raise _bad(url, f"nothing after {scheme}: — {_FORMS.get(scheme.lower(), 'it needs what to run')}")
        raise _bad(url, f"expected SCHEME:... with a scheme from: {', '.join(backend_schemes())}{_guess(url)}")
    scheme = scheme.lower()
    factory = _FACTORIES.get(scheme) or (_from_entry_point(scheme) if _SCHEME.fullmatch(scheme) else None)
    if factory is None:
        if scheme in ("http", "https"):
            # The address a server prints is the most natural thing to paste; say which form it takes here.
            raise _bad(
                url,
                f"{scheme}:// names no engine; a vLLM server is vllm://HOST:PORT/MODEL (vllms:// for https) "
                "and an Ollama server ollama://HOST:PORT/MODEL",
            )
        known = f"known schemes: {', '.join(backend_schemes())}"
        guess = _guess(url)
        if guess:
            raise _bad(url, f"unknown backend scheme {scheme!r} ({known}){guess}")
        if not rest.startswith("/"):
            raise _bad(
                url, f"unknown backend scheme {scheme!r} ({known}; for the Ollama model {url!r} use ollama:{url})"
            )
        raise _bad(url, f"unknown backend scheme {scheme!r} ({known}; other engines install as plugins)")
    backend = factory(url, **options)
    if not isinstance(backend, Backend):
        raise BackendError(
            f"the {scheme}: backend factory {_describe(factory)} returned a {type(backend).__name__}, which is not "
            "a Backend (it needs name, model, capabilities, stream(), check() and aclose())",
            backend=scheme,
        )
    return backend


def is_server_address(url: str) -> bool:
    """Whether ``url`` names a server but no model (``vllm://HOST:PORT``): what someone writes who does not know
    the model's name yet. ``agentkit models`` and the TUI's backend picker then list what that server has."""
    scheme, _, rest = url.strip().partition(":") if isinstance(url, str) else ("", "", "")
    if not rest.startswith("//") or scheme.lower() not in backend_schemes():
        return False  # an unknown scheme is an error of its own, with its own advice
    parts = urlsplit(url.strip())
    return bool(parts.netloc) and not parts.path.strip("/") and not parts.query


def split_server_url(url: str, *, default_port: int, https_scheme: str | None = None) -> tuple[str, str]:
    """``(base URL, model)`` from ``scheme://HOST[:PORT]/MODEL`` or the short ``scheme:MODEL`` (localhost).

    The model keeps its slashes (``vllm://box:8000/google/gemma-4-31B-it``); a second slash after the host
    names a local path (``vllm://box:8000//srv/models/x``). ``https_scheme`` is the scheme that means https
    (``vllms``). Errors are ``UserError`` with examples.
    """
    scheme, _, rest = url.partition(":")
    http = "https" if https_scheme is not None and scheme.lower() == https_scheme else "http"
    if rest.startswith("//"):
        parts = urlsplit(url)
        if not parts.hostname:
            raise _bad(url, "no host given")
        model = parts.path[1:]  # one slash only: "vllm://host:8000//srv/models/x" names a local path
        try:
            port = parts.port
        except ValueError as exc:
            raise _bad(url, str(exc)) from exc
        host = f"{http}://{parts.hostname}:{port or default_port}"
    else:
        model = rest
        host = f"http://localhost:{default_port}"
        if _HOST_PORT.fullmatch(rest.lstrip("/")):  # "vllm:gpu-box:8000/m": the address read as a model name
            address = rest.lstrip("/")
            raise _bad(url, f"the part after {scheme}: is a server address, not a model; write {scheme}://{address}")
    if not model:
        raise _bad(
            url,
            f"no model given after the host; add it ({url.rstrip('/')}/MODEL), and see what a server has with "
            f"`agentkit models --backend {url.rstrip('/')}`",
        )
    return host, model


# -- the built-in engines, registered like any other ---------------------------------------------------------


def _ollama(url: str, **options: Any) -> Backend:
    from .ollama import OllamaBackend

    host, model = split_server_url(url, default_port=11434)
    return OllamaBackend(model=model, host=host, **options)


def _vllm(url: str, **options: Any) -> Backend:
    from .vllm import VLLMBackend

    host, model = split_server_url(url, default_port=8000, https_scheme="vllms")
    return VLLMBackend(model=model, base_url=host, **options)


def _transformers(url: str, **options: Any) -> Backend:
    from .transformers import TransformersBackend

    return TransformersBackend(url.partition(":")[2], **options)


def _scripted(url: str, **options: Any) -> Backend:
    from .scripted import ScriptedBackend

    return ScriptedBackend.from_file(url.partition(":")[2], **options)


register_backend("ollama", _ollama)
register_backend("vllm", _vllm)
register_backend("vllms", _vllm)
register_backend("transformers", _transformers)
register_backend("scripted", _scripted)
