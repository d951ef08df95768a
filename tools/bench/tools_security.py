"""The tools security report: attacks on fetch_url, the file tools and the approval policy, tried and blocked.

Runs tests/tools/test_tools_security.py and tests/mcp_toolsets/test_mcp_{http,stdio}_limits.py in process (each test is
one attack: a decompression bomb over loopback, an IPv6 spelling of a private address, a pattern that backtracks
forever, a write to host-executed config, a set-id file, a secret carried out in a URL, a tool result of
millions of characters, an MCP server flooding its answer; a passing test means the attack was blocked). Then
times ``grep`` with RE2 side by side with the same search done with Python's ``re`` on an ordinary pattern, so
the cost of the linear-time matcher is visible.

Run: ``python tools/bench/tools_security.py`` (about 30 s).
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITES = [
    ROOT / "tests" / "tools" / "test_tools_security.py",
    ROOT / "tests" / "mcp_toolsets" / "test_mcp_http_limits.py",  # a hostile MCP server over HTTP
    ROOT / "tests" / "mcp_toolsets" / "test_mcp_stdio_limits.py",  # a hostile MCP server over stdio
]
REPEATS = 7


class Tally:
    """pytest plugin: one attempt per test; 'blocked' means the test passed."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.outcomes[report.nodeid.split("::", 1)[1]] = report.outcome


def timed(fn: Any) -> float:
    fn()
    runs = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs) * 1000


def grep_side_by_side() -> None:
    from agentkit.tools import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"def handler_{i}(request, *args):\n    return respond(request, {i})\n" for i in range(20_000)]
        Path(tmp, "code.py").write_text("".join(lines))
        pattern = r"def \w+_1\d\d\("
        ws = Workspace(tmp, max_results=10_000)

        def with_re() -> int:
            rx = re.compile(pattern)
            with open(Path(tmp, "code.py"), encoding="utf-8") as f:
                return sum(1 for line in f if rx.search(line))

        assert ws.grep(pattern).count("\n") + 1 == with_re()
        re2_ms, re_ms = timed(lambda: ws.grep(pattern)), timed(with_re)
    print(f"\n== grep over 40,000 lines, median of {REPEATS} ==")
    print(f"  Workspace.grep (RE2, bounded pieces) {re2_ms:7.1f} ms")
    print(f"  plain re loop (no limits)            {re_ms:7.1f} ms")
    print(f"  ratio RE2 grep / re loop: {re2_ms / re_ms:.2f}x")


def main() -> None:
    tally = Tally()
    pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly", *map(str, SUITES)], plugins=[tally])
    blocked = sum(1 for o in tally.outcomes.values() if o == "passed")
    print("\n== attacks on fetch_url, the file tools and approval ==")
    for name, outcome in tally.outcomes.items():
        print(f"  {'blocked' if outcome == 'passed' else outcome.upper():8} {name}")
    print(f"attempts tried: {len(tally.outcomes)}, blocked: {blocked}, got through: {len(tally.outcomes) - blocked}")
    grep_side_by_side()
    sys.exit(0 if blocked == len(tally.outcomes) else 1)


if __name__ == "__main__":
    main()
