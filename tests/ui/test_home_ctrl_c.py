"""Ctrl-C on the home screen leaves it, as q does (exit 0, running trainers go on): on a
launcher's first screen it is the key people press to get out, and Textual alone only said
"press ctrl+q to quit"."""

from __future__ import annotations

from tests.form_pilot import until
from tests.home_runs import home_listing
from tests.ui.test_home import half_blocks, home_app, runs  # noqa: F401 (fixtures)
from ti_tui.screens.help import HelpScreen


async def test_ctrl_c_quits_the_home_screen_with_0(runs, root):  # noqa: F811
    app = home_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await home_listing(pilot, 6)
        await pilot.press("f1")  # the keys page says so
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the keys page")
        assert "q / Esc / Ctrl-C" in dict((what, keys) for keys, what in app.screen.rows)[
            "quit; running trainers go on"]
        await pilot.press("escape")
        await home_listing(pilot, 6)
        await pilot.press("ctrl+c")
        await until(pilot, lambda: app.return_value == "quit", "the exit")
    assert app.return_code in (0, None)
    assert runs["cat"].is_dir()
