"""F1: the keys of the form, on one page. Any of Esc, F1, q or Enter closes it."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, str], ...] = (
    ("Tab / Ctrl-N", "next field"),
    ("Shift-Tab / Ctrl-P", "previous field"),
    ("← → ↑ ↓", "move inside a choice; open a list (Enter picks, Esc closes it)"),
    ("Space", "tick or untick a box"),
    ("Enter", "next field; on Start training, start"),
    ("Ctrl-S", "start training (refused, with the first problem focused, while any is left)"),
    ("Esc / Ctrl-Q", "quit without starting"),
    ("F1", "this help"),
)
"""(keys, what they do): the form's key map, shown here and summarised in the footer."""


def keys_table() -> Table:
    """KEYS as a two-column Rich grid: the keys in bold, what they do beside them."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for keys, what in KEYS:
        table.add_row(keys, what)
    return table


class HelpScreen(ModalScreen[None]):
    """The key map over the current screen."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; padding: 0 1; background: $surface;
    }
    HelpScreen #help-title { text-style: bold; padding: 0 0 1 0; }
    HelpScreen #help-foot { color: $text-muted; padding: 1 0 0 0; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q,enter", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():  # scrolls in a terminal shorter than the page
            yield Static("ti-tui keys", id="help-title")
            yield Static(keys_table(), id="help-keys")
            yield Static("Every field's help shows under the form when it has focus. "
                         "Esc closes this page.", id="help-foot")

    def action_close(self) -> None:
        self.dismiss(None)
