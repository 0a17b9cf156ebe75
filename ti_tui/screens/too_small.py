"""Shown instead of any screen when the terminal is below the size every screen can use.

The rule (and why it sits where it does) is ti_tui/terminal.py's `too_small`; the app pushes
this screen when the terminal shrinks below it and pops it when the terminal grows again, so
nothing is ever laid out in a space too small for it. Above the minimum every screen degrades
by itself (stacked labels, hidden panels, scrolling) instead of refusing.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static

from ti_tui.terminal import too_small, too_small_words

__all__ = ["TooSmallScreen", "too_small"]


class TooSmallScreen(Screen[None]):
    """One centred notice naming the minimum and the current size."""

    DEFAULT_CSS = """
    TooSmallScreen { align: center middle; }
    TooSmallScreen > Static { width: 1fr; height: auto; content-align: center middle;
                              text-align: center; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", markup=False)

    def on_mount(self) -> None:
        self.show_size(self.app.size.width, self.app.size.height)

    def on_resize(self) -> None:
        self.show_size(self.app.size.width, self.app.size.height)

    def show_size(self, width: int, height: int) -> None:
        """Say the terminal's size (columns x rows) against the minimum, and how to quit."""
        self.query_one(Static).update(f"{too_small_words(width, height)}\nCtrl-Q quits")
