"""Compiling the engine's forward pass off the request path, one decoder layer at a time, cached on disk.

Why each piece:

- **Off the request path.** Compiling a multi-billion-parameter model takes minutes; a user who starts an
  agent must not wait for it. :class:`BackgroundCompile` compiles on a daemon thread against a small scratch
  cache of its own (so it never touches the cache a request is using) while requests are served on the eager
  path; the engine swaps the compiled step in between two requests once it is ready.
- **Regional.** The decoder layers are the same code 42 times over. Compiling the whole model unrolls them
  into one huge graph (the first compilation took 6-7 minutes on an H100); compiling the layer function
  compiles each distinct layer kind (sliding/full attention, storing/reusing shared keys and values) once per
  input shape and reuses it for every layer of that kind. Each compiled layer is handed only its own cache
  layer (:class:`_LayerCache`): indexing the shared cache by ``layer_idx`` inside compiled code would
  specialize on the index and compile every layer separately.
- **On disk.** inductor's FX-graph and autotuning caches and Triton's kernels go to agentkit's cache directory
  (:func:`compile_cache_dir`), so a second process skips code generation and starts warm.
- **Attention by shape.** A single query against a long cache (the decode step) runs fastest as plain matrix
  products spread over the whole GPU (the fused kernels parallelize over query blocks and use a few SMs);
  prefill chunks run best in the fused kernels. :func:`install_attention` registers an attention function
  that does exactly that inside compiled layers and is PyTorch's SDPA everywhere else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .compat import import_transformers

__all__ = [
    "ATTENTION",
    "BackgroundCompile",
    "CompileStatus",
    "RegionalCompiler",
    "compile_cache_dir",
    "install_attention",
    "private_cache_dir",
    "use_persistent_cache",
]

log = logging.getLogger("agentkit.backends.transformers")

#: The attention implementation name the engine registers with transformers.
ATTENTION = "agentkit_sdpa"
ENV_CACHE_DIR = "AGENTKIT_COMPILE_CACHE"


@dataclass(frozen=True, slots=True)
class CompileStatus:
    """Where compilation stands, for logs, ``doctor`` and the TUI.

    ``state`` is ``off`` (not compiling: CPU, or ``compile=False``), ``compiling`` (requests are served on the
    eager path meanwhile), ``ready`` (the compiled step is in use, or will be from the next request) or
    ``failed`` (eager path for good; ``detail`` says why).
    """

    state: str
    detail: str = ""
    seconds: float = 0.0

    def __str__(self) -> str:
        if self.state == "compiling":
            return f"compiling the decode step in the background ({self.seconds:.0f} s so far; eager meanwhile)"
        if self.state == "ready":
            return f"compiled ({self.seconds:.0f} s{', ' + self.detail if self.detail else ''})"
        if self.state == "failed":
            return f"compilation failed, eager path in use: {self.detail}"
        return self.detail or "eager (not compiled)"


def compile_cache_dir() -> Path:
    """Where compiled kernels persist: ``$AGENTKIT_COMPILE_CACHE``, else agentkit's user cache directory."""
    explicit = os.environ.get(ENV_CACHE_DIR, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("agentkit", appauthor=False)) / "torch-compile"


