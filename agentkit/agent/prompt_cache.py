"""The agent's cached rendering of earlier turns, so each turn costs O(new text) instead of O(conversation).

History only grows by whole turns that start with a user message and end with a closed model turn, and it
holds no thinking, so rendering it again would give the same bytes: the cache keeps that rendering and
appends. It holds for exactly the conversation it was made from — a tuple of frozen messages
(:mod:`agentkit.messages`), so the same tuple (an identity check, O(1)) is the same text, and any change
(messages replaced or edited, a reloaded session) is a new tuple that renders from scratch — and for the
thinking switch and tool declarations it was rendered with (changing those calls :meth:`PromptCache.clear`
or passes another switch). It cannot go stale: there is nothing to compare, only an object to recognise.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentkit import gemma4
from agentkit.messages import AssistantMessage, Conversation, Message, UserMessage, native_prompt, render_dicts

__all__ = ["PromptCache"]


class PromptCache:
    """The rendering (without generation prompt) of one conversation, and how many user turns it holds."""

    __slots__ = ("_conversation", "_prompt", "_thinking", "_user_turns")

    def __init__(self) -> None:
        self._conversation: Conversation | None = None
        self._thinking = False
        self._prompt = gemma4.Prompt()
        self._user_turns = 0

    def clear(self) -> None:
        """Forget the rendering (the declared tools changed)."""
        self._conversation = None

    def user_turns(self, history: Conversation) -> int:
        """How many user turns ``history`` holds (counted once per rendering, kept up to date after)."""
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
        if history is self._conversation and thinking == self._thinking:
            return self._prompt + gemma4.turn_suffix(render_dicts((user_message,)), thinking)
        last = history[-1] if history else None
        if last is not None and (type(last) is not AssistantMessage or last.tool_calls):
            # Not a closed model turn (an unusual loaded history): no cache, render it all.
            self._conversation = None
            return native_prompt((*history, user_message), declarations, thinking=thinking)
        rendered = native_prompt(history, declarations, thinking=thinking, add_generation_prompt=False)
        rendered.text  # noqa: B018 - computed once here, every later append reuses it
        self._conversation, self._thinking, self._prompt = history, thinking, rendered
        self._user_turns = _user_turns(history)
        return rendered + gemma4.turn_suffix(render_dicts((user_message,)), thinking)

    def advance(self, before: Conversation, after: Conversation, *, thinking: bool) -> None:
        """Extend the rendering of ``before`` by the messages appended to it to make ``after``.

        The caller vouches that ``after`` is ``before`` with messages appended (the loop knows: it commits the
        turn to the conversation it started from); for anything else, call :meth:`clear`.
        """
        if before is not self._conversation or thinking != self._thinking:
            self._conversation = None
            return
        added = after[len(before) :]
        prompt = self._prompt + gemma4.turn_suffix(render_dicts(added), None)
        prompt.text  # noqa: B018 - computed once here, every later append reuses it
        self._conversation, self._prompt = after, prompt
        self._user_turns += _user_turns(added)


def _user_turns(messages: Sequence[Message]) -> int:
    return sum(1 for m in messages if type(m) is UserMessage)
