"""The agent's cached rendering of earlier turns, so each turn costs O(new text) instead of O(conversation).

History only grows by whole turns that start with a user message and end with a closed model turn, and it
holds no thinking, so rendering it again would give the same bytes: the cache keeps that rendering and
appends. It holds for exactly the conversation it was made from — a tuple of frozen messages
(:mod:`agentkit.messages`), so the same tuple (an identity check, O(1)) is the same text, and any change
(messages replaced or edited, a reloaded session) is a new tuple that renders from scratch — and for the
thinking switch and tool declarations it was rendered with (changing those calls :meth:`PromptCache.clear`
or passes another switch). It cannot go stale: there is nothing to compare, only an object to recognise.

A finished turn is rendered when the next turn starts, not when it ends: a program that puts another
conversation in place between requests (a restored history) never pays for rendering a turn it throws away.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentkit import gemma4
from agentkit.messages import AssistantMessage, Conversation, Message, UserMessage, native_prompt, render_dicts

__all__ = ["PromptCache"]


class PromptCache:
    """The rendering (without generation prompt) of one conversation, and how many user turns it holds."""

    __slots__ = ("_conversation", "_pending", "_prompt", "_thinking", "_user_turns")

    def __init__(self) -> None:
        self._conversation: Conversation | None = None
        self._pending: Conversation | None = None  # _conversation with turns appended, rendered on first use
        self._thinking = False
        self._prompt = gemma4.Prompt()
        self._user_turns = 0

    def clear(self) -> None:
        """Forget the rendering (the declared tools changed)."""
        self._conversation = self._pending = None

    def _catch_up(self, history: Conversation) -> None:
        """Render the turns appended since the rendering, when ``history`` is the conversation they made."""
        if history is self._pending and self._conversation is not None:
            before = self._conversation
            added = history[len(before) :]
            prompt = self._prompt + gemma4.turn_suffix(render_dicts(added), None)
            prompt.text  # noqa: B018 - computed once here, every later append reuses it
            self._conversation, self._prompt, self._pending = history, prompt, None
            self._user_turns += _user_turns(added)

    def user_turns(self, history: Conversation) -> int:
        """How many user turns ``history`` holds (counted once per rendering, kept up to date after)."""
        self._catch_up(history)
        if history is self._conversation:
            return self._user_turns
        return _user_turns(history)

    def opening(
        self,
        history: Conversation,
        user_message: Message,
        declarations: gemma4.Declarations,
        *,
        thinking: bool,
    ) -> gemma4.Prompt:
        """The first prompt of a turn: the rendering of ``history`` plus the new user turn."""
        self._catch_up(history)
        if history is self._conversation and thinking == self._thinking:
            return self._prompt + gemma4.turn_suffix(render_dicts((user_message,)), thinking)
        last = history[-1] if history else None
        if last is not None and (type(last) is not AssistantMessage or last.tool_calls):
            # Not a closed model turn (an unusual loaded history): no cache, render it all.
            self._conversation = self._pending = None
            return native_prompt((*history, user_message), declarations, thinking=thinking)
        rendered = native_prompt(history, declarations, thinking=thinking, add_generation_prompt=False)
        rendered.text  # noqa: B018 - computed once here, every later append reuses it
        self._conversation, self._thinking, self._prompt, self._pending = history, thinking, rendered, None
        self._user_turns = _user_turns(history)
        return rendered + gemma4.turn_suffix(render_dicts((user_message,)), thinking)

    def advance(self, before: Conversation, after: Conversation, *, thinking: bool) -> None:
        """Take ``after``, ``before`` with messages appended, as the conversation the next turn starts from.

        The caller vouches that ``after`` is ``before`` with messages appended (the loop knows: it commits the
        turn to the conversation it started from); for anything else, call :meth:`clear`. The appended
        messages are rendered when a turn starts from ``after`` (:meth:`opening`), not now.
        """
        latest = self._pending if self._pending is not None else self._conversation
        if latest is None or before is not latest or thinking != self._thinking:
            self._conversation = self._pending = None
            return
        self._pending = after


def _user_turns(messages: Sequence[Message]) -> int:
    return sum(1 for m in messages if type(m) is UserMessage)
