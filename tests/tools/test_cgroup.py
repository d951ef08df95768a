"""The per-run cgroup: limits written where the kernel offers them, nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentkit.tools.sandbox._cgroup import RunCgroup


def test_v2_layout_enables_the_controllers_and_writes_the_limits(tmp_path: Path) -> None:
    # A cgroup v2 directory is plain files to this code: one made by hand shows what it writes.
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    group = RunCgroup()
    assert group._make_v2(tmp_path, ["pids", "memory"], 34, 300 * 2**20)
    (child,) = group.dirs
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+pids +memory"
    assert (child / "pids.max").read_text() == "34" and (child / "memory.max").read_text() == str(300 * 2**20)
    assert group.pids_limited and group.memory_limited and group.memory_layout == "cgroup v2"
    (child / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    assert group.oom_kills() == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can make cgroups here")
def test_real_cgroup_limits_and_is_removed() -> None:
    group = RunCgroup.create(10, 128 * 2**20)
    try:
        assert group.pids_limited
        if group.memory_limited:
            assert group.memory_layout in ("cgroup v1", "cgroup v2") and group.oom_kills() == 0
        assert all(d.is_dir() for d in group.dirs)
    finally:
        dirs = list(group.dirs)
        group.close()
    assert not any(d.exists() for d in dirs)


def test_nothing_wanted_makes_nothing() -> None:
    group = RunCgroup.create(None, None)
    assert group.dirs == [] and not group.pids_limited and not group.memory_limited
