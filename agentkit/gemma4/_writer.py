"""The segment writer every rendering goes through: runs of equal trust, each neutralized once.

Its own module because both halves of rendering use it — the declarations block (:mod:`.declarations`,
rendered once and cached) and the turns (:mod:`.render`) — and because its memos of runs already seen are
the one state rendering keeps between calls: all of it is here, in one place, with its bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .prompt import Prompt, Segment
from .sanitize import sanitize

# Runs seen before, by text, with their segment (immutable, so shared) and, for untrusted ones, the neutralized
# text: the same markers recur between every two messages, and a conversation is rendered again and again
# (a restored history, a chat-API request), so most runs were built and sanitized before. Keyed by value,
# never by object identity; bounded in entries and in the length of a run.
_TRUSTED_RUNS: dict[str, Segment] = {}
_UNTRUSTED_RUNS: dict[str, tuple[Segment, str]] = {}
_MEMO_MAX_CHARS = 1024
_MEMO_MAX_RUNS = 2048


def _remember(memo: dict[str, Any], text: str, value: Any) -> None:
    if len(memo) >= _MEMO_MAX_RUNS:
        memo.clear()
    memo[text] = value


def _trusted_run(text: str) -> Segment:
    segment = _TRUSTED_RUNS.get(text)
    if segment is None:
        segment = Segment(text, True)
        if len(text) <= _MEMO_MAX_CHARS:
            _remember(_TRUSTED_RUNS, text, segment)
    return segment


def _untrusted_run(text: str) -> tuple[Segment, str]:
    """The segment of an untrusted run and its text as sent (neutralized)."""
    known = _UNTRUSTED_RUNS.get(text)
    if known is None:
        known = (Segment(text, False), sanitize(text))
        if len(text) <= _MEMO_MAX_CHARS:
            _remember(_UNTRUSTED_RUNS, text, known)
    return known


class _Out:
    """Collects segments, merging runs of equal trust as it goes (one join per run, not per piece).

    Each run is also neutralized as it is closed, so the prompt's text is one join at the end, and a cached
    block (the declarations) brings its neutralized text along instead of being sanitized again.
    """

    __slots__ = ("_parts", "_segments", "_texts", "_trusted")

    def __init__(self) -> None:
        self._segments: list[Segment] = []
        self._texts: list[str] = []  # the segments' text as sent: untrusted runs sanitized
        self._parts: list[str] = []
        self._trusted = True

    def emit(self, text: str, trusted: bool) -> None:
        if not text:
            return
        if trusted != self._trusted:
            self._flush()
            self._trusted = trusted
        self._parts.append(text)

    def t(self, text: str) -> None:
        if text:
            if not self._trusted:
                self._flush()
                self._trusted = True
            self._parts.append(text)

    def u(self, text: str) -> None:
        if text:
            if self._trusted:
                self._flush()
                self._trusted = False
            self._parts.append(text)

    def _flush(self) -> None:
        parts = self._parts
        if parts:
            text = parts[0] if len(parts) == 1 else "".join(parts)
            if self._trusted:
                self._segments.append(_trusted_run(text))
                self._texts.append(text)
            else:
                segment, sent = _untrusted_run(text)
                self._segments.append(segment)
                self._texts.append(sent)
            self._parts = []

    def extend(self, segments: Sequence[Segment], texts: Sequence[str]) -> None:
        """Append pre-rendered segments (merged, non-empty) and their sent texts, without re-emitting them."""
        if not segments:
            return
        self.emit(segments[0].text, segments[0].trusted)
        if len(segments) == 1:
            return
        self._flush()
        self._segments.extend(segments[1:-1])
        self._texts.extend(texts[1:-1])
        self._trusted = segments[-1].trusted
        self._parts = [segments[-1].text]

    def prompt(self) -> Prompt:
        self._flush()
        return Prompt._merged(tuple(self._segments), "".join(self._texts))
