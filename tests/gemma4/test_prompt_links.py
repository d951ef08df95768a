"""``a + b`` links prompts instead of copying their segments; what it gives must equal the plain merge."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.gemma4 import Prompt, Segment, sanitize

pieces = st.sampled_from(["<", "|", ">", "<|", "|>", "<turn|>", "a", "b ", "\n"])
texts = st.lists(pieces, max_size=4).map("".join)
segments = st.one_of(
    st.builds(Segment, texts, st.booleans()),
    # the model's own output, carrying its token ids: merges only with its own kind
    st.builds(lambda t, ids: Segment(t or "x", True, tuple(ids)), texts, st.lists(st.integers(0, 9), min_size=1)),
)
prompts = st.lists(segments, max_size=4).map(Prompt)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(prompts, st.booleans()), max_size=40))
def test_a_chain_of_additions_equals_one_merge(parts: list[tuple[Prompt, bool]]) -> None:
    total = Prompt()
    for part, read_text in parts:
        total = total + part
        if read_text:  # the loop reads .text between additions; the cached text must stay right
            total.text  # noqa: B018
    expected = Prompt(seg for part, _ in parts for seg in part.segments)
    assert total.segments == expected.segments
    assert total == expected and hash(total) == hash(expected)
    assert total.text == "".join(s.text if s.trusted else sanitize(s.text) for s in expected.segments)
    assert total.raw_text == expected.raw_text
    assert list(total) == list(expected.segments)
    assert [s.ids for s in total.segments] == [s.ids for s in expected.segments]


def test_a_long_chain_is_flattened_as_it_grows() -> None:
    total = Prompt.trusted("<bos>")
    for i in range(1000):
        total = total + Prompt.untrusted(f"text {i}") + "<turn|>"
        total.text  # noqa: B018
        assert total._depth <= 17  # a bounded number of links (each may hold a copy of the text)
    assert total.segments[1] == Segment("text 0", False)
    assert len(total.segments) == 2001
