"""What the terminal can show: the one size rule, and the one "can I draw a live screen?" test.

Every screen of the app asks `too_small` (through the app's size check) whether it can lay
itself out; every entry point (the form, `ti-tui demo`, the home screen, `ti-tui train` and
`ti-tui watch`) asks `live_screen_problem` before drawing full-screen, and prints plain lines
(or, for the form, one sentence) where it cannot.

Why MIN_WIDTH x MIN_HEIGHT = 39 x 10. The common windows must all work with room to spare:
an 80x24 terminal under tmux or screen is 80x23 (the status line takes a row), either half of a
window split by tmux is 39 or 40 columns, or 11 rows, title bars and status lines take a row or two
more. Above the minimum each screen degrades by itself: the form stacks its labels over the
controls below NARROW_WIDTH columns and drops the help line below SHORT_HEIGHT rows, the live
screen drops the charts below panels.CHARTS_MIN_HEIGHT rows (progress alone), the summary and
the help scroll. At 39 x 10 each still shows something whole: two or three form fields with
their labels and the key line, the whole progress panel, the outcome of a run. Below it a
label, a usable input and the key line no longer fit at once, so the notice is shown instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TextIO

MIN_WIDTH, MIN_HEIGHT = 39, 10
"""The smallest terminal any screen is drawn in; below it the app shows only a notice."""

NARROW_WIDTH = 64
"""Below this many columns the form stacks each label above its control."""
SHORT_HEIGHT = 20
"""Below this many rows the form drops its help lines (the field's help stays on F1)."""

HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_WIDTH, "-wide")]
"""Textual breakpoints: each screen carries -narrow below NARROW_WIDTH columns, else -wide."""
VERTICAL_BREAKPOINTS = [(0, "-short"), (SHORT_HEIGHT, "-tall")]
"""Each screen carries -short below SHORT_HEIGHT rows, else -tall."""

DUMB_TERMS = frozenset({"", "dumb", "unknown", "emacs"})
"""TERM values that cannot move the cursor: no full-screen drawing there."""


def too_small(width: int, height: int) -> bool:
    """Whether a width x height terminal (cells) is below the smallest any screen draws in."""
    return width < MIN_WIDTH or height < MIN_HEIGHT


def too_small_words(width: int, height: int) -> str:
    """The notice shown instead of a screen, naming both sizes."""
    return f"make the window at least {MIN_WIDTH}x{MIN_HEIGHT} (now {width}x{height})"


def _isatty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):  # closed or detached stream
        return False


def terminal_size(stream: TextIO | None) -> tuple[int, int] | None:
    """The terminal's (columns, lines) as the kernel reports them for `stream`; None when
    unknown (not a terminal, or a terminal that reports 0x0, as some serial consoles do)."""
    try:
        size = os.get_terminal_size(stream.fileno()) if stream is not None else None
    except (OSError, ValueError, AttributeError):
        return None
    if size is None or size.columns <= 0 or size.lines <= 0:
        return None
    return size.columns, size.lines


def live_screen_problem(*, interactive: bool, env: Mapping[str, str] | None = None,
                        streams: tuple[TextIO | None, ...] | None = None) -> str | None:
    """None when a live full-screen view can be drawn here, else why not (a phrase to put
    after "ti-tui: ...").

    `interactive`: the view reads keys (the Textual app: it reads stdin and draws on stderr,
    as Textual's LinuxDriver does), else it only draws (Rich's Live on stdout). `streams`
    overrides the streams checked (tests). The rule: every stream is a terminal, TERM can
    move the cursor, and the terminal is at least MIN_WIDTH x MIN_HEIGHT.
    """
    env = os.environ if env is None else env
    if streams is None:
        streams = (sys.__stdin__, sys.__stderr__) if interactive else (sys.stdout,)
    names = ("standard input", "standard error") if interactive else ("standard output",)
    for stream, name in zip(streams, names + names[-1:] * len(streams)):
        if not _isatty(stream):
            return f"{name} is not a terminal"
    term = env.get("TERM", "")
    if term.lower() in DUMB_TERMS:
        return f"TERM={term or '(unset)'} cannot draw a screen"
    size = terminal_size(streams[-1])
    if size is None:
        return "the terminal does not report its size"
    if too_small(*size):
        width, height = size
        return (f"the terminal is {width}x{height}, below the {MIN_WIDTH}x{MIN_HEIGHT} a screen "
                "needs")
    return None


def can_draw_live(*, interactive: bool, env: Mapping[str, str] | None = None) -> bool:
    """`live_screen_problem(...) is None`: the one test every entry point asks."""
    return live_screen_problem(interactive=interactive, env=env) is None
