"""The status line under the conversation: what the app is doing, the model, thinking and the tools.

A local model's name is a path (``/home/me/models/gemma-4-E4B-it``) that can be longer than the line; a plain
one-line widget then wrapped it onto a line that is never shown, and the thinking and tools that follow were
lost (60 columns, ``ready │`` and nothing else). So the line is fitted when it is drawn, to the width it has
then: the model gives up its start, where a path is least telling, and keeps its end, the model's name.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import RenderResult
from textual.visual import VisualType
from textual.widgets import Static

__all__ = ["StatusLine", "fit_status"]

SEPARATOR = " │ "


def fit_status(state: str, model: str, tail: str, width: int) -> str:
    """``state │ model tail`` in ``width`` cells, the model shortened from the left (at a ``/`` where that keeps
    most of what fits)."""
    full = f"{state}{SEPARATOR}{model}{tail}"
    if width <= 0 or cell_len(full) <= width:
        return full
    room = width - cell_len(state + SEPARATOR) - cell_len(tail)
    if room < 6:  # no room for a telling piece of the model: keep the state and what follows it
        return f"{state}{SEPARATOR}{tail.lstrip()}"
    end = model
    while end and cell_len("…" + end) > room:
        end = end[1:]
    # Cut mid-component, the end starts at the next "/" instead ("…/tiny-gemma4", not "…oints/tiny-gemma4"),
    # unless that gives up more than it keeps.
    slash = end.find("/")
    if 0 < slash < len(end) - slash:
        end = end[slash:]
    return f"{state}{SEPARATOR}…{end}{tail}"


class StatusLine(Static):
    """One line, never wrapped: :meth:`show` sets the parts, fitted to the widget's width at each drawing.

    Drawing is the one moment the width is known for certain (after the layout, on every resize), so no size
    is read ahead of it. :meth:`update` shows a message as it is (``running read_file… (Esc to cancel)``).
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", markup=False, id=id)
        self._parts: tuple[str, str, str] | None = None

    @property
    def parts(self) -> tuple[str, str, str] | None:
        """The state, model and the rest as last shown with :meth:`show`; ``None`` while a message is shown."""
        return self._parts

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        self._parts = None
        super().update(content, layout=layout)

    def show(self, state: str, model: str, tail: str) -> None:
        """Show ``state │ model tail``; the model's start gives way when the line is too narrow."""
        super().update(f"{state}{SEPARATOR}{model}{tail}")
        self._parts = (state, model, tail)

    def render(self) -> RenderResult:
        if self._parts is None:
            return super().render()
        return Text(fit_status(*self._parts, self.content_region.width), no_wrap=True, overflow="ellipsis")
