"""Fixtures of the backend tests, defined once for the folder.

The real vLLM server is a session fixture; pytest keeps one instance per place a fixture is defined, so two test
modules that each import it would start the server twice. Defining it here starts it once per test session.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the test doubles live next to this file

from vllm_server import vllm_server

__all__ = ["vllm_server"]
