"""The agent's render cache never sends a conversation other than the one it holds.

The agent keeps the rendering of the history and appends each new turn to it. Whatever a program does to
the conversation between runs (replace the last messages at equal length, edit one, drop some, change the
thinking switch), through ``agent.messages = [...]`` or ``agent.conversation = ...``, the prompt sent must be
exactly what rendering the current history from scratch gives. ``agent.messages`` hands out new dicts: editing
them changes nothing until they are assigned back.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit import Agent, tool
from agentkit.gemma4 import render_prompt
from agentkit.testing import ScriptedBackend


@tool
def note(text: str) -> str:
    """Keep a note.

    Args:
        text: what to keep.
    """
    return "kept " + text


CALL = '<|tool_call>call:note{text:<|"|>a<|"|>}<tool_call|><|tool_response>'


def fresh(agent: Agent, prompt: str) -> str:
    """The prompt for ``prompt`` rendered from scratch from the agent's current history."""
    tools = [t.as_openai_tool() for t in agent.tools.values()] or None
    return render_prompt([*agent.messages, {"role": "user", "content": prompt}], tools, enable_thinking=agent.thinking)


def test_replacing_the_last_messages_in_place_at_equal_length_sends_the_new_conversation() -> None:
    backend = ScriptedBackend(["Paris.<turn|>", "They purr.<turn|>"])
    agent = Agent(backend)
    agent.run("What is the capital of France?")
    messages = agent.messages
    messages[-2:] = [
        {"role": "user", "content": "Tell me about cats."},
        {"role": "assistant", "content": "Cats are small."},
    ]
    agent.messages = messages
    expected = fresh(agent, "More?")
    agent.run("More?")
    assert backend.prompts[1] == expected
    assert "France" not in backend.prompts[1] and "Cats are small." in backend.prompts[1]


def test_editing_a_message_in_place_is_seen_by_the_next_run() -> None:
    backend = ScriptedBackend(["Paris.<turn|>", "Ok.<turn|>"])
    agent = Agent(backend)
    agent.run("Capital of France?")
    messages = agent.messages
    messages[-1]["content"] = "Lyon."  # a program correcting the answer it keeps
    agent.messages = messages
    expected = fresh(agent, "Sure?")
    agent.run("Sure?")
    assert backend.prompts[1] == expected and "Lyon." in expected and "Paris." not in expected


_TEXT = st.text(alphabet="abc xyz", min_size=1, max_size=8).filter(str.strip)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("run"), _TEXT, st.booleans()),  # a turn; with or without a tool round
        st.tuples(st.just("replace_tail"), _TEXT, _TEXT),  # the last user+assistant pair swapped in place
        st.tuples(st.just("edit_last"), _TEXT, st.just("")),  # the last message's content edited in place
        st.tuples(st.just("drop_tail"), st.just(""), st.just("")),  # the last two messages removed
        st.tuples(st.just("thinking"), st.just(""), st.just("")),  # the thinking switch flipped
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(ops=_OPS)
def test_every_prompt_is_the_fresh_rendering_whatever_was_done_to_the_history(ops: list[tuple[str, str, Any]]) -> None:
    backend = ScriptedBackend(["Hello.<turn|>", "Hi again.<turn|>"])
    agent = Agent(backend, tools=[note], system="Be brief.")
    try:
        agent.run("hello")  # two turns first, so the cache holds a rendering when the operations start
        agent.run("hi")
        for op, a, b in ops:
            closed = len(agent.messages) >= 3 and agent.messages[-1]["role"] == "assistant"
            if op == "run":
                backend.add(*([CALL] if b else []), f"answer {a}<turn|>")
                n = len(backend.requests)
                expected = fresh(agent, a)
                agent.run(a)
                assert backend.prompts[n] == expected
            elif op == "replace_tail" and closed and not agent.messages[-1].get("tool_calls"):
                agent.messages = [
                    *agent.messages[:-2],
                    {"role": "user", "content": a},
                    {"role": "assistant", "content": b},
                ]
            elif op == "edit_last" and closed:
                messages = agent.messages
                messages[-1]["content"] = a
                agent.messages = messages
            elif op == "drop_tail" and closed:
                agent.conversation = agent.conversation[:-2]
            elif op == "thinking":
                agent.thinking = not agent.thinking
    finally:
        agent.close()


