"""The renderer's shortcuts (the cached declarations block, text neutralized as runs close, shared marker
segments, the plain-answer path) must give exactly what the segments say, for any text."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.gemma4 import Declarations, render, sanitize

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


_call = st.builds(
    lambda name, value, cid: {"id": cid, "type": "function", "function": {"name": name, "arguments": {"a": value}}},
    st.sampled_from(["f", "g"]),
    texts,
    st.sampled_from(["c1", "c2", None]),
)
any_message = st.one_of(
    st.builds(lambda t: {"role": "user", "content": t}, texts),
    st.builds(lambda t: {"role": "user", "content": [{"type": "text", "text": t}, {"type": "image"}]}, texts),
    st.builds(lambda t: {"role": "assistant", "content": t}, texts),
    st.builds(lambda t: {"role": "assistant", "content": [{"type": "text", "text": t}]}, texts),
    st.builds(lambda t: {"role": "assistant", "content": f"<|channel>thought\n{t}<channel|>{t}"}, texts),
    st.builds(
        lambda t, calls, th: {"role": "assistant", "content": t, "tool_calls": calls, "reasoning_content": th},
        texts,
        st.lists(_call, min_size=1, max_size=2),
        texts,
    ),
    st.builds(lambda t, cid: {"role": "tool", "tool_call_id": cid, "name": "f", "content": t}, texts, st.just("c1")),
    st.builds(lambda t: {"role": "system", "content": t}, texts),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(any_message, max_size=8), st.booleans(), st.booleans(), st.booleans())
def test_the_plain_turns_loop_writes_what_the_general_path_writes(
    messages: list[dict[str, Any]], tools: bool, thinking: bool, bos: bool
) -> None:
    """Runs of plain turns go through one loop; turned off, the general path must give the same segments."""
    import importlib
    from unittest import mock

    render_module = importlib.import_module("agentkit.gemma4.render")  # the package's `render` is the function
    declared = [_tool("f", "a tool", "a")] if tools else None
    fast = render(messages, declared, enable_thinking=thinking, bos=bos)
    with mock.patch.object(render_module, "_plain_turns", lambda out, messages, roles, i: i):
        general = render(messages, declared, enable_thinking=thinking, bos=bos)
    assert fast.segments == general.segments and fast.text == general.text


@settings(max_examples=100, deadline=None)
@given(messages_st, st.lists(st.tuples(texts, texts), max_size=3), st.booleans())
def test_declarations_rendered_once_render_as_the_tools_do(
    messages: list[dict[str, Any]], tools: list[tuple[str, str]], thinking: bool
) -> None:
    declared = [_tool(f"t{i}", d, p or "p") for i, (d, p) in enumerate(tools)]
    block = Declarations(declared)
    assert len(block) == len(declared)
    by_list = render(messages, declared, enable_thinking=thinking)
    by_block = render(messages, block, enable_thinking=thinking)
    assert by_block.segments == by_list.segments and by_block.text == by_list.text
