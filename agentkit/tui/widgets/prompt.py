"""The message box: multi-line, with history, slash-command completion, and chat scrolling from the keyboard.

Keys, and why these: Enter sends, as in every chat. A newline needs a key the terminal can tell apart from
Enter. Shift+Enter and Ctrl+Enter are reported only by terminals that speak the kitty keyboard protocol
(kitty, WezTerm, foot, Ghostty, iTerm2 with CSI u; Textual turns it on); everywhere else they arrive as a
plain Enter. Ctrl+J arrives as a line feed in every terminal, so it always inserts a newline, and a line
ending in ``\\`` followed by Enter continues on the next line (the shell's convention) for people who do
not know Ctrl+J. A paste keeps all its lines: the terminal brackets it, and it never sends.

Up on the first line and Down on the last walk through earlier messages (:class:`~agentkit.tui.history.
InputHistory`); elsewhere they move the cursor. PageUp/PageDown and Ctrl+Home/End scroll the conversation
(posted as :class:`PromptArea.Scroll`), so reading back never needs a focus change. While the text is the
start of a slash command, a menu lists the matches: Up/Down pick, Tab completes, Enter runs, Esc closes.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import OptionList, TextArea
from textual.widgets.option_list import Option

from ..commands import SlashCommand, completions
from ..history import InputHistory

__all__ = ["CommandMenu", "PromptArea"]

NEWLINE_KEYS = frozenset({"shift+enter", "ctrl+enter", "alt+enter", "ctrl+j"})


class CommandMenu(OptionList):
    """The slash commands that match what is typed; driven by the prompt, never focused itself."""

    can_focus = False
    DEFAULT_CSS = """
    CommandMenu {
        height: auto;
        max-height: 8;
        border: none;
        padding: 0 1;
        background: $boost;
        display: none;
    }
    CommandMenu.-open { display: block; }
    """

    def __init__(self) -> None:
        super().__init__(id="command-menu")
        self.commands: list[SlashCommand] = []

    def show(self, commands: list[SlashCommand]) -> None:
        if [c.name for c in commands] == [c.name for c in self.commands]:
            return
        self.commands = commands
        self.clear_options()
        width = max((len(c.name) for c in commands), default=0) + 1
        self.add_options(Option(f"/{c.name:<{width}} {c.summary}") for c in commands)
        self.highlighted = 0 if commands else None
        self.set_class(bool(commands), "-open")

    @property
    def is_open(self) -> bool:
        return bool(self.commands)

    @property
    def chosen(self) -> SlashCommand | None:
        index = self.highlighted
        return self.commands[index] if index is not None and 0 <= index < len(self.commands) else None


class PromptArea(TextArea):
    """A TextArea that sends on Enter; see the module docstring for every key."""

    DEFAULT_CSS = """
    PromptArea {
        height: auto;
        min-height: 3;
        max-height: 12;
        border: tall $primary 50%;
        padding: 0 1;
    }
    PromptArea:focus { border: tall $primary; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("pageup", "scroll_chat('page_up')", "Scroll up", show=False),
        Binding("pagedown", "scroll_chat('page_down')", "Scroll down", show=False),
        Binding("ctrl+home", "scroll_chat('home')", "Scroll to top", show=False),
        Binding("ctrl+end", "scroll_chat('end')", "Scroll to end", show=False),
    ]

    class Submitted(Message):
        """Enter was pressed on text that is not only whitespace."""

        def __init__(self, prompt: PromptArea, text: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.text = text

    class Scroll(Message):
        """The person asked to scroll the conversation: ``page_up``, ``page_down``, ``home`` or ``end``."""

        def __init__(self, where: str) -> None:
            super().__init__()
            self.where = where

    def __init__(self, history: InputHistory, menu: CommandMenu, *, placeholder: str = "", id: str | None = None):
        super().__init__(
            "",
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            highlight_cursor_line=False,
            placeholder=placeholder,
            compact=True,
            id=id,
        )
        self.sent = history  # not .history: TextArea keeps its undo stack there
        self.menu = menu
        self._placed = ""  # the last text put here by set_text; a change to anything else is the person's edit
        self._menu_for: str | None = None  # the text the menu's matches were last worked out for

    def on_mount(self) -> None:
        # With animations off (TEXTUAL_ANIMATIONS=none: accessibility, recordings) the cursor holds still too.
        if self.app.animation_level == "none":
            self.cursor_blink = False

    # -- text in and out ---------------------------------------------------------------------------------

    def set_text(self, text: str) -> None:
        """Replace the text and put the cursor at its end (history, completion, tests)."""
        self._placed = text
        self.load_text(text)
        self.move_cursor(self.document.end)
        self._update_menu()

    @property
    def value(self) -> str:
        """The text, under the name ``Input`` uses: scripts and tests written against the one-line prompt work."""
        return self.text

    @value.setter
    def value(self, text: str) -> None:
        self.set_text(text)

    async def action_submit(self) -> None:
        """Send what is typed, as Enter does (``Input.action_submit``'s counterpart)."""
        self._enter()

    def _on_text_area_changed(self, event: TextArea.Changed) -> None:
        # Changed arrives after set_text returned, so compare texts rather than flag the call.
        if self.text != self._placed:
            self.sent.stop()
        self._update_menu()

    def update_suggestion(self) -> None:
        """Ghost text for the one command being typed; Right or Tab accepts it."""
        matches = [] if self.sent.browsing else completions(self.text)
        at_end = self.cursor_location == self.document.end
        self.suggestion = matches[0].name[len(self.text) - 1 :] if len(matches) == 1 and at_end else ""

    def _update_menu(self) -> None:
        # A recalled "/help" must not open the menu: Up would then move in the menu instead of the history.
        self._menu_for = self.text
        self.menu.show([] if self.sent.browsing else completions(self.text))

    def _complete(self, command: SlashCommand) -> None:
        self.set_text(f"/{command.name} ")
        self.menu.show([])

    # -- keys --------------------------------------------------------------------------------------------

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if self.text != self._menu_for:
            # Keys typed in a burst are all handled before the first Changed message that updates the menu, so
            # "/export" and Enter typed fast ran the /help the menu still showed for "/".
            self._update_menu()
        handled = True
        if key in NEWLINE_KEYS:
            self.insert("\n")
        elif key == "enter":
            self._enter()
        elif key == "tab" and self.menu.is_open and self.menu.chosen is not None:
            self._complete(self.menu.chosen)
        elif key == "escape" and self.menu.is_open:
            self.menu.show([])
        elif key in ("up", "down") and self.menu.is_open:
            self.menu.action_cursor_up() if key == "up" else self.menu.action_cursor_down()
        elif key == "up" and self._screen_row() == 0:
            handled = self._recall(self.sent.previous(self.text))
        elif key == "down" and self._screen_row() == self.wrapped_document.height - 1:
            handled = self._recall(self.sent.next())
        else:
            handled = False
        if handled:
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)

    def _screen_row(self) -> int:
        """The cursor's row as drawn: a long line wraps, and Up inside it moves the cursor, not the history."""
        return self.wrapped_document.location_to_offset(self.cursor_location).y

    def _recall(self, entry: str | None) -> bool:
        if entry is None:
            return False  # nothing further back (or not browsing): the key moves the cursor as usual
        self.set_text(entry)
        return True

    def _enter(self) -> None:
        row, column = self.cursor_location
        line = self.document[row]
        if column > 0 and line[:column].endswith("\\") and not line[:column].endswith("\\\\"):
            # A line ending in a backslash continues, as in a shell: the backslash becomes the newline.
            self.replace("\n", (row, column - 1), (row, column))
            return
        command = self.menu.chosen if self.menu.is_open else None
        text = f"/{command.name}" if command is not None else self.text
        if text.strip():
            self.post_message(self.Submitted(self, text))

    def action_scroll_chat(self, where: str) -> None:
        self.post_message(self.Scroll(where))
