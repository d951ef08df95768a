"""Gemma 4 on vLLM's OpenAI-compatible server: :class:`VLLMBackend`, native prompts or the chat API.

``_backend`` holds the HTTP conversation (on the shared plumbing of :mod:`agentkit.backends._http`), ``_wire``
what the server says (its error messages, server-sent events, stop reasons), ``_tokenizer`` the local tokenizer
that makes token-id prompts possible.
"""

from ._backend import VLLMBackend
from ._tokenizer import FastTokenizer, load_tokenizer, locate_tokenizer_json

__all__ = ["FastTokenizer", "VLLMBackend", "load_tokenizer", "locate_tokenizer_json"]
