"""Gemma 4 control tokens: each string below is one token in the Gemma 4 tokenizer."""

from __future__ import annotations

from typing import Final

BOS: Final = "<bos>"
EOS: Final = "<eos>"
TURN_START: Final = "<|turn>"
TURN_END: Final = "<turn|>"
THINK: Final = "<|think|>"
CHANNEL_START: Final = "<|channel>"
CHANNEL_END: Final = "<channel|>"
TOOL_START: Final = "<|tool>"
TOOL_END: Final = "<tool|>"
TOOL_CALL_START: Final = "<|tool_call>"
TOOL_CALL_END: Final = "<tool_call|>"
TOOL_RESPONSE_START: Final = "<|tool_response>"
TOOL_RESPONSE_END: Final = "<tool_response|>"
STRING_DELIM: Final = '<|"|>'
IMAGE: Final = "<|image|>"
AUDIO: Final = "<|audio|>"
VIDEO: Final = "<|video|>"

#: Every control token agentkit writes or reads, longest first (so prefix matching is unambiguous).
CONTROL_TOKENS: Final[tuple[str, ...]] = tuple(
    sorted(
        {
            BOS,
            EOS,
            TURN_START,
            TURN_END,
            THINK,
            CHANNEL_START,
            CHANNEL_END,
            TOOL_START,
            TOOL_END,
            TOOL_CALL_START,
            TOOL_CALL_END,
            TOOL_RESPONSE_START,
            TOOL_RESPONSE_END,
            STRING_DELIM,
            IMAGE,
            AUDIO,
            VIDEO,
        },
        key=lambda t: (-len(t), t),
    )
)

#: Generation must stop on these: end of turn, end of sequence, and the hand-over to the tool runtime.
STOP_MARKERS: Final[tuple[str, ...]] = (TURN_END, EOS, TOOL_RESPONSE_START)

#: Every proper prefix of every control token: streamed text ending in one waits for the next chunk.
TOKEN_PREFIXES: Final = frozenset(t[:k] for t in CONTROL_TOKENS for k in range(1, len(t)))
LONGEST_TOKEN: Final = max(len(t) for t in CONTROL_TOKENS)

#: The end of the output: nothing after one of these is the model's.
END_OF_OUTPUT: Final = (TURN_END, EOS, TURN_START)
#: What ends the text of a call. A channel token too: "<|tool_call>call:f{…}<channel|>answer" (a call written in
#: the thought, then the thought closed without <tool_call|>) is the call, then the answer.
CALL_TERMINATORS: Final = (
    TOOL_CALL_END,
    TOOL_CALL_START,
    TOOL_RESPONSE_START,
    CHANNEL_END,
    CHANNEL_START,
    *END_OF_OUTPUT,
)


def token_at(buf: str, i: int, tokens: tuple[str, ...]) -> str | None:
    """The one of ``tokens`` that starts at ``buf[i]``, if any."""
    for tok in tokens:
        if buf.startswith(tok, i):
            return tok
    return None
