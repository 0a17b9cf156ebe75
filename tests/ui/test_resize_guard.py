"""A screen never lays itself out at a size the terminal has already left (ti_tui/resize_guard):
the stale resizes that locked the app into resizing for ever after a quick 80x23 -> 30x8 ->
80x23 (tests/system/test_app_tmux.py reproduces that end to end)."""

from __future__ import annotations

import pytest
from textual import events
from textual.app import App
from textual.geometry import Size
from textual.screen import Screen
from textual.widgets import Static

from ti_tui import resize_guard
from ti_tui.terminal import HORIZONTAL_BREAKPOINTS, VERTICAL_BREAKPOINTS


@pytest.mark.parametrize("event, terminal, stale", [
    ((30, 8), (80, 23), True),
    ((80, 8), (80, 23), True),
    ((80, 23), (80, 23), False),
])
def test_a_size_other_than_the_terminals_is_stale(event, terminal, stale):
    assert resize_guard.is_stale(event, terminal) is stale


def test_install_wraps_the_handler_once():
    resize_guard.install()
    wrapped = Screen.__dict__["_on_resize"]
    assert resize_guard.install() is False
    assert Screen.__dict__["_on_resize"] is wrapped


class _Form(Screen):
    def compose(self):
        yield Static("a field")


class _App(App):
    HORIZONTAL_BREAKPOINTS = HORIZONTAL_BREAKPOINTS
    VERTICAL_BREAKPOINTS = VERTICAL_BREAKPOINTS

    def on_mount(self) -> None:
        self.push_screen(_Form())


async def test_a_stale_resize_never_lays_a_screen_out_at_the_old_size():
    resize_guard.install()
    app = _App()
    async with app.run_test(size=(80, 23)) as pilot:
        await pilot.pause()
        under = app.screen_stack[0]  # the screen beneath, which gets resizes too
        assert under.has_class("-wide")
        under.post_message(events.Resize(Size(30, 8), Size(30, 8)))  # the terminal is 80x23
        await pilot.pause()
        await pilot.pause()
        assert under.has_class("-wide") and not under.has_class("-narrow")
        # A real resize still goes through.
        await pilot.resize_terminal(50, 15)
        await pilot.pause()
        assert app.screen.has_class("-narrow") and app.screen.has_class("-short")
