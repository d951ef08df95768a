"""The prompt/terminal/session attack suite (tools/bench/prompt_security.py) runs whole, with no hole.

Its attempts are also spread over the unit tests, but the suite builds its own requests (a vLLM chat body with
an image, an Ollama body with media bytes, ...): run as it ships, so a change that breaks how it builds them is
seen here rather than as a "hole" in the closing figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tokenizers", reason="the suite trains a small tokenizer: needs the [transformers] extra")
pytest.importorskip("transformers", reason="the suite uses a Hugging Face tokenizer: needs the [transformers] extra")

ROOT = Path(__file__).resolve().parents[1]


def test_the_prompt_security_suite_finds_no_hole() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AGENTKIT_VLLM_BASE_URL"}  # the server tier runs elsewhere
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench" / "prompt_security.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0 and last.endswith("holes: 0"), done.stdout[-3000:] + done.stderr[-3000:]