def test_values_equal_in_python_but_rendered_differently_are_told_apart() -> None:
    # 1 == 1.0 == True in Python, yet the model reads 1, 1.0 and true: an equality check would keep a stale prompt.
    backend = ScriptedBackend([CALL, "Done.<turn|>", "Ok.<turn|>", "Ok.<turn|>", "Ok.<turn|>"])
    agent = Agent(backend, tools=[note])
    agent.run("note it")
    messages = agent.messages
    result = next(m for m in messages if m["role"] == "tool")
    for n, value in enumerate([1, 1.0, True], start=1):
        result["content"] = {"n": value}
        agent.messages = messages
        expected = fresh(agent, f"again {n}")
        agent.run(f"again {n}")
        assert backend.prompts[-1] == expected
    assert "n:true" in backend.prompts[-1]


def test_the_cache_is_used_while_the_history_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    import agentkit.gemma4.continuation
    import agentkit.messages

    sizes: list[int] = []
    real = agentkit.messages.render

    def spy(messages: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(messages))
        return real(messages, *args, **kwargs)

    backend = ScriptedBackend(
        [
            "One.<turn|>",
            CALL,
            "Two.<turn|>",
            "Three.<turn|>",
            "Four.<turn|>",
            "Five.<turn|>",
            "Six.<turn|>",
            "Seven.<turn|>",
        ]
    )
    agent = Agent(backend, tools=[note])
    agent.run("first")
    agent.run("second")  # a tool round: five messages of history after it
    # Every rendering the agent makes goes through these two: whole conversations and appended turns.
    monkeypatch.setattr(agentkit.messages, "render", spy)
    monkeypatch.setattr(agentkit.gemma4.continuation, "render", spy)
    agent.run("third")
    # Only new messages were rendered: the turn before (its four messages, rendered once a turn starts from
    # it) and the new user message.
    assert sizes == [4, 1], sizes
    sizes.clear()
    agent.run("fourth")
    assert sizes == [2, 1], sizes
    agent.messages = [dict(m) for m in agent.messages]  # an equal copy (a reloaded session) is a new conversation
    sizes.clear()
    agent.run("fifth")
    assert sizes == [len(agent.messages) - 2, 1], sizes  # rendered once from scratch...
    sizes.clear()
    agent.run("sixth")
    assert sizes == [2, 1], sizes  # ...and cached again from there
    messages = agent.messages
    messages[1]["content"] = "Edited."
    assert agent.messages[1]["content"] != "Edited."  # a copy: nothing changes until it is assigned back
    agent.messages = messages
    sizes.clear()
    agent.run("seventh")
    assert sizes == [len(agent.messages) - 2, 1], sizes  # the edit forced one full rendering


def test_a_finished_turn_is_rendered_only_when_a_turn_starts_from_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A program that restores another conversation before each request never pays for the turn it drops."""
    import agentkit.gemma4.continuation
    import agentkit.messages

    sizes: list[int] = []
    real = agentkit.messages.render

    def spy(messages: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(messages))
        return real(messages, *args, **kwargs)

    backend = ScriptedBackend(["One.<turn|>", CALL, "Two.<turn|>", CALL, "Three.<turn|>"])
    agent = Agent(backend, tools=[note])
    agent.run("first")
    saved = agent.conversation
    monkeypatch.setattr(agentkit.messages, "render", spy)
    monkeypatch.setattr(agentkit.gemma4.continuation, "render", spy)
    for prompt in ("second", "third"):
        agent.conversation = saved  # restored: a new tuple of the same two messages
        sizes.clear()
        agent.run(prompt)
        assert sizes == [2, 1], sizes  # the restored history, the new user message; not the turn just finished
    assert [m["content"] for m in agent.messages if m["role"] == "user"] == ["first", "third"]
    sizes.clear()
    backend.add("Four.<turn|>")
    agent.run("fourth")
    assert sizes == [4, 1], sizes  # continuing: the finished turn is rendered now, once


def test_a_conversation_replaced_during_a_turn_is_rendered_from_scratch_next() -> None:
    backend = ScriptedBackend(["One.<turn|>", CALL, "Two.<turn|>", "Three.<turn|>"])
    agent = Agent(backend, tools=[note])

    def forget(request: Any) -> str:  # the program drops the history while the model is answering
        agent.conversation = ()
        return CALL

    agent.run("first")
    backend._outputs[1] = forget
    agent.run("second")
    assert [m["role"] for m in agent.messages] == ["user", "assistant", "tool", "assistant"]
    expected = fresh(agent, "third")
    agent.run("third")
    assert backend.prompts[-1] == expected and "first" not in expected