def private_cache_dir(root: Path) -> Path:
    """``root``, made if missing (mode 0700), refused unless only this user can put files in it.

    Inductor and Triton load what they find there as code (compiled modules, kernels) without checking who
    wrote it, so a cache directory someone else can write to (``AGENTKIT_COMPILE_CACHE=/tmp/cache`` made by
    another user, or left group- or world-writable) would run their code in this process. The same holds for
    each directory above it, unless it is sticky as ``/tmp`` is (others cannot rename what they do not own).
    """
    from agentkit.errors import UserError

    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        resolved = root.resolve(strict=True)
        uid = os.getuid()
        for place in (resolved, *resolved.parents):
            st = os.stat(place)
            own = place == resolved
            if (own and st.st_uid != uid) or (not own and st.st_uid not in (uid, 0)):
                raise UserError(
                    f"the compile cache {root} is not safe: {place} belongs to another user (uid {st.st_uid}), who "
                    f"could plant compiled code that this process would run; set {ENV_CACHE_DIR} to a directory of "
                    "your own"
                )
            if st.st_mode & 0o022 and not (not own and st.st_mode & 0o1000):
                raise UserError(
                    f"the compile cache {root} is not safe: {place} is writable by other users (mode "
                    f"{st.st_mode & 0o7777:o}), who could plant compiled code that this process would run; "
                    f"run `chmod go-w {place}` or set {ENV_CACHE_DIR} to a directory of your own"
                )
    except OSError as exc:
        raise UserError(
            f"cannot use the compile cache {root}: {exc}; set {ENV_CACHE_DIR} to another directory"
        ) from exc
    return resolved


def use_persistent_cache(path: Path | None = None) -> Path:
    """Point inductor's and Triton's on-disk caches at ``path`` (agentkit's by default), unless the user did.

    Environment variables rather than config attributes: inductor's compile workers are subprocesses and read
    the environment. Must run before the first compilation in this process.
    """
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    root = private_cache_dir(path or compile_cache_dir())
    # inductor writes its default into the environment the first time it looks: that one is not the user's.
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is None or os.path.abspath(current) == os.path.abspath(default_cache_dir()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root / "inductor")
    os.environ.setdefault("TRITON_CACHE_DIR", str(root / "triton"))
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])


