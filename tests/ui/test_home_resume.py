"""Resuming from the home screen opens THAT run, and the list tells runs of one trigger apart
at every width, cutting no number (the newcomer's trial: green-star, green-star2, green-star3
and green-star-2, all of <green-star>).

The root is tests/home_runs.py's, plus `moon2`: a second run of <moon> whose run.toml names
its own folder and the data folder `cat` (both under the root's standard folders, where the
form's "folders follow the trigger" rule used to rebuild them as .../moon).
"""

from __future__ import annotations

import shutil

import pytest
from textual.widgets import DataTable, Footer
from textual.widgets._footer import FooterKey

from tests.form_pilot import FakeRunner, FakeTrainScreen, app_for, ready, type_into, until
from tests.home_runs import build_root, home_listing, release, select
from ti_tui.app import make_app
from ti_tui.screens.form import TrainingForm
from ti_tui.screens.home import HomeScreen
from ti_tui.screens.home_fit import short_count
from trainer.checkpoint_index import FILES
from trainer.config import TrainConfig
from trainer.errors import UserError


def add_checkpoint(folder, step: int) -> None:
    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir()
    for name in FILES:
        (checkpoint / name).write_bytes(b"x")


@pytest.fixture
def runs(root):
    """The six runs of tests/home_runs.py, and moon2 (a second run of <moon>)."""
    folders = build_root(root)
    moon2 = root / "text-inversion-output" / "moon2"
    shutil.copytree(folders["moon"], moon2)
    config = TrainConfig.from_toml(moon2 / "run.toml").replace(
        output_dir=str(moon2), train_data_dir=str(root / "text-inversion-training-data" / "cat"))
    (moon2 / "run.toml").write_text(config.to_toml())
    add_checkpoint(moon2, 606)
    folders["moon2"] = moon2
    yield folders
    release(root)


def home_app(root, runner=None):
    app = make_app(root=root, runner=runner or FakeRunner(),
                   train_screen=lambda handle: FakeTrainScreen(handle, "detached"),
                   restore=False, home=[])
    app.animation_level = "none"
    return app


async def home_ready(pilot) -> HomeScreen:
    return await home_listing(pilot, 7)


async def test_resume_fills_the_form_from_that_runs_run_toml(runs, root):
    runner = FakeRunner()
    app = home_app(root, runner)
    async with app.run_test(size=(100, 40)) as pilot:
        home = await home_ready(pilot)
        await select(pilot, home, "moon2")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, TrainingForm), "the form")
        form = await ready(pilot)
        output, data = form.controls["output_dir"], form.controls["train_data_dir"]
        # moon2's own folders, not ROOT/<base>/moon rebuilt from the trigger.
        assert output.value == str(runs["moon2"])
        assert data.value == str(root / "text-inversion-training-data" / "cat")
        assert form.controls["placeholder_token"].value in ("moon", "<moon>")
        assert form.controls["resume_from_checkpoint"].value is True
        # Editing the trigger points both folders at the new word; typing the run's trigger
        # again gives the run's own folders back.
        await type_into(pilot, form, "placeholder_token", "sun")
        await until(pilot, lambda: output.value == str(root / "text-inversion-output" / "sun"),
                    "the output folder following the new trigger")
        assert data.value == str(root / "text-inversion-training-data" / "sun")
        await type_into(pilot, form, "placeholder_token", "moon")
        await until(pilot, lambda: output.value == str(runs["moon2"]), "moon2 again")
        assert data.value == str(root / "text-inversion-training-data" / "cat")
        await until(pilot, lambda: form.controls["resume_from_checkpoint"].value is True,
                    "Resume ticked again")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: runner.configs, "the start")
    started = runner.configs[0]
    assert started.output_path == runs["moon2"]
    assert started.resume_from_checkpoint == "latest"


async def test_a_run_named_after_its_trigger_still_follows_it(runs, root):
    app = home_app(root)
    async with app.run_test(size=(100, 40)) as pilot:
        home = await home_ready(pilot)
        await select(pilot, home, "moon")
        await pilot.press("r")
        form = await ready(pilot)
        assert form.controls["output_dir"].value == str(runs["moon"])
        await type_into(pilot, form, "placeholder_token", "sun")
        await until(pilot, lambda: form.controls["output_dir"].value ==
                    str(root / "text-inversion-output" / "sun"), "the folder following")


async def test_a_config_or_a_refused_start_keeps_its_folders(root):
    """`ti-tui --gui --config run.toml` and the form reopened after a refused start open on a
    config like a resume does: a folder named otherwise than the trigger is kept."""
    own = root / "text-inversion-output" / "cat-v2"
    config = TrainConfig(model="sd-1/main/tiny", root=str(root), placeholder_token="<cat>",
                         train_data_dir=str(root / "text-inversion-training-data" / "cat"),
                         output_dir=str(own))
    runner = FakeRunner(error=UserError("The model is busy.", field="model"))
    app = app_for(root, runner, defaults=config, restore=False)
    async with app.run_test(size=(100, 40)) as pilot:
        form = await ready(pilot)
        assert form.controls["output_dir"].value == str(own)
        await pilot.press("ctrl+s")  # refused once: the form comes back with the config
        await until(pilot, lambda: isinstance(app.screen, TrainingForm)
                    and app.screen is not form, "the form again")
        again = await ready(pilot)
        assert again.controls["output_dir"].value == str(own)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: runner.configs, "the start")
    assert runner.configs[0].output_path == own


