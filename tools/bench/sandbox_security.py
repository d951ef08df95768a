"""The sandbox security report: escape attempts tried and blocked, host processes left over, print(1) wall time.

Runs tests/tools/test_sandbox_security.py in process (each test is one escape attempt through
``PythonSandbox.run`` or the workspace tools; a passing test means the attempt failed and the host was left
as it was), records the id of every sandbox created meanwhile, and afterwards scans the host's /proc for any
process still carrying one of those ids. Then times ``PythonSandbox().run("print(1)")`` (the sync API, so
event-loop start-up is included) side by side with a bare ``python -I -S -c 'print(1)'`` on the host.

Run: ``python tools/bench/sandbox_security.py`` (needs bubblewrap; takes one to two minutes).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests" / "tools" / "test_sandbox_security.py"
REPEATS = 30


class Tally:
    """pytest plugin: one attempt per test; 'blocked' means the test passed."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.outcomes[report.nodeid.split("::", 1)[1]] = report.outcome


def run_suite() -> tuple[Tally, list[str]]:
    from agentkit.tools import PythonSandbox

    ids: list[str] = []
    original = PythonSandbox.__init__

    def recording_init(self: PythonSandbox, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        ids.append(self.id)

    PythonSandbox.__init__ = recording_init  # type: ignore[method-assign]
    tally = Tally()
    try:
        pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(SUITE)], plugins=[tally])
    finally:
        PythonSandbox.__init__ = original  # type: ignore[method-assign]
    return tally, ids


def leftovers(ids: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from tests.tools.conftest import host_processes_with

    return sum(len(host_processes_with(i)) for i in ids)


def timed(fn: Any) -> list[float]:
    fn()  # warm-up (imports, page cache)
    out = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    tally, ids = run_suite()
    blocked = sum(1 for o in tally.outcomes.values() if o == "passed")
    print("\n== escape attempts ==")
    for name, outcome in tally.outcomes.items():
        print(f"  {'blocked' if outcome == 'passed' else outcome.upper():8} {name}")
    print(f"attempts tried: {len(tally.outcomes)}, blocked: {blocked}")
    print(f"sandboxes created: {len(ids)}, host processes left over: {leftovers(ids)}")

    from agentkit.tools import PythonSandbox

    box = PythonSandbox(timeout_s=10)
    sandboxed = timed(lambda: box.run("print(1)"))
    bare = timed(lambda: subprocess.run([sys.executable, "-I", "-S", "-c", "print(1)"], capture_output=True))
    print(f"\n== print(1) wall time, {REPEATS} runs each ==")
    for label, xs in (("PythonSandbox.run", sandboxed), ("bare python -I -S", bare)):
        xs.sort()
        p90 = xs[int(len(xs) * 0.9) - 1]
        print(f"  {label:20} median {statistics.median(xs):6.1f} ms   min {xs[0]:6.1f} ms   p90 {p90:6.1f} ms")
    print(f"  ratio sandbox/bare (median): {statistics.median(sandboxed) / statistics.median(bare):.1f}x")


if __name__ == "__main__":
    main()
