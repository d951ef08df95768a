"""A rendered prompt that remembers which text is trusted.

A prompt is a sequence of segments. *Trusted* segments are written by agentkit (turn markers, declarations,
call syntax) or by the model itself; they may contain control tokens. *Untrusted* segments hold text that
came from outside (user messages, tool results, file contents, web pages); they must never turn into
control tokens.

Two ways to send it:
- as text (``prompt.text``): untrusted segments are neutralized with :func:`agentkit.gemma4.sanitize.sanitize`;
- as token ids (``prompt.token_ids(tokenizer)``): trusted segments are tokenized with special-token parsing on,
  untrusted ones with it off (:func:`agentkit.gemma4.encode.encode_untrusted`: never by flipping the shared
  tokenizer's switch, so threads sharing one tokenizer cannot see each other's setting), so the literal text
  survives exactly and still cannot become a control token.

A trusted segment may also carry the token ids it stands for (:meth:`Prompt.tokens`): the model's own output,
as the ids it generated. Tokenizing that text again can split it differently from how the model wrote it
(nothing forces a model to pick the canonical split), and then the next prompt is no longer a token-for-token
extension of what the engine holds in its KV cache. Such a segment keeps its ids and is never merged with
its neighbours, so its boundaries are token boundaries.

Prompts only grow by appending within a model turn (see the protocol doc), so ``+`` is the common operation.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .encode import SupportsEncode, encode_trusted, encode_untrusted
from .sanitize import sanitize

__all__ = ["Prompt", "Segment", "SupportsEncode"]


@dataclass(frozen=True, slots=True)
class Segment:
    """One run of prompt text; ``trusted`` says whether control tokens in it are meant as tokens."""

    text: str
    trusted: bool
    ids: tuple[int, ...] | None = None  # the token ids this text stands for, when they are known exactly

    def __post_init__(self) -> None:
        if self.ids is not None and not self.trusted:
            # Ids are sent as they are: only text agentkit or the model wrote may carry them.
            raise ValueError("only trusted segments may carry token ids")


class Prompt:
    """An immutable list of segments; adjacent segments of the same trust are merged."""

    __slots__ = ("_segments", "_text")

    def __init__(self, segments: Iterable[Segment] = ()) -> None:
        # Group runs of equal trust and join each run once: linear, however many pieces come in. Segments with
        # ids join only each other (their ids concatenate), never text that still has to be tokenized.
        merged: list[Segment] = []
        for (trusted, has_ids), group in itertools.groupby(
            (s for s in segments if s.text), key=lambda s: (s.trusted, s.ids is not None)
        ):
            run = list(group)
            if len(run) == 1:
                merged.append(run[0])
            else:
                ids = tuple(i for s in run for i in s.ids or ()) if has_ids else None
                merged.append(Segment("".join(s.text for s in run), trusted, ids))
        self._segments: tuple[Segment, ...] = tuple(merged)
        self._text: str | None = None

    @classmethod
    def _merged(cls, segments: tuple[Segment, ...], text: str | None = None) -> Prompt:
        """Build from segments already merged and non-empty (the renderer's output): skips the re-merge."""
        prompt = cls.__new__(cls)
        prompt._segments = segments
        prompt._text = text
        return prompt

    @classmethod
    def trusted(cls, text: str) -> Prompt:
        return cls._merged((Segment(text, True),), text) if text else cls()

    @classmethod
    def untrusted(cls, text: str) -> Prompt:
        return cls._merged((Segment(text, False),)) if text else cls()

    @classmethod
    def tokens(cls, text: str, ids: Iterable[int]) -> Prompt:
        """Trusted ``text`` that is sent as exactly ``ids`` (the model's output as it generated it).

        The caller vouches that ``ids`` decode to ``text`` with the tokenizer the prompt will be encoded with.
        """
        ids = tuple(ids)
        if bool(text) != bool(ids):
            raise ValueError("a token segment needs both its text and its ids, or neither")
        return cls((Segment(text, True, ids),))

    @property
    def segments(self) -> tuple[Segment, ...]:
        return self._segments

    @property
    def text(self) -> str:
        """The prompt as one string, untrusted text neutralized; safe to send to a text-prompt endpoint."""
        if self._text is None:
            self._text = "".join(s.text if s.trusted else sanitize(s.text) for s in self._segments)
        return self._text

    @property
    def raw_text(self) -> str:
        """The prompt with untrusted text as it was. Only for display and token-id backends, never for sending."""
        return "".join(s.text for s in self._segments)

    def token_ids(self, tokenizer: SupportsEncode) -> list[int]:
        """Token ids with special-token parsing off for untrusted segments (immune to injection by construction)."""
        ids: list[int] = []
        for seg in self._segments:
            if seg.ids is not None:
                ids.extend(seg.ids)
            elif seg.trusted:
                ids.extend(encode_trusted(tokenizer, seg.text))
            else:
                ids.extend(encode_untrusted(tokenizer, seg.text))
        return ids

    def __add__(self, other: Prompt | str) -> Prompt:
        if isinstance(other, str):
            other = Prompt.trusted(other)
        if not other._segments:
            return self
        if not self._segments:
            return other
        last, first = self._segments[-1], other._segments[0]
        if last.trusted != first.trusted or (last.ids is None) != (first.ids is None):
            # Appending is the agent loop's hot path: reuse the neutralized text computed so far.
            text = self._text + other.text if self._text is not None else None
            return Prompt._merged((*self._segments, *other._segments), text)
        ids = last.ids + first.ids if last.ids is not None and first.ids is not None else None
        joined = Segment(last.text + first.text, last.trusted, ids)
        # Trusted text is sent as it is, so the texts still add up; untrusted runs are neutralized as a whole.
        text = self._text + other.text if last.trusted and self._text is not None else None
        return Prompt._merged((*self._segments[:-1], joined, *other._segments[1:]), text)

    def __iter__(self) -> Iterator[Segment]:
        return iter(self._segments)

    def __len__(self) -> int:
        return len(self.text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prompt) and self._segments == other._segments

    def __hash__(self) -> int:
        return hash(self._segments)

    def __repr__(self) -> str:
        return f"Prompt({self.raw_text!r})"
