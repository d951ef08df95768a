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


_MAX_DEPTH = 16


def _kind(segment: Segment) -> int:
    """What decides whether two neighbouring segments merge: trust, and whether they carry ids."""
    return 0 if not segment.trusted else 1 if segment.ids is None else 2


def _join(a: Segment, b: Segment) -> Segment:
    ids = a.ids + b.ids if a.ids is not None and b.ids is not None else None
    return Segment(a.text + b.text, a.trusted, ids)


class Prompt:
    """An immutable list of segments; adjacent segments of the same trust are merged.

    ``a + b`` only links the two prompts (and joins their texts when known): the loop appends a few pieces
    to a prompt as long as the whole conversation on every step, and copying its segments each time made a
    step O(conversation). The segments are flattened, once, when someone asks for them, and a chain of links
    is flattened when it reaches ``_MAX_DEPTH`` (each link may hold a copy of the text: memory stays bounded).
    """

    __slots__ = ("_depth", "_head", "_pieces", "_segments", "_tail", "_text")

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
        self._set(tuple(merged), None)

    def _set(self, segments: tuple[Segment, ...], text: str | None) -> None:
        self._segments: tuple[Segment, ...] | None = segments
        self._pieces: tuple[Prompt, Prompt] | None = None
        self._text = text
        self._depth = 0  # links below this prompt
        # The kind of the first and last segment (None: empty), all ``+`` needs to know of each side.
        self._head: int | None = _kind(segments[0]) if segments else None
        self._tail: int | None = _kind(segments[-1]) if segments else None

    @classmethod
    def _merged(cls, segments: tuple[Segment, ...], text: str | None = None) -> Prompt:
        """Build from segments already merged and non-empty (the renderer's output): skips the re-merge."""
        prompt = cls.__new__(cls)
        prompt._set(segments, text)
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
        if self._segments is None:
            self._flatten()
        assert self._segments is not None
        return self._segments

    def _flatten(self) -> None:
        """Collect the linked prompts' segments in order, merging where two pieces meet (as ``__init__`` would)."""
        out: list[Segment] = []
        stack: list[Prompt] = [self]
        while stack:  # iterative: a long conversation links many pieces
            node = stack.pop()
            if node._pieces is not None:
                left, right = node._pieces
                stack.append(right)
                stack.append(left)
                continue
            segments = node._segments
            if not segments:
                continue
            if out and _kind(out[-1]) == _kind(segments[0]):
                out[-1] = _join(out[-1], segments[0])
                out.extend(segments[1:])
            else:
                out.extend(segments)
        self._segments = tuple(out)
        self._pieces = None  # the linked prompts are no longer needed
        self._depth = 0

    @property
    def text(self) -> str:
        """The prompt as one string, untrusted text neutralized; safe to send to a text-prompt endpoint."""
        if self._text is None:
            self._text = "".join(s.text if s.trusted else sanitize(s.text) for s in self.segments)
        return self._text

    @property
    def raw_text(self) -> str:
        """The prompt with untrusted text as it was. Only for display and token-id backends, never for sending."""
        return "".join(s.text for s in self.segments)

    def token_ids(self, tokenizer: SupportsEncode) -> list[int]:
        """Token ids with special-token parsing off for untrusted segments (immune to injection by construction)."""
        ids: list[int] = []
        for seg in self.segments:
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
        if other._head is None:
            return self
        if self._tail is None:
            return other
        text: str | None = None
        # Appending is the agent loop's hot path: reuse the neutralized text computed so far. Where two
        # untrusted runs meet they become one run, neutralized as a whole, so that text is computed afresh.
        if self._text is not None and (self._tail or other._head):
            text = self._text + other.text
        if self._depth >= _MAX_DEPTH:
            self._flatten()
        if other._depth >= _MAX_DEPTH:
            other._flatten()
        prompt = Prompt.__new__(Prompt)
        prompt._segments = None
        prompt._depth = max(self._depth, other._depth) + 1
        prompt._pieces = (self, other)
        prompt._text = text
        prompt._head = self._head
        prompt._tail = other._tail
        return prompt

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    def __len__(self) -> int:
        return len(self.text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prompt) and self.segments == other.segments

    def __hash__(self) -> int:
        return hash(self.segments)

    def __repr__(self) -> str:
        return f"Prompt({self.raw_text!r})"
