"""Each screen's own words: F1 shows the keys of the screen it is pressed on (built from that
screen's bindings), the live screen's key line keeps every key in a narrow terminal, and a
second `ti-tui demo` opens the form on a fresh folder, as `ti-tui demo --headless` trains in."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Footer

from tests.form_pilot import SIZE, FakeRunner, app_for, ready, started
from tests.ui.test_resume_choice import a_run
from tests.ui.test_train_screen import FakeHandle, TrainApp, run_dir, settle
from ti_tui.app import TiTuiApp
from ti_tui.demo_setup import DEMO_CONCEPT, demo_config
from ti_tui.screens.help import HelpScreen, key_words, screen_keys
from ti_tui.screens.preview_grid import PreviewGridScreen
from ti_tui.screens.summary import SummaryScreen
from ti_tui.screens.train import TrainScreen
from trainer.config import TrainConfig


class HelpTrainApp(TrainApp):
    """The live screen under the real app's F1 (TiTuiApp.action_help)."""

    BINDINGS = TiTuiApp.BINDINGS
    action_help = TiTuiApp.action_help


class OneScreenApp(App):
    """Any screen under the real app's F1."""

    BINDINGS = TiTuiApp.BINDINGS
    action_help = TiTuiApp.action_help

    def __init__(self, screen):
        super().__init__()
        self.first = screen

    def on_mount(self) -> None:
        self.push_screen(self.first)


def help_text(app) -> str:
    page = app.screen
    assert isinstance(page, HelpScreen)
    return " ".join([page.title_words, *(f"{keys} {what}" for keys, what in page.rows), page.foot])


FORM_WORDS = ("start training", "next field", "quit without starting")
"""Words of the form's page, which F1 showed on every screen."""


async def test_f1_on_the_live_screen_lists_its_keys(tmp_path):
    app = HelpTrainApp(FakeHandle(run_dir(tmp_path, lines=40)))
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot, app.screen)
        await pilot.press("f1")
        await pilot.pause()
        words = help_text(app)
        assert "live training screen" in words
        for what in ("save a checkpoint", "render a preview", "every preview so far",
                     "stop the run", "leave the trainer running"):
            assert what in words
        assert not any(w in words for w in FORM_WORDS)        # was always the form's page
        assert "close this screen once the run ended" not in words   # q stops while running
        await pilot.press("escape")
        assert isinstance(app.screen, TrainScreen)


async def test_f1_on_the_preview_viewer_and_the_summary(tmp_path):
    for screen, expected in [
        (PreviewGridScreen(tmp_path), ("previews", "Esc / q", "Bigger", "Smaller", "Reload")),
        (SummaryScreen(TrainConfig(root=str(tmp_path), output_dir=str(tmp_path / "out"),
                                   placeholder_token="<cat>")),
         ("summary", "Ctrl-S", "Leave as is")),
    ]:
        app = OneScreenApp(screen)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("f1")
            await pilot.pause()
            words = help_text(app)
            assert all(e in words for e in expected), words
            assert not any(w in words for w in FORM_WORDS)


async def test_f1_on_the_form_keeps_its_field_keys(root):
    app = app_for(root, restore=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f1")
        await pilot.pause()
        words = help_text(app)
        assert "Tab" in words and "start training" in words and "Ctrl-S" in words
        assert "quit without starting" in words   # Esc's binding as this form has it


def test_help_rows_follow_the_bindings_that_apply_now():
    assert [key_words(k) for k in ("ctrl+s", "escape", "f1", "equals_sign", "q")] == \
        ["Ctrl-S", "Esc", "F1", "=", "q"]

    class Ended(TrainScreen):
        ended = True

        @property
        def narrow(self) -> bool:
            return False

    ended = Ended.__new__(Ended)   # check_action and BINDINGS only: no app, no trainer
    rows = dict(screen_keys(ended))
    assert rows.get("q / Enter / Esc") == "close this screen once the run ended"
    assert not any("save a checkpoint" in what for what in rows.values())


@pytest.mark.parametrize("size", [(60, 20), (74, 24), (100, 32)])
async def test_the_live_key_line_shows_every_key(tmp_path, size):
    # At 60x20 it read "s Save checkpoint  p Preview  v View previews  q Stop  d De".
    app = HelpTrainApp(FakeHandle(run_dir(tmp_path, lines=40)))
    async with app.run_test(size=size) as pilot:
        await settle(pilot, app.screen)
        await pilot.pause()
        keys = [k for k in app.screen.query_one(Footer).children if k.display]
        shown = {k.key for k in keys}
        assert {"s", "p", "v", "q", "d", "f1"} <= shown
        assert all(k.region.right <= size[0] for k in keys), [k.region for k in keys]
        await pilot.press("d")      # a short-worded key still does its job
        await pilot.pause()
    assert app.outcome == "detached"


async def test_a_second_demo_opens_a_fresh_folder(tmp_path):
    root = tmp_path / "root"
    a_run(root / "text-inversion-output" / DEMO_CONCEPT, 607, "early_stop")   # the first demo
    fresh = root / "text-inversion-output" / f"{DEMO_CONCEPT}-2"
    assert Path(demo_config(root=str(root)).output_dir) == fresh    # what --headless trains in
    runner = FakeRunner()
    async with app_for(root, runner, demo=True).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        assert form.text("output_dir") == str(fresh)
        assert form.controls["resume_from_checkpoint"].value is False
        await pilot.press("ctrl+s")
        await started(pilot, runner)
    assert runner.configs[0].output_path == fresh and not runner.configs[0].resume_from_checkpoint
