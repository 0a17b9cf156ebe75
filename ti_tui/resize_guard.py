"""A resize the terminal has already moved past must never reach a screen.

Textual 8.2.8 can lock a screen into resizing itself for ever. `Screen._on_resize` lays the
screen out at the event's size (`_refresh_layout(size)`), and that layout posts a new Resize
to every widget whose region changed, the screen itself included. When two Resize events of
different sizes are queued on one screen at once, each layout changes the screen's region
back to its own size and posts the other size again: the two events chase each other, the
app draws nothing more, burns half a core and never reads its exit request, so only
SIGKILL ends it. It happens when the window is resized quickly (a tmux split, 80x23 ->
30x8 -> 80x23) while the screens under the top one also get the sizes (App._check_resize
sends each resize to the background screens too): seen in tests/system/test_app_tmux.py on the
empty default screen beneath the form, under load.

The guard drops a screen's Resize whose size is not the terminal's size now (`app.size`,
which Textual updates as soon as the terminal reports a new size, before the debounced
screen events go out): such an event is stale, and a newer one for the current size follows
or has already been handled. Full-screen apps only: an inline app's screen is not the
terminal's size, so it is left alone.
"""

from __future__ import annotations

from typing import Any

_MARK = "_ti_tui_resize_guard"


def is_stale(event_size: tuple[int, int], terminal_size: tuple[int, int]) -> bool:
    """Whether a screen Resize to `event_size` (columns, rows) is older than the terminal's
    current size `terminal_size`: any difference means the terminal has since moved on."""
    return tuple(event_size) != tuple(terminal_size)


def install() -> bool:
    """Wrap Textual's `Screen._on_resize` with the stale-size check (idempotent); True when
    it was installed now. Raises nothing: a Textual without that handler is left as it is."""
    from textual.screen import Screen

    original = Screen.__dict__.get("_on_resize")
    if original is None or getattr(original, _MARK, False):
        return False

    async def _on_resize(self: Any, event: Any) -> None:
        app = self.app
        if not app.is_inline and is_stale(event.size, app.size):
            event.stop()
            return
        await original(self, event)

    setattr(_on_resize, _MARK, True)
    Screen._on_resize = _on_resize  # type: ignore[method-assign]
    return True