def cache_size(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path``: what ``doctor`` shows of the persistent compile cache."""
    files = size = 0
    if path.is_dir():
        for p in path.rglob("*"):
            if p.is_file():
                files += 1
                size += p.stat().st_size
    return files, size


# --- attention -----------------------------------------------------------------------------------------------


def _attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA, except a single query inside compiled code: grouped matrix products over the cache view."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    compiling = torch.compiler.is_compiling()
    if not (compiling and query.shape[2] == 1 and kwargs.get("softcap") is None):
        out: tuple[torch.Tensor, None] = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
        return out
    b, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    scaling = kwargs.get("scaling")
    scale = dim**-0.5 if scaling is None else scaling
    # [b, kv_heads, group, dim]: the query heads that share a key/value head, so keys are read once per group.
    q = query.reshape(b, kv_heads, heads // kv_heads, dim)
    scores = torch.matmul(q, key.transpose(2, 3)).float() * scale
    if attention_mask is not None:
        mask = attention_mask[..., -1:, :].reshape(b, 1, 1, -1)
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + mask.float()
    probs = scores.softmax(dim=-1).to(value.dtype)
    out_v = torch.matmul(probs, value)  # [b, kv_heads, group, v_dim]
    return out_v.reshape(b, heads, 1, value.shape[-1]).transpose(1, 2).contiguous(), None


def install_attention(model: Any) -> None:
    """Register :data:`ATTENTION` with transformers and make the model's text stack use it."""
    hf = import_transformers()
    from transformers.masking_utils import sdpa_mask

    hf.AttentionInterface.register(ATTENTION, _attention)
    hf.masking_utils.AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    config = model.config.get_text_config()
    if getattr(config, "_attn_implementation", None) in (None, "sdpa"):
        config._attn_implementation = ATTENTION


# --- regional compilation ------------------------------------------------------------------------------------


class _LayerCache:
    """The cache a compiled decoder layer sees: only its own layer, whatever index it asks for."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return self.layer.update(key_states, value_states)


def decoder_layers(model: Any) -> list[Any]:
    """The text decoder layers of a Gemma 4 model (causal LM or the multimodal wrapper), or [] if not found."""
    candidates = [model]
    for attr in ("model", "language_model"):
        nxt = getattr(candidates[-1], attr, None)
        if nxt is not None:
            candidates.append(nxt)
            inner = getattr(nxt, "language_model", None)
            if inner is not None:
                candidates.append(inner)
    for c in reversed(candidates):
        layers = getattr(c, "layers", None)
        if layers is not None and len(layers) and hasattr(layers[0], "layer_idx") and hasattr(layers[0], "self_attn"):
            return list(layers)
    return []


class RegionalCompiler:
    """Decoder layers compiled as one function; a thread-local switch picks compiled or eager per call.

    The switch is per thread so the background compilation and an eager request can run at the same time,
    and so that nothing but the engine's own step (stock ``generate`` on the same model, say) ever runs the
    compiled layers. The layers get a subclass whose ``forward`` dispatches (rather than a wrapper bound to
    each instance), so a copy of the model runs its own weights.
    """

    def __init__(self, model: Any) -> None:
        self.layers = decoder_layers(model)
        self._local = threading.local()
        self._compiled: Callable[..., Any] | None = None
        if not self.layers:
            return
        layer_cls = type(self.layers[0])
        # The undecorated forward: the deprecation wrapper's code is shared by many functions, which would
        # mix their compilations in one cache.
        inner = getattr(layer_cls.forward, "__wrapped__", layer_cls.forward)
        compiled: Callable[..., Any] = torch.compile(inner, dynamic=True)
        self._compiled = compiled
        local = self._local

        class Regional(layer_cls):  # type: ignore[misc, valid-type]
            def forward(self, *args: Any, **kwargs: Any) -> Any:
                if not getattr(local, "on", False):
                    return super().forward(*args, **kwargs)
                name = "cache" if "cache" in kwargs else "past_key_values"
                cache = kwargs.pop(name, None)
                if cache is not None:
                    kwargs["cache"] = _LayerCache(cache.layers[self.layer_idx])
                return compiled(self, *args, **kwargs)

        Regional.__name__ = layer_cls.__name__
        Regional.__qualname__ = layer_cls.__qualname__
        for layer in self.layers:
            if type(layer) is layer_cls:
                layer.__class__ = Regional
        import torch._dynamo.config as dynamo_config

        # Layer kinds x input shapes, each one entry on the same code object.
        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
        dynamo_config.accumulated_recompile_limit = max(dynamo_config.accumulated_recompile_limit, 512)

    def __deepcopy__(self, memo: dict[int, Any]) -> RegionalCompiler:
        return self  # compiled code and the switch are shared; each layer's forward already uses its own weights

    @property
    def available(self) -> bool:
        return self._compiled is not None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Run the decoder layers compiled in this thread for the duration."""
        before = getattr(self._local, "on", False)
        self._local.on = True
        try:
            yield
        finally:
            self._local.on = before


# --- the background thread ----------------------------------------------------------------------------------


class BackgroundCompile:
    """Compiles the step function on a daemon thread; ``on_ready`` runs there when it is done."""

    def __init__(
        self,
        warm: Callable[[], None],
        on_ready: Callable[[], None],
        *,
        name: str = "agentkit-compile",
    ) -> None:
        self._warm = warm
        self._on_ready = on_ready
        self._start = 0.0
        self._end = 0.0
        self._error = ""
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._start = time.perf_counter()
        log.info("transformers: compiling the decode step in the background; requests run eagerly until then")
        self._thread.start()

    def _run(self) -> None:
        try:
            self._warm()
            self._end = time.perf_counter()
            self._on_ready()
            log.info("transformers: compiled step ready after %.1f s", self._end - self._start)
        except Exception as exc:  # the eager path keeps working; say why compilation is off
            self._end = time.perf_counter()
            self._error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.warning("transformers: compilation failed after %.1f s, staying eager: %s", self.seconds, self._error)
        finally:
            self.done.set()

    @property
    def seconds(self) -> float:
        if not self._start:
            return 0.0
        return (self._end or time.perf_counter()) - self._start

    @property
    def status(self) -> CompileStatus:
        if not self.done.is_set():
            return CompileStatus("compiling", seconds=self.seconds)
        if self._error:
            return CompileStatus("failed", self._error, self.seconds)
        return CompileStatus("ready", seconds=self.seconds)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)
