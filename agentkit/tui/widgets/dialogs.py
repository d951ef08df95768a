"""Modal dialogs: tool-call approval, a one-line text prompt (rename, backend), and a yes/no confirmation.

Each is a ``ModalScreen`` that dismisses with its answer, so the app awaits a decision without the dialog
knowing anything about agents or sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from agentkit import Approval, ToolCallRequest

from ..text import literal, visible
from .arguments import arguments_view

__all__ = ["ApprovalScreen", "ConfirmScreen", "PromptScreen"]

_DIALOG_CSS = """
{name} {{
    align: center middle;
    background: $background 60%;
}}
{name} > Vertical {{
    width: 72;
    max-width: 95%;
    height: auto;
    max-height: 90%;
    padding: 1 2;
    border: thick $primary;
    background: $surface;
}}
{name} .dialog-title {{
    text-style: bold;
    width: 100%;
    margin-bottom: 1;
}}
{name} .dialog-buttons {{
    height: auto;
    margin-top: 1;
    align-horizontal: right;
}}
{name} .dialog-buttons Button {{
    margin-left: 1;
    min-width: 10;
}}
"""


class _DialogBox(Vertical):
    """A dialog's box that tells its screen whenever its size or its content's size changes: only then, after
    the layout, are both known."""

    def __init__(self, refit: Callable[[], None]) -> None:
        super().__init__()
        self._refit = refit

    def on_resize(self) -> None:
        self._refit()


class ApprovalScreen(ModalScreen[Approval]):
    """Asks whether a side-effecting tool call may run: once, always (this session), or not at all."""

    DEFAULT_CSS = (
        _DIALOG_CSS.format(name="ApprovalScreen")
        + """
    ApprovalScreen > Vertical { border: thick $warning; }
    ApprovalScreen .approval-args {
        height: auto;
        max-height: 16;
        background: $boost;
        padding: 0 1;
    }
    ApprovalScreen .approval-description { color: $text-muted; margin-bottom: 1; }
    ApprovalScreen .approval-reason { color: $warning; margin-bottom: 1; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "decide('allow')", "Allow once"),
        Binding("a", "decide('always')", "Always"),
        Binding("n,escape", "decide('deny')", "Deny"),
        # Ctrl+C stops the answer everywhere else in the app; here it was taken by the screen's copy binding.
        Binding("ctrl+c", "interrupt", "Stop", show=False),
        # The focus stays on Deny, so the keys that scroll the arguments are the screen's.
        Binding("down", "scroll_arguments('down')", "Scroll", show=False),
        Binding("up", "scroll_arguments('up')", "Scroll", show=False),
        Binding("pagedown", "scroll_arguments('page_down')", "Scroll", show=False),
        Binding("pageup", "scroll_arguments('page_up')", "Scroll", show=False),
        Binding("end", "scroll_arguments('end')", "Scroll", show=False),
        Binding("home", "scroll_arguments('home')", "Scroll", show=False),
    ]

    def __init__(self, request: ToolCallRequest) -> None:
        super().__init__()
        self.request = request
        self._fitted_for = Size(0, 0)

    def compose(self) -> ComposeResult:
        # Every argument in full, code highlighted: the person approves exactly what will run.
        args = arguments_view(self.request.name, self.request.arguments, dark=self.app.current_theme.dark)
        with _DialogBox(self._fit_arguments):
            yield Label(
                Text.assemble("Allow ", (literal(self.request.name).plain, "bold"), " to run? It has side effects."),
                classes="dialog-title",
            )
            if self.request.reason:  # why this call, of a tool otherwise harmless, needs a person
                yield Static(f"Why: {visible(self.request.reason)}", markup=False, classes="approval-reason")
            if self.request.description:
                yield Static(literal(self.request.description), classes="approval-description")
            with VerticalScroll(classes="approval-args"):
                yield Static(args)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Allow once (y)", id="allow", variant="success")
                yield Button("Always (a)", id="always", variant="primary")
                yield Button("Deny (n)", id="deny", variant="error")

    def on_mount(self) -> None:
        self.query_one("#deny", Button).focus()  # Enter on a dialog that appeared by surprise must not approve

    def on_resize(self, event: events.Resize) -> None:
        # A new terminal size gives the arguments back their own height; the box's resize that follows the
        # layout (its size or its content's changes either way) decides again whether they must give some up,
        # with sizes that are known then. (A screen is told its size more than once, after the box's resize
        # too: only a real change may undo the fit.)
        if event.size != self._fitted_for:
            self._fitted_for = event.size
            self.query_one(".approval-args", VerticalScroll).styles.height = "auto"

    def _fit_arguments(self) -> None:
        """Long arguments (a whole file) on a small screen give up height and scroll, so that every line of
        them can be read and the answers stay in view; a short call keeps a dialog of its own size.

        A dialog of automatic height does not shrink its children: what did not fit was cut off below the
        screen (at 60x24 eleven of a 21-line program's lines could never be seen). So the arguments take their
        own height first, and only when the dialog then overflows do they take the room that is left (1fr).
        Called from the box's own resize, which comes after each layout with its new sizes: a check made on a
        timer instead could read the sizes from before the layout and leave the buttons cut off for good.
        """
        dialog = self.query_one(_DialogBox)
        if dialog.virtual_size.height > dialog.scrollable_content_region.height:
            self.query_one(".approval-args", VerticalScroll).styles.height = "1fr"

    async def action_interrupt(self) -> None:
        """Pass Ctrl+C on to the app first (it stops the answer, so the run ends before any next step), then
        close the dialog as denied."""
        await self.app.run_action("help_quit")
        if self.app.screen is self:
            self.dismiss(Approval.DENY)

    def action_scroll_arguments(self, how: str) -> None:
        getattr(self.query_one(".approval-args", VerticalScroll), f"scroll_{how}")(animate=False)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.action_decide(event.button.id or "deny")

    def action_decide(self, decision: str) -> None:
        self.dismiss({"allow": Approval.ALLOW, "always": Approval.ALWAYS}.get(decision, Approval.DENY))


class PromptScreen(ModalScreen[str | None]):
    """One line of text (a session title, a backend URL); Esc cancels with ``None``."""

    DEFAULT_CSS = (
        _DIALOG_CSS.format(name="PromptScreen")
        + """
    PromptScreen OptionList { height: auto; max-height: 8; margin-top: 1; }
    PromptScreen .prompt-hint { color: $text-muted; margin-top: 1; }
    PromptScreen .prompt-error { color: $error; margin-top: 1; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        value: str = "",
        *,
        choices: list[str] | None = None,
        hint: str = "",
        placeholder: str = "",
        error: str = "",
    ) -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.choices = [c for c in dict.fromkeys(choices or []) if c]
        self.hint = hint
        self.placeholder = placeholder
        self.error = error  # why the previous answer was refused, shown under the input

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(literal(self.title_text), classes="dialog-title")
            yield Input(
                visible(self.value),  # a title from a session file may hold anything; what is shown is what is kept
                placeholder=self.placeholder,
                suggester=SuggestFromList(self.choices, case_sensitive=False) if self.choices else None,
            )
            if self.choices:
                yield OptionList(*(Option(literal(c)) for c in self.choices))
            if self.error:
                yield Static(literal(self.error), classes="prompt-error")
            if self.hint:
                yield Static(self.hint, markup=False, classes="prompt-hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(value or None)

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; the safe answer (no) has the focus."""

    DEFAULT_CSS = _DIALOG_CSS.format(name="ConfirmScreen")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(literal(self.question), classes="dialog-title")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
