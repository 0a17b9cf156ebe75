"""Keys that must stay reachable however narrow the window, and questions whose safe answer is
the default:

- below 58 columns the live screen's short key words no longer fit: the line keeps the most
  used keys beside F1 (it used to cut F1, then Detach, off the right edge); the form's and the
  preview grid's key lines cut F1 off below 55 and 49 columns the same way;
- an ended live screen closes with Esc as well as q and Enter, the summary with q as well as
  Esc (every screen without a text field closes with either);
- the stop and delete questions show the question, what it does and both buttons in a 39x10
  terminal (the delete question's text was pushed out of an 80x11 window), Enter alone keeps
  the run, and F1 shows their keys (a modal screen cut the app's F1 off).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App
from textual.containers import VerticalScroll
from textual.widgets import Footer

from tests.form_pilot import until
from tests.ui.test_train_screen import FakeHandle, TrainApp, run_dir, settle
from ti_tui import terminal
from ti_tui.app import TiTuiApp
from ti_tui.runs_index import RunEntry
from ti_tui.screens.help import HelpScreen
from ti_tui.screens.home_dialogs import ConfirmDelete, ModelsScreen
from ti_tui.screens.summary import SummaryScreen
from ti_tui.screens.train import ConfirmStop, TrainScreen
from trainer.config import TrainConfig


class LiveApp(TrainApp):
    """The live screen under the real app's F1 and size classes."""

    BINDINGS = TiTuiApp.BINDINGS
    HORIZONTAL_BREAKPOINTS = terminal.HORIZONTAL_BREAKPOINTS
    VERTICAL_BREAKPOINTS = terminal.VERTICAL_BREAKPOINTS
    action_help = TiTuiApp.action_help


class OneScreen(App):
    """One screen under the real app's F1 and size classes; keeps what it dismissed with."""

    BINDINGS = TiTuiApp.BINDINGS
    HORIZONTAL_BREAKPOINTS = terminal.HORIZONTAL_BREAKPOINTS
    VERTICAL_BREAKPOINTS = terminal.VERTICAL_BREAKPOINTS
    action_help = TiTuiApp.action_help

    def __init__(self, screen):
        super().__init__()
        self.first = screen
        self.answers: list[object] = []

    def on_mount(self) -> None:
        self.push_screen(self.first, self.answers.append)


def shown_keys(app) -> list:
    return [k for k in app.screen.query_one(Footer).children if k.display]


@pytest.mark.parametrize("width", [57, 50, 45, 39])
async def test_a_narrow_live_key_line_keeps_stop_detach_and_f1(tmp_path, width):
    app = LiveApp(FakeHandle(run_dir(tmp_path, lines=40)))
    async with app.run_test(size=(width, 23)) as pilot:
        await settle(pilot, app.screen)
        await pilot.pause()
        keys = shown_keys(app)
        shown = [k.key for k in keys]
        assert {"q", "d", "f1"} <= set(shown), shown
        assert all(k.region.right <= width for k in keys), [k.region for k in keys]
        f1 = next(k for k in keys if k.key == "f1")
        assert f1.description == "Keys"
        await pilot.press("s")  # a key left off the line still works
        await pilot.pause()
        assert app.handle.calls == ["save"]
        await pilot.press("f1")  # and its page lists every key
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the keys page")
        words = " ".join(what for _, what in app.screen.rows)
        assert "render a preview" in words and "every preview so far" in words


async def test_the_live_key_line_is_whole_again_when_wide(tmp_path):
    app = LiveApp(FakeHandle(run_dir(tmp_path, lines=40)))
    async with app.run_test(size=(45, 23)) as pilot:
        await settle(pilot, app.screen)
        await pilot.resize_terminal(100, 30)
        await until(pilot, lambda: any(k.key == "f1" and k.description == "Help"
                                       for k in shown_keys(app)), "the whole key line")
        assert {"s", "p", "v", "q", "d", "f1"} <= {k.key for k in shown_keys(app)}


