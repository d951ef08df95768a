"""How long a context the in-process engine gets: the model's own, as far as memory allows.

A fixed default is wrong both ways: Gemma 4 models read 128k tokens and more, and a GPU that holds the
weights may have room for only part of that much key/value cache (the engine preallocates it on CUDA; on
CPU it grows, but must still fit in RAM). So the default is the model's context (``max_position_embeddings``)
cut to what the free memory holds, and the limit carries a sentence saying where it came from and how to
raise it, for the error a too-long prompt gets.

The cache's size per token is measured, not computed from the config: one token through the model with a
fresh cache shows exactly which layers store keys and values (layers that share another layer's states store
none) and at what width, whatever the transformers version calls those fields.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentkit.errors import BackendError, UserError

from .compat import cache_argument, import_transformers

if TYPE_CHECKING:  # torch is imported where it is used: importing the backend module must not need the extra
    import torch

__all__ = ["ENV_VAR", "ContextLimit", "choose_cache_len", "kv_bytes_per_token"]

ENV_VAR = "AGENTKIT_MAX_CACHE_LEN"
_GIB = 1 << 30
_MIN_TOKENS = 1024  # below this an agent cannot hold even its tool declarations and one exchange


@dataclass(frozen=True, slots=True)
class ContextLimit:
    """The cache length chosen, and what to tell a user whose prompt does not fit it."""

    tokens: int
    why: str


def kv_bytes_per_token(model: Any, device: torch.device) -> int:
    """Bytes of key/value cache one token takes in this model, measured with one forward pass."""
    cache_utils: Any = import_transformers().cache_utils
    import torch

    n = model.config.get_text_config().num_hidden_layers
    cache = cache_utils.Cache(layers=[cache_utils.DynamicLayer() for _ in range(n)])
    with torch.inference_mode():
        ids = torch.zeros((1, 1), dtype=torch.long, device=device)
        model(input_ids=ids, use_cache=True, **{cache_argument(model): cache})
    total = 0
    for layer in cache.layers:
        if layer.is_initialized:
            total += layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
    return max(total, 1)


def _free_memory(device: torch.device) -> tuple[int, str]:
    """Bytes the cache may use on ``device``, and how that was decided (for the error message)."""
    import torch

    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        # Leave room for activations, logits and the captured graphs' pool.
        spare = max(_GIB, total // 10)
        return max(0, free - spare), f"the GPU's free memory ({free / _GIB:.1f} GiB, {spare / _GIB:.1f} GiB kept spare)"
    available = _available_ram()
    # The CPU cache grows as the conversation does; keep half of what is free for everything else.
    return available // 2, f"half of the free RAM ({available / _GIB:.1f} GiB)"


def _available_ram() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        try:
            with open("/proc/meminfo", encoding="ascii") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def choose_cache_len(model: Any, device: torch.device, requested: int | None) -> ContextLimit:
    """The cache length to use: ``requested`` (or ``$AGENTKIT_MAX_CACHE_LEN``), else what context and memory allow."""
    context = int(getattr(model.config.get_text_config(), "max_position_embeddings", 0) or 0)
    source = "max_cache_len"
    if requested is None and os.environ.get(ENV_VAR, "").strip():
        raw = os.environ[ENV_VAR].strip()
        if not raw.isdigit():
            raise UserError(f"{ENV_VAR}={raw!r} is not a whole number of tokens; unset it or give e.g. 32768")
        requested, source = int(raw), ENV_VAR
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 2:
            raise UserError(f"{source} must be a whole number of tokens of at least 2, got {requested!r}")
        if context and requested > context:
            raise UserError(
                f"{source}={requested} is more than the model's context of {context} tokens "
                "(max_position_embeddings): the model was not trained for positions beyond it"
            )
        return ContextLimit(requested, f"{source} is {requested}; raise it (up to {context or 'the model context'})")
    if not context:
        raise UserError(
            "the model's config names no context length (max_position_embeddings): pass max_cache_len= "
            f"to TransformersBackend or set {ENV_VAR}"
        )
    per_token = kv_bytes_per_token(model, device)
    budget, where = _free_memory(device)
    fits = budget // per_token
    if fits >= context:
        return ContextLimit(context, f"that is the model's whole context (max_position_embeddings={context})")
    tokens = fits // 1024 * 1024 if fits >= 2048 else fits
    if tokens < min(_MIN_TOKENS, context):
        raise BackendError(
            f"not enough memory for the key/value cache: {where} holds {fits} tokens at "
            f"{per_token / 1024:.0f} KiB per token. Free memory, use a smaller model or dtype, or set "
            f"max_cache_len= / {ENV_VAR} to a length you know fits",
            backend="transformers",
        )
    return ContextLimit(
        tokens,
        f"the cache was sized to fit {where} at {per_token / 1024:.0f} KiB per token; the model reads up to "
        f"{context}. Free memory, or pass max_cache_len= (or set {ENV_VAR}) up to {context}",
    )
