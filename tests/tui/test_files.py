"""The TUI's files: input history and Markdown export (no app needed)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from agentkit import Session
from agentkit.tui.export import export_markdown, fence, session_markdown
from agentkit.tui.history import MAX_ENTRIES, InputHistory


def test_history_keeps_order_skips_repeats_and_caps_its_length(tmp_path: Path) -> None:
    path = tmp_path / "data" / "history.json"  # the data folder does not exist yet on a first run
    history = InputHistory(path)
    for text in ("a", "a", "b\nc", " ", "a"):
        history.add(text)
    assert json.loads(path.read_text()) == ["a", "b\nc", "a"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # what the person typed is theirs alone
    for i in range(MAX_ENTRIES + 5):
        history.add(str(i))
    saved = json.loads(path.read_text())
    assert len(saved) == MAX_ENTRIES and saved[-1] == str(MAX_ENTRIES + 4)


def test_two_chats_open_at_once_both_keep_what_they_sent(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    first, second = InputHistory(path), InputHistory(path)
    first.add("from the first window")
    second.add("from the second window")
    assert json.loads(path.read_text()) == ["from the first window", "from the second window"]
    assert second.previous("") == "from the second window"
    assert second.previous("") == "from the first window"


def test_a_history_file_of_the_wrong_shape_is_reported_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_text('{"not": "a list"}')
    history = InputHistory(path)
    assert history.problem is not None and "not a list of strings" in history.problem
    history.add("kept in memory")
    assert path.read_text() == '{"not": "a list"}'
    assert history.previous("") == "kept in memory"


@given(st.text())
def test_a_fenced_block_holds_exactly_its_text(text: str) -> None:
    tokens = [t for t in MarkdownIt().parse(fence(text, "json")) if t.type == "fence"]
    assert len(tokens) == 1
    assert tokens[0].content == (text + "\n").replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")


def test_export_is_readable_markdown_with_the_permissions_of_a_normal_file(tmp_path: Path) -> None:
    session = Session(
        id="s1",
        title="Fix the build",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Why does it fail?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "c1", "function": {"name": "run_python", "arguments": {"code": "print(1)"}}}],
            },
            {"role": "tool", "tool_call_id": "c1", "name": "run_python", "content": {"error": "denied by the user"}},
            {"role": "assistant", "content": "A ```` fence inside."},
        ],
        thinking=[{"turn": 0, "text": "Look at the log."}],
    )
    text = session_markdown(session)
    assert text.startswith("# Fix the build\n")
    assert "Be brief." not in text  # the system prompt is configuration, not conversation
    assert text.index("## You") < text.index("<details><summary>Thinking") < text.index("**Tool call** `run_python`")
    assert '"code": "print(1)"' in text and "**Tool error** (run_python)" in text and "denied by the user" in text
    old = os.umask(0o022)
    try:
        path = export_markdown(session, str(tmp_path))
    finally:
        os.umask(old)
    assert path == tmp_path / "fix-the-build-s1.md"
    assert path.read_text() == text
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
