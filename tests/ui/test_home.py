"""The home screen (`ti-tui` with no arguments), driven by keys over a root holding a
running, a finished, a DVAR-stopped, a failed and a damaged run (tests/home_runs.py)."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Footer

from tests.form_pilot import FakeRunner, FakeTrainScreen, until
from tests.home_runs import build_root, home_listing, release, select
from ti_tui import preview_art
from ti_tui.app import make_app
from ti_tui.runs_index import AttachedRun
from ti_tui.screens.form import TrainingForm
from ti_tui.screens.home import HomeScreen
from ti_tui.screens.home_dialogs import ConfirmDelete, ModelsScreen
from ti_tui.screens.preview_grid import (HalfBlockImage, PreviewGrid, PreviewGridScreen,
                                         PreviewTile)
from ti_tui.screens.run_curves import RunCurves
from ti_tui.screens.summary import SummaryScreen
from ti_tui.screens.train import ConfirmStop
from trainer.checkpoint_index import FILES
from trainer.formats import FORMATS


@pytest.fixture
def runs(root):
    """The form tests' InvokeAI root (tiny model, images) plus the six run folders."""
    folders = build_root(root)
    yield folders
    release(root)


@pytest.fixture(autouse=True)
def half_blocks(monkeypatch):
    monkeypatch.setattr(preview_art, "protocol", preview_art.HALF_BLOCKS)


def home_app(root, runner=None, outcome="detached"):
    handles = []

    def live(handle):
        handles.append(handle)
        return FakeTrainScreen(handle, outcome)

    app = make_app(root=root, runner=runner or FakeRunner(), train_screen=live, restore=False,
                   home=[])
    app.animation_level = "none"
    app.handles = handles
    return app


async def home_ready(pilot) -> HomeScreen:
    return await home_listing(pilot, 6)


def row_text(home: HomeScreen, name: str) -> str:
    table = home.query_one(DataTable)
    row = [e.folder.name for e in home.entries].index(name)
    return " | ".join(str(cell) for cell in table.get_row_at(row))


@pytest.mark.parametrize("size", [(80, 24), (80, 23)])
async def test_lists_every_kind_with_its_figures(runs, root, size):
    app = home_app(root)
    async with app.run_test(size=size) as pilot:
        home = await home_ready(pilot)
        assert home.entries[0].folder.name == "cat"
        assert "running" in row_text(home, "cat") and "30/1000" in row_text(home, "cat")
        # 80 wide: Model and L_det give way (the detail line has both), so nothing is cut.
        assert "tiny (SD1)" not in row_text(home, "moon")
        table = home.query_one(DataTable)
        assert table.virtual_size.width <= table.size.width
        assert "DVAR stop @606" in row_text(home, "moon")
        assert "0.38" in row_text(home, "moon")  # the last DVAR ratio
        assert "star-ti.safetensors" in row_text(home, "star")
        assert "failed" in row_text(home, "heart")
        assert "damaged" in row_text(home, "broken")
        assert "not a run" in row_text(home, "notes")
        await select(pilot, home, "heart")
        detail = str(home.query_one("#home-detail").render())
        assert "failed: Image heart-2.png is not an image." in detail
        await select(pilot, home, "moon")
        detail = str(home.query_one("#home-detail").render()).splitlines()
        assert "model sd-1/main/tiny" in detail[2]
        best = home.selected.best_file.name  # the standalone file (trainer/formats.py)
        assert best.endswith(".safetensors") and "learned_embeds" not in best
        assert detail[3].startswith(f"use: {best} in ")
        assert detail[3].endswith("text-inversion-output/moon")
        assert all(len(line) <= 78 for line in detail)
        footer = app.screen.query_one(Footer)
        keys = {b.key_display or b.key for (_, b, _, _) in footer.screen.active_bindings.values()
                if b.show}
        assert {"n", "r", "⏎", "s", "p", "x", "m", "q"} <= keys


async def test_wide_shows_every_column(runs, root):
    app = home_app(root)
    async with app.run_test(size=(120, 30)) as pilot:
        home = await home_ready(pilot)
        assert "tiny (SD1)" in row_text(home, "moon") and "0.2002" in row_text(home, "moon")
        table = home.query_one(DataTable)
        assert table.virtual_size.width <= table.size.width


