"""The renderer's shortcuts (the cached declarations block, text neutralized as runs close, shared marker
segments, the plain-answer path) must give exactly what the segments say, for any text."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.gemma4 import render, sanitize

# Text that likes to form control tokens with its neighbours.
pieces = st.sampled_from(["<", "|", ">", "<|", "|>", '<|"|>', "<turn|>", "<|tool_call>", "a", " ", "\n", "＜｜"])
texts = st.lists(pieces, max_size=8).map("".join)


def _tool(name: str, description: str, param: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": {param: {"type": "string", "description": description}}},
        },
    }


messages_st = st.lists(
    st.one_of(
        st.builds(lambda t: {"role": "user", "content": t}, texts),
        st.builds(lambda t: {"role": "assistant", "content": t}, texts),
        st.builds(lambda t: {"role": "system", "content": t}, texts),
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(messages_st, st.lists(st.tuples(texts, texts), max_size=3), st.booleans())
def test_text_is_the_segments_neutralized_and_a_second_render_is_the_same(
    messages: list[dict[str, Any]], tools: list[tuple[str, str]], thinking: bool
) -> None:
    declared = [_tool(f"t{i}", d, p or "p") for i, (d, p) in enumerate(tools)]
    first = render(messages, declared, enable_thinking=thinking)
    expected = "".join(s.text if s.trusted else sanitize(s.text) for s in first.segments)
    assert first.text == expected
    assert all(s.text for s in first.segments)
    assert all(a.trusted != b.trusted for a, b in zip(first.segments, first.segments[1:], strict=False))
    second = render(messages, declared, enable_thinking=thinking)  # declarations now from the cache
    assert second.segments == first.segments and second.text == first.text
