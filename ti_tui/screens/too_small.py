"""Shown instead of a screen that cannot fit: "make the window at least 80x24".

The app pushes it when the terminal shrinks below the minimum and pops it when the terminal
grows again, so nothing is ever laid out in a space too small for it.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static

MIN_WIDTH, MIN_HEIGHT = 80, 24


def too_small(width: int, height: int) -> bool:
    return width < MIN_WIDTH or height < MIN_HEIGHT


class TooSmallScreen(Screen[None]):
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
        self.query_one(Static).update(
            f"make the window at least {MIN_WIDTH}x{MIN_HEIGHT}\n(now {width}x{height}; "
            "Ctrl-Q quits)")