async def test_a_short_screen_keeps_the_list_and_one_detail_line(runs, root):
    """39x10: the details shrink to the file to use, so the list shows runs, not only its
    header (it had five rows of details)."""
    app = home_app(root)
    async with app.run_test(size=(39, 10)) as pilot:
        home = await home_ready(pilot)
        await select(pilot, home, "star")
        table, detail = home.query_one(DataTable), home.query_one("#home-detail")
        assert detail.size.height == 1 and table.size.height >= 5
        assert str(detail.render()) == f"use: {home.selected.best_file.name}"
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: detail.size.height >= 4, "the full details at 80x24")


async def test_the_title_names_every_runs_folder_at_80(runs, root, tmp_path):
    """The title keeps the end of each place, so --runs folders stay named."""
    extra = tmp_path / ("a-long-folder-name-" * 3) / "more-runs"
    extra.mkdir(parents=True)
    app = make_app(root=root, runner=FakeRunner(), restore=False, home=[extra])
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "the home screen")
        title = str(app.screen.query_one("#home-title").render())
        assert len(title) <= 78 and "text-inversion-output" in title
        assert title.endswith("/more-runs")


async def test_enter_on_a_finished_run_opens_its_summary(runs, root):
    app = home_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        home = await home_ready(pilot)
        await select(pilot, home, "moon")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        assert app.screen.config.output_path == runs["moon"]
        assert "DVAR" in app.screen.outcome.describe()
        curves = app.screen.query_one(RunCurves)
        assert curves.state.step == 606 and len(curves.state.ldet_hist) > 0
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "back home")
        await until(pilot, lambda: app.screen.selected is not None
                    and app.screen.selected.folder == runs["moon"], "the cursor kept")


async def test_enter_on_a_running_run_watches_it(runs, root):
    app = home_app(root, outcome="detached")
    async with app.run_test(size=(80, 24)) as pilot:
        home = await home_ready(pilot)
        await select(pilot, home, "cat")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FakeTrainScreen), "the live screen")
        handle = app.handles[-1]
        assert isinstance(handle, AttachedRun) and handle.output_dir == runs["cat"]
        assert handle.is_alive()
        await pilot.press("d")  # detach: the run goes on
        await home_ready(pilot)


async def test_stop_asks_then_stops_through_the_folder(runs, root):
    app = home_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        home = await home_ready(pilot)
        await select(pilot, home, "cat")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmStop), "the question")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "back home")
        assert not (runs["cat"] / "control" / "stop").exists()
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmStop), "the question")
        await pilot.press("y")
        await until(pilot, lambda: (runs["cat"] / "control" / "stop").is_file(), "the stop")
        await select(pilot, app.screen, "star")
        await pilot.press("s")  # not running: refused with a note, nothing asked
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)


async def test_delete_asks_and_keep_is_the_default(runs, root):
    app = home_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        home = await home_ready(pilot)
        await select(pilot, home, "heart")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDelete), "the question")
        assert app.focused.id == "delete-keep"
        await pilot.press("enter")  # the default button keeps it
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "back home")
        assert runs["heart"].is_dir()
        await pilot.press("delete")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDelete), "the question")
        await pilot.press("y")
        await until(pilot, lambda: not runs["heart"].exists(), "the deletion")
        await until(pilot, lambda: len(app.screen.entries) == 5, "the list without it")
        await select(pilot, app.screen, "cat")
        await pilot.press("x")  # a running run is never deleted
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen) and runs["cat"].is_dir()


async def test_resume_opens_the_form_from_run_toml_with_resume_ticked(runs, root):
    checkpoint = runs["moon"] / "checkpoint-606"
    checkpoint.mkdir()
    for name in FILES:
        (checkpoint / name).write_bytes(b"x")
    runner = FakeRunner()
    app = home_app(root, runner=runner)
    async with app.run_test(size=(100, 40)) as pilot:
        home = await home_ready(pilot)
        await select(pilot, home, "moon")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, TrainingForm), "the form")
        form = app.screen
        await until(pilot, lambda: form.controls["resume_from_checkpoint"].value is True,
                    "Resume ticked")
        assert form.controls["output_dir"].value == str(runs["moon"])
        assert form.controls["placeholder_token"].value in ("moon", "<moon>")
        await pilot.press("escape")  # from home, Esc goes back to the list
        await home_ready(pilot)
        assert runner.configs == []