async def test_an_ended_run_closes_with_escape(tmp_path):
    app = LiveApp(FakeHandle(run_dir(tmp_path), alive=False, code=0))
    async with app.run_test(size=(80, 23)) as pilot:
        await settle(pilot, app.screen, ended=True)
        await pilot.press("escape")
        await until(pilot, lambda: app.outcome is not None, "the screen closed")
    assert app.outcome == "finished"


async def test_escape_on_a_running_run_stops_nothing(tmp_path):
    app = LiveApp(FakeHandle(run_dir(tmp_path, lines=40)))
    async with app.run_test(size=(80, 23)) as pilot:
        await settle(pilot, app.screen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen) and app.handle.calls == []


async def test_the_summary_closes_with_q(tmp_path):
    config = TrainConfig(root=str(tmp_path), placeholder_token="star",
                         output_dir=str(run_dir(tmp_path)))
    app = OneScreen(SummaryScreen(config))
    async with app.run_test(size=(80, 23)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        await pilot.press("q")
        await until(pilot, lambda: app.answers, "the summary closed")
    # "Leave as is": nothing copied, nothing deleted.
    assert (app.answers[0].copied_to, app.answers[0].deleted) == (None, [])


def delete_question(tmp_path: Path) -> ConfirmDelete:
    folder = tmp_path / "invokeai" / "text-inversion-output" / "green-star2"
    return ConfirmDelete(RunEntry(folder=folder, state="finished", words="finished",
                                  trigger="<green-star>"))


QUESTIONS = {"stop": (lambda tmp: ConfirmStop(), "Stop training?"),
             "delete": (delete_question, "Delete the run")}


@pytest.mark.parametrize("kind", QUESTIONS)
@pytest.mark.parametrize("size", [(39, 10), (40, 11), (80, 11), (80, 23)])
async def test_a_question_fits_whole_and_enter_keeps(tmp_path, kind, size):
    make, title = QUESTIONS[kind]
    app = OneScreen(make(tmp_path))
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.screen is app.first, "the question")
        await pilot.pause()
        box = app.screen.query_one(VerticalScroll)
        assert box.max_scroll_y == 0, (box.size, box.virtual_size)  # nothing scrolled away
        for part in ("#question-title", "#question-text", f"#{kind}-yes", f"#{kind}-keep"):
            region = app.screen.query_one(part).region
            assert region.height > 0 and region.bottom <= size[1], (part, region)
        assert title in str(app.screen.query_one("#question-title").render())
        await pilot.press("enter")
        await until(pilot, lambda: app.answers, "the answer")
    assert app.answers == [False]


@pytest.mark.parametrize("make", [lambda tmp: ConfirmStop(), delete_question,
                                  lambda tmp: ModelsScreen(tmp)])
async def test_f1_works_on_modal_screens(tmp_path, make):
    app = OneScreen(make(tmp_path))
    async with app.run_test(size=(80, 23)) as pilot:
        await until(pilot, lambda: app.screen is app.first, "the modal screen")
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "its keys page")
        assert "ConfirmStop" not in app.screen.title_words  # a title in words
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.first, "back to it")


@pytest.mark.parametrize("width", [39, 45])
async def test_the_form_key_line_keeps_f1_when_narrow(root, width):
    from tests.form_pilot import app_for, ready

    app = app_for(root)
    async with app.run_test(size=(width, 23)) as pilot:
        await ready(pilot)
        await pilot.pause()
        keys = shown_keys(app)
        assert "f1" in [k.key for k in keys] and "ctrl+s" in [k.key for k in keys]
        assert all(k.region.right <= width for k in keys), [k.region for k in keys]


async def test_the_preview_grid_key_line_keeps_f1_when_narrow(tmp_path):
    from ti_tui.screens.preview_grid import PreviewGridScreen

    app = OneScreen(PreviewGridScreen(run_dir(tmp_path)))
    async with app.run_test(size=(39, 10)) as pilot:
        await until(pilot, lambda: app.screen is app.first, "the grid")
        await pilot.pause()
        keys = shown_keys(app)
        assert "f1" in {k.key for k in keys} and "Close" in {k.description for k in keys}
        assert all(k.region.right <= 39 for k in keys), [k.region for k in keys]
