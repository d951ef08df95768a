"""agentkit: agents on Gemma 4 with native function calling."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
