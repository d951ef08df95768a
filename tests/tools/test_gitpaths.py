"""Reading the work-tree paths a git config names (hooks, includes) and where a ``.git`` file points."""

from __future__ import annotations

from pathlib import Path

from agentkit.tools._gitpaths import gitdir_target, referenced_paths


def test_config_forms_people_write(tmp_path: Path) -> None:
    git = tmp_path / ".git"
    git.mkdir()
    (git / "config").write_text(
        "# comment\n[core]\n\trepositoryformatversion = 0\n"
        '\thooksPath = "tools/git hooks" ; quoted, with a comment\n'
        '[includeIf "gitdir:~/work/"]\n\tpath = ../conf/work.inc\n'
        "[include] path = /etc/abs.inc\n"
        "[include]\n\tpath = ~/home.inc\n"
        "[alias]\n\tpath = not-an-include\n"
        '[CORE]\n\tHOOKSPATH = other\\"s\n'
    )
    assert referenced_paths(git / "config", tmp_path) == [
        (tmp_path / "tools/git hooks", "core.hooksPath"),
        (tmp_path / "conf/work.inc", "includeif.path"),
        (Path("/etc/abs.inc"), "include.path"),
        (tmp_path / 'other"s', "core.hooksPath"),
    ]


def test_gitdir_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".git").write_text("gitdir: ../.git/modules/sub\n")
    assert gitdir_target(tmp_path / "sub" / ".git") == tmp_path / ".git" / "modules" / "sub"
    (tmp_path / "other").write_text("not a gitdir file\n")
    assert gitdir_target(tmp_path / "other") is None
    assert referenced_paths(tmp_path / "missing", tmp_path) == []


def test_file_tools_refuse_a_config_file_the_repository_includes(tmp_path: Path) -> None:
    # The same references protect the file tools: write_file into an included config is a host config write.
    import pytest

    from agentkit.errors import ToolError
    from agentkit.tools import Workspace

    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[include]\n\tpath = ../team.gitconfig\n")
    (tmp_path / "team.gitconfig").write_text("[user]\n\tname = team\n")
    with pytest.raises(ToolError, match=r"include\.path"):
        Workspace(tmp_path).write_file("team.gitconfig", "[core]\n\tfsmonitor = touch /tmp/pwned\n")
    assert (tmp_path / "team.gitconfig").read_text() == "[user]\n\tname = team\n"
