"""Fixtures shared across test folders: one simulated multi-node Ray cluster per test session, and a loopback
OTLP/HTTP receiver for the tracing tests.

Ray start-up costs seconds, so every test that runs batches on Ray shares one cluster: a head node with no CPUs
(the driver's, as in production) and two worker nodes of two CPUs each, started by ``ray.cluster_utils.Cluster``
in separate processes on this machine. Tests that kill a node add a fresh one back before they end. The
cluster and every Ray process are gone when the session ends.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]

# Property tests are about behaviour, never speed: no per-example deadline (a loaded CI machine made one example
# slow and Hypothesis call the test flaky). On CI the examples are derived from each test, not drawn at random,
# so a run fails for a change and not for a draw; locally each run explores new ones.
settings.register_profile("agentkit", deadline=None)
settings.register_profile("agentkit-ci", deadline=None, derandomize=True)
settings.load_profile("agentkit-ci" if os.environ.get("CI") else "agentkit")
WORKER_NODE = {"num_cpus": 2}


@contextlib.contextmanager
def _worker_paths() -> Iterator[None]:
    """PYTHONPATH for the Ray node processes started inside: they import agentkit and these tests' modules
    (pickled test functions are found by module name, e.g. ``cli.test_batch``). The tests' own subprocesses,
    started later, do not inherit it."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(ROOT / "tests"), previous) if p)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


def add_worker_node(cluster: Any, **node_args: Any) -> Any:
    """Start one more worker node (two CPUs) in ``cluster``; ``node_args`` as ``Cluster.add_node``'s
    (``env_vars={...}``: a node whose workers see a different environment)."""
    with _worker_paths():
        return cluster.add_node(**WORKER_NODE, **node_args)


@contextlib.contextmanager
def _private_ray_token() -> Iterator[None]:
    """A 0600 token for the session's cluster, named by ``RAY_AUTH_TOKEN_PATH`` (the node processes and the tests'
    drivers inherit it). Without it Ray wrote ``~/.ray/auth_token`` with the umask's 0644, in the home of whoever
    ran the tests, and agentkit refuses to send a token others can read to a cluster (as it should)."""
    import secrets
    import shutil
    import tempfile

    from agentkit.batch.ray_executor import _reset_token_cache

    before = os.environ.get("RAY_AUTH_TOKEN_PATH")
    folder = tempfile.mkdtemp(prefix="agentkit-test-ray-token-")
    path = os.path.join(folder, "auth_token")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="ascii") as f:
        f.write(secrets.token_hex(32))
    os.environ["RAY_AUTH_TOKEN_PATH"] = path
    _reset_token_cache()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        else:
            os.environ["RAY_AUTH_TOKEN_PATH"] = before
        _reset_token_cache()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A connected three-node cluster (``cluster.address``); skipped where Ray is not installed."""
    ray = pytest.importorskip("ray", reason="the Ray executor needs the [ray] extra")
    from ray.cluster_utils import Cluster

    with _private_ray_token():
        yield from _cluster(ray, Cluster)


def _cluster(ray: Any, cluster_class: Any) -> Iterator[Any]:
    with _worker_paths():
        cluster = cluster_class(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for _ in range(2):
            add_worker_node(cluster)
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def ray_node_adder(ray_cluster: Any) -> Any:
    """``add(**node_args)`` starts a fresh worker node (for tests that kill one and must leave the cluster as they
    found it)."""
    return lambda **node_args: add_worker_node(ray_cluster, **node_args)


@pytest.fixture(params=["local", pytest.param("ray", marks=pytest.mark.ray)])
def executor_name(request: pytest.FixtureRequest) -> str:
    """Run a batch test once per executor; the Ray run joins the session's cluster."""
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    return str(request.param)


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback OTLP/HTTP collector: its base URL, and the bodies of the export requests it received."""
    bodies: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", bodies
    server.shutdown()
