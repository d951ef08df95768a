"""Gemma 4 on an Ollama server: :class:`OllamaBackend` (``/api/chat``) and the request mapping it sends.

``_backend`` holds the HTTP conversation (on the shared plumbing of :mod:`agentkit.backends._http`), ``_convert``
the pure mapping of a request onto Ollama's chat JSON.
"""

from ._backend import DEFAULT_HOST, OllamaBackend
from ._convert import chat_body, media_base64, ollama_messages, sampling_options

__all__ = ["DEFAULT_HOST", "OllamaBackend", "chat_body", "media_base64", "ollama_messages", "sampling_options"]
