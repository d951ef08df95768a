"""Prompt arithmetic for continuing a conversation without rendering it again.

Within a model turn the next prompt is the previous prompt plus the model's own output plus the tool results
(the protocol doc, "One model turn per request"); across turns a rendering of the history without the
generation prompt is extended by the new turns. These are the pieces a loop appends, so it never has to know
the wire syntax itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .prompt import Prompt
from .render import generation_prompt, render
from .tokens import CHANNEL_END, CHANNEL_START, EOS, TOOL_CALL_END, TOOL_CALL_START, TOOL_RESPONSE_START, TURN_END

__all__ = ["MALFORMED_CALL_HINT", "hand_over", "turn_suffix"]

_TURN_CLOSERS = (TURN_END, EOS)

# Told to the model with a call it wrote that could not be read, so it can write it again.
MALFORMED_CALL_HINT = f"Write the call again as {TOOL_CALL_START}call:NAME{{...}}{TOOL_CALL_END}."


def turn_suffix(messages: Sequence[Mapping[str, Any]], thinking: bool | None) -> Prompt:
    """Whole turns that start with a user message, rendered as they continue an earlier rendering.

    ``thinking`` adds the generation prompt for that switch; ``None`` adds none.
    """
    suffix = render(messages, add_generation_prompt=False, bos=False)
    return suffix if thinking is None else suffix + generation_prompt(thinking)


def hand_over(raw: str, token_ids: Sequence[int] | None = None, stop: str | None = None) -> Prompt:
    """The model's output as it must sit before tool results: ending with the ``<|tool_response>`` hand-over.

    Within a turn the output stays as the model wrote it (thinking included, see the protocol doc), except that a
    thought a ``<|tool_call>`` ended without ``<channel|>`` is closed before that call, as the parser read it.
    ``token_ids`` are the ids the engine generated for ``raw`` (with ``stop``, the marker that ended
    generation, as the last one), when it reported them: they are kept rather than the text tokenized again,
    since a model may split text differently from the tokenizer's canonical split, and only the generated ids
    make the next prompt a token-for-token extension of what the engine's KV cache holds.
    """
    text = raw
    ids = tuple(token_ids) if token_ids is not None else None
    open_at = _call_in_open_thought(text)
    if open_at >= 0:
        # The parser read the thought as ended here (see agentkit.gemma4.parse); the prompt must say so too, as
        # the reference template writes the same turn ("<|channel>thought\n…<channel|><|tool_call>…"), or the
        # model continues after the results inside a thought it never closed and its thinking lands in the
        # answer. The ids cannot be split at a character offset, so the text is tokenized again this once.
        text = text[:open_at] + CHANNEL_END + text[open_at:]
        ids = None
    for closer in _TURN_CLOSERS:
        if text.endswith(closer):
            text = text[: -len(closer)]
            # The ids end with the stop marker's one id only when that marker ended generation.
            ids = ids[:-1] if ids and stop == closer else None
    tail = "" if text.endswith(TOOL_RESPONSE_START) else TOOL_RESPONSE_START
    if not ids:
        return Prompt.trusted(text + tail)
    return Prompt.tokens(text, ids) + Prompt.trusted(tail)


def _call_in_open_thought(text: str) -> int:
    """Where the first ``<|tool_call>`` stands if a thought channel is still open there, else -1."""
    call = text.find(TOOL_CALL_START)
    if call < 0:
        return -1
    opened = text.rfind(CHANNEL_START, 0, call)
    return call if opened >= 0 and text.find(CHANNEL_END, opened, call) < 0 else -1