async def test_new_run_models_and_quit(runs, root):
    app = home_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await home_ready(pilot)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, TrainingForm), "the form")
        shown = {b.description for (_, b, enabled, _) in app.screen.active_bindings.values()
                 if b.key == "escape" and enabled}
        assert shown == {"Runs"}  # Esc goes back to the list, and the footer says so
        await pilot.press("escape")
        await home_ready(pilot)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, ModelsScreen)
                    and "sd-1/main/tiny" in str(app.screen.query_one("#models-list").render()),
                    "the models list")
        await pilot.press("escape")
        await home_ready(pilot)
        await pilot.press("q")
        await until(pilot, lambda: app.return_value == "quit", "the exit")
    assert app.return_code in (0, None)


async def test_previews_grid_from_step_0_and_refusals(runs, root):
    app = home_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        home = await home_ready(pilot)
        await select(pilot, home, "broken")
        await pilot.press("enter")  # a damaged folder cannot be opened: a note, no crash
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)
        await select(pilot, app.screen, "star")
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, PreviewGridScreen)
                    and len(app.screen.query(PreviewTile)) == 3, "the grid")
        steps = [tile.step for tile in app.screen.query(PreviewTile)]
        assert steps == [0, 20, 40]
        assert len(app.screen.query(HalfBlockImage)) == 3
        await pilot.press("q")
        await home_ready(pilot)


async def test_a_new_preview_of_a_running_run_appears_in_the_grid(runs, root):
    from tests.home_runs import write_png

    app = home_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        home = await home_ready(pilot)
        await select(pilot, home, "cat")
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, PreviewGridScreen)
                    and len(app.screen.query(PreviewTile)) == 3, "the grid")
        write_png(runs["cat"] / "previews" / "step-30.png", 30)
        await pilot.press("r")
        await until(pilot, lambda: len(app.screen.query(PreviewTile)) == 4, "the new tile")


async def test_the_summary_shows_the_preview_grid(runs, root):
    app = home_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        home = await home_ready(pilot)
        await select(pilot, home, "star")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen)
                    and len(app.screen.query_one(PreviewGrid).query(PreviewTile)) == 3,
                    "the summary's grid")
        steps = [tile.step for tile in app.screen.query(PreviewTile)]
        assert steps == [0, 20, 40]


def test_the_command_line_picks_home_or_form(tmp_path, monkeypatch):
    """`ti-tui` opens home (with --runs folders), `ti-tui --gui` the form; the root comes
    from --root, then $INVOKEAI_ROOT."""
    from ti_tui.cli import _parse_gui

    monkeypatch.setenv("INVOKEAI_ROOT", str(tmp_path / "env-root"))
    plain = _parse_gui([])
    assert (plain.gui, plain.runs, plain.root) == (False, [], tmp_path / "env-root")
    extra = _parse_gui(["--runs", str(tmp_path / "a"), "--runs", str(tmp_path / "b"),
                        "--root", str(tmp_path / "r"), "--preview", "half-blocks"])
    assert extra.runs == [tmp_path / "a", tmp_path / "b"] and extra.root == tmp_path / "r"
    assert extra.preview == "half-blocks" and not extra.gui
    assert _parse_gui(["--gui"]).gui
    assert _parse_gui(["--model", "x"]) is None  # training flags: headless training


def test_without_a_terminal_the_runs_are_listed_as_plain_lines(runs, root):
    """`ti-tui` from a pipe or a cron job: no screen, so the runs as lines and exit 2."""
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "ti_tui.cli", "--root", str(root)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=120, env=os.environ | {"PYTHONPATH": os.getcwd()})
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert lines[0].startswith("cat  <cat>  running  step 30/1000")
    assert any(line.startswith("moon  <moon>  stopped early by DVAR at step 606") and
               line.endswith(FORMATS["standalone"].file_name("<moon>")) for line in lines)
    assert any(line.startswith("broken  -  damaged") for line in lines)
    assert result.stderr.startswith("ti-tui: the home screen needs a terminal it can draw on")
    assert "\x1b" not in result.stdout  # plain text: no escape codes in a log
