"""One rule for outside text on a terminal, shown as escapes (command line) or symbols (terminal assistant)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from agentkit.cli.common import terminal_safe as cli_safe
from agentkit.display import terminal_safe
from agentkit.tui.text import visible

# Everything a terminal may obey or that reorders or breaks a line the layout does not know about.
OBEYED = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufff9-\ufffb]"
)


@given(st.text())
def test_neither_rendering_leaves_anything_a_terminal_obeys(text: str) -> None:
    for shown in (terminal_safe(text), terminal_safe(text, shown_as="symbols")):
        assert not OBEYED.search(shown)
        assert shown.count("\n") == text.count("\n")  # line structure kept (\r\n read as one line break)


@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_both_renderings_change_the_same_characters(text: str) -> None:
    # Same rule: text with nothing to show is left alone by both, text with something is changed by both.
    plain = not OBEYED.search(text)
    assert (terminal_safe(text) == text) == plain
    assert (terminal_safe(text, shown_as="symbols") == text) == plain


def test_the_command_line_and_the_assistant_use_the_one_helper() -> None:
    assert cli_safe is terminal_safe
    assert visible("a\x1bb\u202ec") == terminal_safe("a\x1bb\u202ec", shown_as="symbols") == "a␛b<U+202E>c"


def test_line_separators_and_annotation_marks_are_escaped_on_the_command_line_too() -> None:
    # The command line's own copy missed these (the assistant's had them): U+2028 breaks a line on some
    # terminals, and U+FFF9..U+FFFB hide text between annotation marks.
    assert terminal_safe("a\u2028b\ufff9c\ufffbd") == "a\\u2028b\\ufff9c\\ufffbd"
    assert terminal_safe("one\r\ntwo\rthree") == "one\ntwo\\x0dthree"
