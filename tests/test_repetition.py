"""Answer shapes the loop reports: a repetition loop at the token limit (cut from the kept answer), no answer."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit import Agent
from agentkit.agent.repetition import MIN_REPEATS, find_repetition
from agentkit.events import Notice, RunFinished, RunResult
from agentkit.testing import ScriptedBackend


@pytest.mark.parametrize(
    ("text", "kept", "unit"),
    [
        ("The waves roll in.\n" + "the " * 60, "The waves roll in.\nthe", "the "),
        ("Hello.\n" + "The answer is 4.\n" * 20 + "The ans", "Hello.\nThe answer is 4.", ".\nThe answer is 4"),
        ("x" * 500, "x", "x"),
        ("Intro. " + "sapphire sapphire " * 30 + "sapph", "Intro. sapphire", None),
    ],
)
def test_a_looping_tail_is_found_and_cut_to_one_copy(text: str, kept: str, unit: str | None) -> None:
    loop = find_repetition(text)
    assert loop is not None and loop.kept(text) == kept and loop.copies >= MIN_REPEATS
    if unit is not None:
        assert loop.unit == unit


@pytest.mark.parametrize(
    "text",
    [
        "A plain answer that stops because the limit came.",
        "| a | b |\n|---|---|\n| 0 | 0 |\n| 0 | 0 |\n| 0 | 0 |\n",  # a few equal rows are content
        "Hello " + " " * 300,  # trailing blanks are not a loop
        "",
    ],
)
def test_ordinary_text_is_no_loop(text: str) -> None:
    assert find_repetition(text) is None


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40), st.text(min_size=1, max_size=12).filter(str.strip), st.integers(0, 40))
def test_any_piece_repeated_to_the_end_is_found(head: str, unit: str, extra: int) -> None:
    copies = max(MIN_REPEATS, 64 // len(unit) + 1) + extra
    text = head + unit * copies
    loop = find_repetition(text)
    assert loop is not None
    assert loop.start <= len(head)  # the whole repetition, perhaps from earlier when the head ends like the piece
    assert text.startswith(loop.kept(text)[: loop.start])


def _run(agent: Agent, prompt: str) -> tuple[RunResult, list[str]]:
    async def collect() -> list[object]:
        return [e async for e in agent.run_stream(prompt)]

    events = asyncio.run(collect())
    result = next(e for e in events if isinstance(e, RunFinished)).result
    return result, [e.message for e in events if isinstance(e, Notice)]


def test_the_loop_says_why_it_stopped_and_keeps_the_loop_out_of_history() -> None:
    backend = ScriptedBackend(["The waves roll in.\n" + "the " * 400 + "<turn|>", "Fine.<turn|>"])
    agent = Agent(backend, sampling={"max_tokens": 100})
    result, notes = _run(agent, "write")
    assert result.stop_reason == "max_tokens"
    assert result.output == "The waves roll in.\nthe"
    assert result.messages[-1] == {"role": "assistant", "content": "The waves roll in.\nthe"}
    assert any("repeating 'the'" in n and "token limit" in n for n in notes), notes
    agent.run("again")
    assert "the the" not in backend.prompts[-1]


def test_a_loop_cut_off_in_a_tool_round_is_cut_too() -> None:
    call = '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|>'
    backend = ScriptedBackend(["I will check. " * 60 + call + "<|tool_response>"])

    def get_weather(city: str) -> str:
        """Weather of a city."""
        return "sunny"

    result, notes = _run(Agent(backend, tools=[get_weather], sampling={"max_tokens": 100}), "go")
    assert result.stop_reason == "max_tokens" and result.output == "I will check."
    assert any("repeating" in n for n in notes)


def test_an_answer_the_model_ended_itself_is_kept_whole() -> None:
    text = "Repeat after me: " + "la " * 100
    result, notes = _run(Agent(ScriptedBackend([text + "<turn|>"])), "sing")
    assert result.stop_reason == "completed" and result.output == text.strip()
    assert not any("repeating" in n for n in notes)


@pytest.mark.parametrize(
    ("outputs", "why", "stop"),
    [
        (
            ['<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_response>', "  \n<turn|>"],
            "after the",
            "completed",
        ),
        (["<|channel>thought\nThe answer is 4.<channel|><turn|>"], "only thinking", "completed"),  # mlx-lm #1361
        (["<unused49>\n" * 40], "without a visible answer", "max_tokens"),  # ollama #17459: until num_predict
    ],
)
def test_a_turn_that_ends_blank_says_so(outputs: list[str], why: str, stop: str) -> None:
    def get_weather(city: str) -> str:
        """Weather of a city."""
        return "sunny"

    result, notes = _run(Agent(ScriptedBackend(outputs), tools=[get_weather]), "go")
    assert result.output == "" and result.stop_reason == stop
    assert any("without a visible answer" in n and why in n for n in notes), notes
