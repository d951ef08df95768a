"""Spot an answer that ended in a degenerate repetition loop, so the loop can say so and keep it out of history.

Gemma 4 sometimes collapses into repeating one token, word or line until the token limit (google-deepmind/gemma
#622, unsloth #5124, node-llama-cpp #627). The stop reason is then ``max_tokens``, which is true but does not say
why; and the repeated tail, kept as the answer, is sent back in every later turn, where it invites more of the
same. Only an output that ran into the limit is looked at: one the model ended itself is its answer, however
repetitive.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Repetition", "find_repetition"]

MAX_UNIT = 1000  # the longest repeated piece looked for (a paragraph)
MIN_SPAN = 64  # characters the repetition must cover
MIN_REPEATS = 8  # and copies of the piece: a loop runs on to the limit; a few equal rows or lines are content


@dataclass(frozen=True, slots=True)
class Repetition:
    """The text ends with ``unit`` written again and again from ``start`` on (the last copy may be cut off)."""

    start: int
    unit: str
    copies: int

    def kept(self, text: str) -> str:
        """``text`` with the repetition cut to its first copy (up to a word's end): what it meant before it looped."""
        end = self.start + len(self.unit)
        if not text[end - 1].isspace():  # the copy may end mid-word: go on to the word's end
            for i in range(end, min(len(text), end + len(self.unit))):
                if text[i].isspace():
                    end = i
                    break
        return text[:end].rstrip()

    def describe(self) -> str:
        """What the loop's notice shows of the piece: short, on one line."""
        unit = " ".join(self.unit.split())
        return repr(unit if len(unit) <= 40 else unit[:37] + "...")


def find_repetition(text: str) -> Repetition | None:
    """The longest periodic tail of ``text`` (at least ``MIN_REPEATS`` copies and ``MIN_SPAN`` characters), if any.

    For each piece length the tail is compared with itself shifted by that length, a block at a time, so the work
    is about the tail's length times the log of ``MAX_UNIT``.
    """
    n = len(text)
    best: Repetition | None = None
    for size in range(1, min(MAX_UNIT, n // MIN_REPEATS) + 1):
        end = n - size  # text[k] == text[k + size] for every k in [end - same, end)
        if text[end - 1] != text[n - 1]:
            continue
        same = 0
        while same + size <= end and text[end - same - size : end - same] == text[n - same - size : n - same]:
            same += size
        while same < end and text[end - same - 1] == text[n - same - 1]:
            same += 1
        span = same + size
        if span < max(MIN_SPAN, MIN_REPEATS * size) or (best is not None and n - span >= best.start):
            continue
        unit = text[n - span : n - span + size]
        if unit.strip():
            best = Repetition(n - span, unit, span // size)
    return best