async def test_saved_folders_without_a_trigger_follow_the_typed_one(root):
    """Saved preferences keep the folders but never the trigger: the last run's folder must
    not be offered (with Resume ticked) to a new word."""
    last = root / "text-inversion-output" / "old"
    last.mkdir(parents=True)
    add_checkpoint(last, 10)
    config = TrainConfig(model="sd-1/main/tiny", root=str(root), output_dir=str(last))
    app = app_for(root, defaults=config, restore=False)
    async with app.run_test(size=(100, 40)) as pilot:
        form = await ready(pilot)
        assert form.controls["output_dir"].value == ""
        assert form.controls["resume_from_checkpoint"].value is False
        await type_into(pilot, form, "placeholder_token", "sun")
        await until(pilot, lambda: form.controls["output_dir"].value ==
                    str(root / "text-inversion-output" / "sun"), "the folder following")


def cells(home: HomeScreen) -> list[dict[str, str]]:
    table = home.query_one(DataTable)
    names = [str(column.label) for column in table.columns.values()]
    return [dict(zip(names, map(str, table.get_row_at(row)))) for row in range(table.row_count)]


@pytest.mark.parametrize("size", [(39, 10), (40, 12), (52, 16), (64, 20), (80, 24),
                                  (100, 30), (140, 30)])
async def test_no_number_or_file_name_is_cut_at_any_width(runs, root, size):
    app = home_app(root)
    async with app.run_test(size=size) as pilot:
        home = await home_ready(pilot)
        table = home.query_one(DataTable)
        await until(pilot, lambda: table.size.width > 0, "the table laid out")
        rows = cells(home)
        assert table.virtual_size.width <= table.scrollable_content_region.width
        # The runs of <moon> are told apart: by the Run column, whatever the width.
        assert "Run" in rows[0]
        assert {row["Run"] for row in rows} >= {"moon", "moon2"}
        for entry, row in zip(home.entries, rows):
            if "Step" in row and entry.max_steps:
                assert row["Step"] in (f"{entry.step}/{entry.max_steps}",
                                       f"{entry.step}/{short_count(entry.max_steps)}",
                                       str(entry.step))
            if "Best file" in row and entry.best_file:
                assert row["Best file"] == entry.best_file.name
        # The key line: every key drawn whole inside the window; F1 lists the rest.
        footer = home.query_one(Footer)
        await until(pilot, lambda: footer.query(FooterKey), "the key line")
        keys = list(footer.query(FooterKey))
        assert all(key.region.right <= size[0] for key in keys)
        shown = {key.key for key in keys}
        assert {"enter", "n", "r"} <= shown
        if size[0] < 80:
            assert "f1" in shown and "m" not in shown
        else:
            assert {"q", "s", "p", "x", "m"} <= shown


async def test_at_40_columns_the_step_total_is_short_and_keys_left_off_still_work(runs, root):
    app = home_app(root)
    async with app.run_test(size=(40, 12)) as pilot:
        home = await home_ready(pilot)
        rows = cells(home)
        moon = rows[[e.folder.name for e in home.entries].index("moon")]
        assert moon["Step"] == "606/1k" and moon["Run"] == "moon"
        assert "Best file" not in moon  # whole or not at all: the details line names it
        await select(pilot, home, "moon")
        assert str(home.query_one("#home-detail").render()).startswith("use: moon")
        await pilot.press("m")  # not on the key line at this width, and still a key
        await until(pilot, lambda: not isinstance(app.screen, HomeScreen), "the models list")


async def test_the_details_name_the_trigger_when_its_column_gave_way(runs, root):
    app = home_app(root)
    async with app.run_test(size=(60, 24)) as pilot:
        home = await home_ready(pilot)
        await select(pilot, home, "moon2")
        assert "Trigger" not in cells(home)[0]
        detail = str(home.query_one("#home-detail").render()).splitlines()
        assert detail[0].endswith("text-inversion-output/moon2")
        assert detail[1].startswith("<moon> · stopped early by DVAR at step 606")
        assert all(len(line) <= 58 for line in detail)


async def test_an_empty_list_says_where_it_looked_and_the_key_first(root):
    app = home_app(root)
    async with app.run_test(size=(80, 12)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "the home screen")
        detail = app.screen.query_one("#home-detail")
        await until(pilot, lambda: "Press n" in str(detail.render()), "the empty note")
        assert str(detail.render()) == (f"Press n to start a run: no runs under "
                                        f"{root / 'text-inversion-output'} (it does not exist).")


async def test_the_delete_question_names_the_run_not_only_its_trigger(runs, root):
    from textual.widgets import Label

    from ti_tui.screens.home_dialogs import ConfirmDelete

    app = home_app(root)
    async with app.run_test(size=(100, 30)) as pilot:
        home = await home_ready(pilot)
        await select(pilot, home, "moon2")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDelete), "the question")
        assert str(app.screen.query_one(Label).render()) == "Delete the run moon2 (<moon>)?"
        await pilot.press("n")
        await home_ready(pilot)
    assert runs["moon2"].is_dir()


async def test_f1_on_the_home_screen_shows_the_home_keys(tmp_path):
    from ti_tui.screens.help import HelpScreen

    app = make_app(root=tmp_path / "root", runner=FakeRunner(), home=[])
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "the home screen")
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the key page")
        page = app.screen
        words = " ".join(what for _, what in page.rows)
        assert page.title_words == "Keys: the runs"
        assert "resume" in words.lower() and "next field" not in words  # not the form's page
