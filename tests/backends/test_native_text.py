"""The one chat-to-native writer: what Ollama's and vLLM's chat streams become, and that both say it alike."""

from __future__ import annotations

import itertools
import json
from typing import Any

import ollama
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit import gemma4
from agentkit.backends._native_text import NativeTextWriter
from agentkit.backends.ollama._backend import _native as ollama_native
from agentkit.backends.vllm._wire import native_delta
from agentkit.gemma4.tokens import TOOL_RESPONSE_START, TURN_END

CALL = '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|>'


def test_thinking_then_content_closes_the_thought_and_ends_the_turn() -> None:
    w = NativeTextWriter()
    text = w.thinking("Let me ") + w.thinking("think.") + w.content("Hi") + w.content("!")
    tail, stop = w.finish(out_of_tokens=False)
    assert text + tail == "<|channel>thought\nLet me think.<channel|>Hi!" + TURN_END
    assert stop == TURN_END


def test_a_whole_call_is_written_at_once_and_hands_over() -> None:
    w = NativeTextWriter()
    text = w.thinking("Weather?") + w.tool_call("get_weather", {"city": "Paris"})
    assert text == "<|channel>thought\nWeather?<channel|>" + CALL
    assert w.finish(out_of_tokens=False) == (TOOL_RESPONSE_START, TOOL_RESPONSE_START)


def test_call_fragments_are_joined_per_index_and_written_at_the_end_in_order() -> None:
    w = NativeTextWriter()
    pieces = [
        w.tool_call_delta(1, "add", '{"a": '),
        w.tool_call_delta(0, "get_", ""),
        w.tool_call_delta(0, "weather", '{"city": "Par'),
        w.tool_call_delta(1, "", "1}"),
        w.tool_call_delta(0, "", 'is"}'),
    ]
    assert "".join(pieces) == "" and w.calls == 2
    tail, stop = w.finish(out_of_tokens=False)
    assert tail == CALL + "<|tool_call>call:add{a:1}<tool_call|>" + TOOL_RESPONSE_START
    assert stop == TOOL_RESPONSE_START


def test_a_budget_that_ran_out_has_no_stop_marker_even_after_a_call() -> None:
    w = NativeTextWriter()
    w.tool_call_delta(0, "get_weather", '{"city": "Paris"}')
    assert w.finish(out_of_tokens=True) == (CALL, None)
    w = NativeTextWriter()
    assert w.thinking("still thinking") == "<|channel>thought\nstill thinking"
    assert w.finish(out_of_tokens=True) == ("<channel|>", None)


def test_calls_the_format_cannot_carry_are_passed_on_not_dropped() -> None:
    # The loop's parser reports these to the model; inventing or dropping a call would hide the mistake.
    w = NativeTextWriter()
    assert w.tool_call("bad name", {"x": 1}) == "<|tool_call>call:bad name{x:1}<tool_call|>"
    w.tool_call_delta(0, "get_weather", '{"city": ')  # cut JSON
    w.tool_call_delta(1, "f", "[1, 2]")  # not an object
    tail, _ = w.finish(out_of_tokens=False)
    assert (
        tail == '<|tool_call>call:get_weather{"city": <tool_call|><|tool_call>call:f[1, 2]<tool_call|><|tool_response>'
    )


def test_index_less_fragments_are_calls_of_their_own() -> None:
    w = NativeTextWriter()
    w.tool_call_delta(None, "a", "{}")
    w.tool_call_delta(None, "b", "{}")
    assert w.finish(out_of_tokens=False)[0] == "<|tool_call>call:a{}<tool_call|><|tool_call>call:b{}<tool_call|>" + (
        TOOL_RESPONSE_START
    )


# -- one writer, two engines: the same answer reads the same from Ollama's chunks and vLLM's deltas ---------------

_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="<|>\r"), min_size=1, max_size=30)
_NAME = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
_ARGS = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
    st.one_of(st.integers(-1000, 1000), st.booleans(), _TEXT, st.lists(st.integers(0, 9), max_size=3)),
    max_size=3,
)


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


def _ollama_text(thinking: list[str], content: list[str], calls: list[tuple[str, dict[str, Any]]]) -> str:
    w = NativeTextWriter()
    chunks = [ollama.ChatResponse(message=ollama.Message(role="assistant", thinking=t)) for t in thinking]
    chunks += [ollama.ChatResponse(message=ollama.Message(role="assistant", content=c)) for c in content]
    if calls:
        tool_calls = [ollama.Message.ToolCall(function={"name": n, "arguments": a}) for n, a in calls]
        chunks.append(ollama.ChatResponse(message=ollama.Message(role="assistant", tool_calls=tool_calls)))
    text = "".join(ollama_native(w, c) for c in chunks)
    return text + w.finish(out_of_tokens=False)[0]


def _vllm_text(
    thinking: list[str], content: list[str], calls: list[tuple[str, dict[str, Any]]], cuts: list[int]
) -> str:
    w = NativeTextWriter()
    deltas: list[dict[str, Any]] = [{"reasoning": t} for t in thinking] + [{"content": c} for c in content]
    for index, (name, arguments) in enumerate(calls):
        encoded = json.dumps(arguments)
        deltas.append({"tool_calls": [{"index": index, "function": {"name": name, "arguments": ""}}]})
        deltas += [{"tool_calls": [{"index": index, "function": {"arguments": p}}]} for p in _split(encoded, cuts)]
    text = "".join(native_delta(w, d) for d in deltas)
    return text + w.finish(out_of_tokens=False)[0]


@settings(max_examples=60, deadline=None)
@given(
    thinking=st.one_of(st.just(""), _TEXT),
    content=st.one_of(st.just(""), _TEXT),
    calls=st.lists(st.tuples(_NAME, _ARGS), max_size=3),
    cuts=st.lists(st.integers(0, 200), max_size=6),
)
def test_both_engines_streams_write_the_same_native_text_that_parses_back(
    thinking: str, content: str, calls: list[tuple[str, dict[str, Any]]], cuts: list[int]
) -> None:
    ours = _ollama_text(_split(thinking, cuts), _split(content, cuts), calls)
    assert ours == _vllm_text(_split(thinking, cuts[::-1]), _split(content, cuts[::-1]), calls, cuts)
    parsed = gemma4.parse_response(ours)
    assert parsed.errors == []
    assert (parsed.thinking or "") == thinking.strip()
    assert parsed.content == content.strip()
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == calls
    assert ours.endswith(TOOL_RESPONSE_START if calls else TURN_END)
