"""Shared helpers for the sandbox tests: skip without bubblewrap, find sandbox processes on the host."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentkit.tools import PythonSandbox

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


def host_processes_with(marker: str) -> list[int]:
    """PIDs of host processes whose environment or command line contains ``marker`` (root sees them all)."""
    needle = marker.encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        for part in ("environ", "cmdline"):
            try:
                data = Path(entry.path, part).read_bytes()
            except OSError:  # exited meanwhile, or not ours to read
                continue
            if needle in data:
                found.append(int(entry.name))
                break
    return found


@pytest.fixture()
def workspace_dir(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    return ws


@pytest.fixture()
def sandbox(workspace_dir: Path) -> Iterator[PythonSandbox]:
    """A sandbox with short limits; after the test, none of its processes may be left on the host."""
    box = PythonSandbox(workspace_dir, timeout_s=3, memory_mb=256, max_output_bytes=10_000)
    yield box
    assert host_processes_with(box.id) == [], "sandbox processes outlived the run"
