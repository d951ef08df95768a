"""Work-arounds for known defects in the transformers versions agentkit supports, applied only when present.

transformers 5.23's ``Gemma4TextConfig.kv_sharing_modes`` raises "The set of layer types producing a cache is
different than the set of layer types using them" when *every* layer reuses shared key/value states — which is
exactly how ``Gemma4AssistantConfig`` configures the multi-token-prediction drafter (it sets
``num_kv_shared_layers = num_hidden_layers``), so no Gemma 4 drafter can be built or loaded. For an all-shared
stack the right answer is simply "reuse" for every layer: the states come from the target model.
"""

from __future__ import annotations

from typing import Any

__all__ = ["cache_argument", "import_transformers", "patch_gemma4_assistant_kv_sharing"]

# agentkit is installed from its checkout (the name "agentkit" on PyPI is another project), so the hint is the
# command that works there.
EXTRA_HINT = (
    "in the agentkit checkout, pip install -e '.[transformers]' (on a machine without a GPU, install CPU torch "
    "first so pip does not fetch a multi-GB CUDA build: pip install torch --index-url "
    "https://download.pytorch.org/whl/cpu)"
)


def import_transformers() -> Any:
    """Import transformers lazily (seconds, and an optional extra); typed ``Any`` because it is largely untyped."""
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(f"the transformers backend needs torch and transformers: {EXTRA_HINT}") from exc
    return transformers


def cache_argument(model: Any) -> str:
    """The keyword a model's forward takes its KV cache by.

    transformers renamed ``past_key_values`` to ``cache``; the old name warns on every call and goes away in
    5.40, and releases before the rename know only the old one.
    """
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


_patched = False


def patch_gemma4_assistant_kv_sharing() -> None:
    """Let all-shared Gemma 4 text stacks (drafters) report "reuse" everywhere instead of raising."""
    global _patched
    if _patched:
        return
    from transformers.models.gemma4 import configuration_gemma4

    cls: Any = configuration_gemma4.Gemma4TextConfig
    original = cls.kv_sharing_modes
    probe = cls(
        vocab_size=8,
        vocab_size_per_layer_input=0,
        hidden_size=8,
        intermediate_size=8,
        num_hidden_layers=2,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=8,
        hidden_size_per_layer_input=0,
        layer_types=["sliding_attention", "full_attention"],
        num_kv_shared_layers=2,
    )
    try:
        original.fget(probe)
    except ValueError:
        pass
    else:  # fixed upstream: leave transformers alone
        _patched = True
        return

    def kv_sharing_modes(self: Any) -> list[str | None]:
        if self.num_kv_shared_layers and self.num_kv_shared_layers >= self.num_hidden_layers:
            return ["reuse"] * self.num_hidden_layers
        result: list[str | None] = original.fget(self)
        return result

    cls.kv_sharing_modes = property(kv_sharing_modes)
    _patched = True
