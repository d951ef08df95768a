"""Find, start and stop a real vLLM server on CPU for the ``vllm`` test tier.

vLLM lives in its own virtualenv (it pins transformers and torch; ``tools/vllm/setup_venv.sh`` builds it), so
the server runs as a subprocess of that venv's python: ``AGENTKIT_VLLM_PYTHON``, by default
``~/.cache/agentkit/vllm-venv/bin/python``. Without it the tier is skipped with the reason, unless
``AGENTKIT_REQUIRE_VLLM=1`` (CI that promised to run it), where a missing venv fails instead.

The served model is the tiny random-weight Gemma 4 from :mod:`agentkit.testing.tiny_model`, with
:mod:`vllm_scripted_output` loaded into the server so tests can force an exact output through the real engine.
Fixtures live here (tests/backends has no conftest of its own); test modules import them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent
DEFAULT_PYTHON = Path("~/.cache/agentkit/vllm-venv/bin/python").expanduser()
MAX_MODEL_LEN = 1024
START_TIMEOUT_S = float(os.environ.get("AGENTKIT_VLLM_START_TIMEOUT", "420"))


@dataclass
class VLLMServer:
    """A running server: where it listens, what it serves, and its log (printed when start-up fails)."""

    base_url: str
    model: str
    model_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    start_s: float

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the server and its engine processes (they share its process group)."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def vllm_python() -> Path | None:
    """The vLLM venv's python, or None when it is not installed here."""
    path = Path(os.environ.get("AGENTKIT_VLLM_PYTHON") or DEFAULT_PYTHON).expanduser()
    return path if path.is_file() and os.access(path, os.X_OK) else None


def require_vllm_python() -> Path:
    """The venv's python, or skip (fail under ``AGENTKIT_REQUIRE_VLLM=1``) saying how to install it."""
    python = vllm_python()
    if python is not None:
        return python
    reason = (
        f"no vLLM virtualenv at {os.environ.get('AGENTKIT_VLLM_PYTHON') or DEFAULT_PYTHON}: "
        "run tools/vllm/setup_venv.sh (about 3-6 minutes) or set AGENTKIT_VLLM_PYTHON"
    )
    if os.environ.get("AGENTKIT_REQUIRE_VLLM") == "1":
        pytest.fail(f"AGENTKIT_REQUIRE_VLLM=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def require_transformers_extra() -> None:
    """The tiny model is built here with torch and transformers: skip without them (fail if the tier is required).

    In a virtualenv with just ``.[dev]`` every test of the tier used to error with ``No module named 'torch'``;
    a required tier (``AGENTKIT_REQUIRE_VLLM=1``) must fail instead of skipping, which importorskip cannot do.
    """
    import importlib.util

    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if not missing:
        return
    reason = (
        f"the vLLM tier builds its tiny model with {' and '.join(missing)}: install the transformers extra "
        "(pip install torch==2.13.0, then pip install -e '.[dev,transformers]')"
    )
    if os.environ.get("AGENTKIT_REQUIRE_VLLM") == "1":
        pytest.fail(f"AGENTKIT_REQUIRE_VLLM=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, even by SIGKILL (a CI timeout)."""
    os.setsid()  # own process group, so stop() reaches vLLM's engine processes too
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def launch_vllm_server(
    python: Path, model_dir: Path, log_path: Path, *, extra_args: tuple[str, ...] = ()
) -> VLLMServer:
    """Start ``vllm.entrypoints.openai.api_server`` on a free loopback port and wait until it serves."""
    port = free_port()
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB: plenty for a 1,024-token context, and the machine is shared
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        "VLLM_NO_USAGE_STATS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    command = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir),
        "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", str(MAX_MODEL_LEN),
        "--dtype", "float32",
        "--enable-auto-tool-choice", "--tool-call-parser", "gemma4", "--reasoning-parser", "gemma4",
        "--logits-processors", "vllm_scripted_output:ScriptedOutputLogitsProcessor",
        # No torch.compile warm-up: starts in ~45 s instead of ~110 s here; a tiny model gains nothing from it.
        "--enforce-eager",
        "--enable-prompt-tokens-details",  # usage.prompt_tokens_details.cached_tokens: prefix-cache hits
        *extra_args,
    ]  # fmt: skip
    log = log_path.open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
    log.close()
    server = VLLMServer(f"http://127.0.0.1:{port}", str(model_dir), model_dir, process, log_path, 0.0)
    deadline = started + START_TIMEOUT_S
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vLLM exited with {process.returncode} while starting:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.base_url}/v1/models", timeout=2).status_code == 200:
                server.start_s = time.perf_counter() - started
                return server
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"vLLM did not answer /v1/models within {START_TIMEOUT_S:g} s:\n{server.log_tail()}")


def attach(base_url: str) -> VLLMServer:
    """A server someone else started with :func:`launch_vllm_server` (``python tests/backends/vllm_server.py``)."""
    models = httpx.get(f"{base_url}/v1/models", timeout=10).json()["data"]
    model = str(models[0]["id"])
    placeholder = subprocess.Popen(["true"])  # not ours to stop: stop() sees it has exited
    placeholder.wait()
    return VLLMServer(base_url, model, Path(model), placeholder, Path(os.devnull), 0.0)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    """A real vLLM server on CPU serving the tiny Gemma 4 model, for the whole test session.

    ``AGENTKIT_VLLM_BASE_URL`` points the tests at a server already started by running this file as a script,
    which saves the minute of start-up while iterating.
    """
    if os.environ.get("AGENTKIT_VLLM_BASE_URL"):
        yield attach(os.environ["AGENTKIT_VLLM_BASE_URL"].rstrip("/"))
        return
    python = require_vllm_python()
    require_transformers_extra()
    from agentkit.testing import tiny_model

    base = tmp_path_factory.mktemp("vllm")
    model_dir = tiny_model.build_tiny_gemma4(base / "tiny-gemma4")
    server = launch_vllm_server(python, model_dir, base / "server.log")
    print(f"\nvLLM server ready in {server.start_s:.1f} s at {server.base_url}")
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    # Serve the tiny model until interrupted; then AGENTKIT_VLLM_BASE_URL=URL pytest -m vllm reuses it.
    import tempfile

    # A background job starts with SIGINT ignored; make both Ctrl-C and `kill` stop the server cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    from agentkit.testing.tiny_model import build_tiny_gemma4

    python = vllm_python()
    if python is None:
        sys.exit("no vLLM virtualenv: run tools/vllm/setup_venv.sh or set AGENTKIT_VLLM_PYTHON")
    work = Path(tempfile.mkdtemp(prefix="agentkit-vllm-"))
    server = launch_vllm_server(python, build_tiny_gemma4(work / "tiny-gemma4"), work / "server.log")
    print(f"vLLM ready in {server.start_s:.1f} s: AGENTKIT_VLLM_BASE_URL={server.base_url} (log {server.log_path})")
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
