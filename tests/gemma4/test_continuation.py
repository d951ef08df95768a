"""Continuing a prompt without rendering it again (gemma4.continuation): the pieces the loop appends."""

from __future__ import annotations

from agentkit.gemma4 import MALFORMED_CALL_HINT, Prompt, hand_over, parse_response, render, turn_suffix

CALL = "<|tool_call>call:f{}<tool_call|>"


def test_hand_over_ends_with_the_tool_response_marker_once() -> None:
    assert hand_over(CALL + "<|tool_response>").text == CALL + "<|tool_response>"
    assert hand_over(CALL).text == CALL + "<|tool_response>"
    assert hand_over(CALL + "<turn|>").text == CALL + "<|tool_response>"  # a closer the model wrote is dropped


def test_hand_over_keeps_the_generated_ids_minus_the_stop_marker_that_ended_generation() -> None:
    ids = (5, 6, 7, 99)
    prompt = hand_over(CALL + "<turn|>", ids, "<turn|>")
    assert prompt.raw_text == CALL + "<|tool_response>"
    assert prompt == Prompt.tokens(CALL, ids[:-1]) + Prompt.trusted("<|tool_response>")
    # When generation stopped elsewhere, the ids cannot be trusted to match the trimmed text: none are kept.
    assert hand_over(CALL + "<turn|>", ids, None) == Prompt.trusted(CALL + "<|tool_response>")


def test_turn_suffix_continues_an_earlier_rendering_byte_for_byte() -> None:
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    new = [{"role": "user", "content": "c <turn|>"}]
    whole = render([*history, *new], enable_thinking=True)
    assert (
        render(history, enable_thinking=True, add_generation_prompt=False) + turn_suffix(new, True)
    ).text == whole.text
    assert turn_suffix(new, None).text.endswith("<turn|>\n")


def test_the_malformed_call_hint_spells_the_call_syntax() -> None:
    assert MALFORMED_CALL_HINT == "Write the call again as <|tool_call>call:NAME{...}<tool_call|>."


OPEN_THOUGHT = "<|channel>thought\nI will look it up." + CALL + "<|tool_response>"


def test_hand_over_closes_a_thought_that_a_call_ended() -> None:
    # Real Gemma 4 output writes <|tool_call> before <channel|> (reported against Ollama's parser, whose
    # thinking state swallowed the call). The parser ends the thought there; the prompt must show it closed,
    # as the reference template renders the same turn, or the model continues inside the open thought.
    closed = "<|channel>thought\nI will look it up.<channel|>" + CALL + "<|tool_response>"
    assert hand_over(OPEN_THOUGHT).text == closed
    assert hand_over(OPEN_THOUGHT[: -len("<|tool_response>")] + "<turn|>").text == closed
    before, after = parse_response(OPEN_THOUGHT), parse_response(closed)
    assert (before.thinking, before.tool_calls) == (after.thinking, after.tool_calls)
    # The generated ids cannot be split at the inserted token: the text is used instead.
    assert hand_over(OPEN_THOUGHT, (1, 2, 3), "<|tool_response>") == Prompt.trusted(closed)


def test_hand_over_leaves_well_formed_channels_alone() -> None:
    for raw in (
        "<|channel>thought\nplan<channel|>" + CALL,
        "text " + CALL,
        CALL + "<|channel>thought\nafter",  # a channel opened after the call does not reach back
        "<|channel>thought\na<channel|>b<|channel>thought\nc<channel|>" + CALL,
    ):
        assert hand_over(raw).text == raw + "<|tool_response>"
    ids = (5, 6, 7)
    kept = hand_over("<|channel>thought\nplan<channel|>" + CALL, ids)
    assert kept == Prompt.tokens("<|channel>thought\nplan<channel|>" + CALL, ids) + Prompt.trusted("<|tool_response>")
