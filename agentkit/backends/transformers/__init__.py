"""Gemma 4 in process with Hugging Face transformers: :class:`TransformersBackend`.

``_backend`` is the backend (loading, the request thread, streaming); ``_engine`` the decode loop over a static
KV cache reused across agent steps; ``_compile`` the background compilation that swaps in when ready;
``_context`` the cache length; ``_media`` images and audio; ``_grammar`` constrained tool calls; ``_assisted``
speculative decoding with a drafter; ``compat`` the transformers version shims that the test fixtures share;
``_exit`` frees what compiling left in torch before the interpreter exits.
Importing this package imports neither torch nor transformers; building a backend does.
"""

from . import _exit  # noqa: F401  (registers the exit hook)
from ._backend import TemplateDriftWarning, TransformersBackend

__all__ = ["TemplateDriftWarning", "TransformersBackend"]
