"""A yes/no question over the screen, whose safe answer is the default: "Stop training?"
on the live screen, "Delete the run?" on the home screen.

Enter alone gives the safe answer (the focused button): a stray Enter, keys typed into the
wrong window or a menu's answer sent too early must never end or delete a run; y (or the
other button) does. n and Esc answer no.

Laid out as one column that fits a 39x10 terminal (ti_tui/terminal.py MIN_WIDTH x
MIN_HEIGHT): the question, the sentence of what it does and both buttons on one row, with no
blank rows on a short screen (terminal.SHORT_HEIGHT), where a subclass may also shorten what
the sentence names (`text_for`: the delete question's folder, from the left); a longer
sentence scrolls. (A Grid with
the sentence spanning both columns sized it as if it were one column wide, and the rows of
blanks pushed the question itself out of an 80x11 window.)
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from ti_tui.terminal import SHORT_HEIGHT


class Question(ModalScreen[bool]):
    """Asks `title`; dismisses True for yes (y, the yes button), False for no (n, Esc, Enter
    on the focused no button)."""

    DEFAULT_CSS = """
    Question { align: center middle; }
    Question > VerticalScroll { width: 66; max-width: 100%; height: auto; max-height: 100%;
        padding: 0 2; border: thick $error; background: $surface; }
    Question #question-title { text-style: bold; padding: 1 0 0 0; }
    Question #question-text { padding: 1 0; }
    Question Horizontal { height: 2; padding: 0 0 1 0; }
    Question Button { width: 1fr; margin: 0 1; }
    Question.-short > VerticalScroll { padding: 0 1; }
    Question.-short #question-title, Question.-short #question-text { padding: 0; }
    Question.-short Horizontal { height: 1; padding: 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No", show=False),
        # A modal screen cuts the app's own bindings off (Textual's _modal_binding_chain), so
        # F1 is bound here again: this question's keys, as on every screen.
        Binding("f1", "app.help", "Help", show=False),
    ]
    AUTO_FOCUS = ".question-no"
    KIND = "question"
    """The buttons' ids are KIND-yes and KIND-keep (tests and CSS find them by it)."""

    def __init__(self, title: str, text: str, *, yes: str, no: str) -> None:
        """`title`: the question; `text`: what yes does; `yes` / `no`: the buttons' words
        (each gets its key, [y] / [n], after it)."""
        super().__init__()
        self.title_words, self.text, self.yes, self.no = title, text, yes, no

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label(self.title_words, id="question-title", markup=False)
            yield Static(self.text, id="question-text", markup=False)
            with Horizontal():
                yield Button(f"{self.yes} [y]", variant="error", id=f"{self.KIND}-yes",
                             action="screen.answer(True)", compact=True)
                yield Button(f"{self.no} [n]", variant="primary", id=f"{self.KIND}-keep",
                             classes="question-no", action="screen.answer(False)",
                             compact=True)

    def on_resize(self) -> None:
        width, height = self.size
        # The text's room: the box less its border (2) and padding (2 or 4 cells).
        room = min(66, width) - (4 if height < SHORT_HEIGHT else 6)
        self.query_one("#question-text", Static).update(self.text_for(room, height))

    def text_for(self, width: int, height: int) -> str:
        """The sentence under the question for a `width`-cell wide box in a terminal `height`
        rows high (a subclass may shorten what it names on a short screen)."""
        return self.text

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
