"""The app flow around the setup form, by keys: preferences, a runner's refusal, help, sizes,
the summary after training, detaching, the derived line and the demo.

Same set-up as tests/ui/test_form.py: the `root` fixture of conftest.py and tests/form_pilot.py.
"""

from __future__ import annotations

import json

import pytest
from textual.widgets import Static

from trainer.config import TrainConfig
from trainer.errors import ConfigError
from ti_tui.preferences import preferences_path, save_preferences
from ti_tui.screens.form import TrainingForm
from ti_tui.screens.help import HelpScreen
from ti_tui.screens.summary import SummaryScreen
from ti_tui.screens.too_small import TooSmallScreen
from ti_tui.widgets.derived import derive_facts, describe_facts, format_rate
from trainer.events import Stopped, StopReason

from tests.form_pilot import (SIZE, FakeRunner, app_for, goto,
                              message, ready, started, type_into, until)

# --- preferences, runner errors, keys, sizes ------------------------------------------------


async def test_preferences_are_restored_except_the_trigger(root):
    saved = TrainConfig(root=str(root), placeholder_token="<old>", train_batch_size=3,
                        learning_rate="0.005:100, 1e-3", mixed_precision="fp16",
                        train_data_dir="/data/mine", early_stopping="none")
    save_preferences(root, saved)
    async with app_for(root).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        assert form.text("placeholder_token") == ""
        assert form.text("train_batch_size") == "3"
        assert form.text("learning_rate") == "0.005:100, 1e-3"
        assert form.controls["mixed_precision"].value == "fp16"
        assert form.controls["early_stopping"].value == "none"
        assert form.rows["dvar_window"].disabled
        await type_into(pilot, form, "placeholder_token", "cat")
        assert form.text("train_data_dir") == "/data/mine"   # a folder the user chose stays


async def test_runner_refusal_returns_to_the_form_at_the_field(root):
    runner = FakeRunner(error=ConfigError("Data directory has a broken image x.png; remove it.",
                                          field="train_data_dir"))
    async with app_for(root, runner, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await type_into(pilot, form, "placeholder_token", "cat")
        await pilot.press("ctrl+s")
        form = await ready(pilot)
        assert form.text("placeholder_token") == "<cat>"
        assert message(form, "train_data_dir").startswith("Data directory has a broken image")
        assert pilot.app.focused.id == "f-train_data_dir"
        await pilot.press("ctrl+s")
        await started(pilot, runner)
    assert len(runner.configs) == 1


async def test_f1_help_and_escape_quits(root):
    app = app_for(root, restore=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, TrainingForm)
        await pilot.press("escape")
    assert app.return_value == "quit"


async def test_too_small_then_resized_back(root):
    """Only below 39x10 (ti_tui/terminal.py) does the notice replace the form."""
    app = app_for(root, restore=False)
    async with app.run_test(size=(30, 8)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, TooSmallScreen), "the notice")
        assert "make the window at least 39x10 (now 30x8)" in str(
            app.screen.query_one(Static).render())
        await pilot.resize_terminal(80, 23)  # an 80x24 window under tmux
        await ready(pilot)
        await pilot.resize_terminal(38, 23)
        await pilot.pause()
        assert isinstance(app.screen, TooSmallScreen)
        await pilot.resize_terminal(39, 10)
        await pilot.pause()
        assert isinstance(app.screen, TrainingForm)
        await pilot.resize_terminal(80, 9)
        await pilot.pause()
        assert isinstance(app.screen, TooSmallScreen)
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert isinstance(app.screen, TrainingForm)


async def test_focused_field_stays_visible_at_80x24(root):
    async with app_for(root, restore=False).run_test(size=(80, 24)) as pilot:
        form = await ready(pilot)
        await goto(pilot, form, "num_processes")
        scroll = form.query_one("#form-fields")
        row = form.rows["num_processes"].region
        assert scroll.region.contains_region(row)


async def test_after_training_the_summary_copies_the_embedding(root):
    runner = FakeRunner()
    app = app_for(root, runner, restore=False)
    async with app.run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await type_into(pilot, form, "placeholder_token", "cat")
        await pilot.press("ctrl+s")
        await started(pilot, runner)
        out = runner.configs[0].output_path
        (out / "checkpoint-10").mkdir(parents=True)
        (out / "learned_embeds.bin").write_bytes(b"vectors")
        (out / "events.jsonl").write_text(json.dumps(Stopped(
            time=1, reason=StopReason.EARLY_STOP, step=40, files=["learned_embeds.bin"],
            ratio=0.2, threshold=0.39).to_dict()) + "\n")
        await pilot.press("d")                      # the fake live screen: run finished
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        assert pilot.app.focused.id == "summary-copy"
        await pilot.press("ctrl+s")
    assert app.return_value == "finished" and app.return_code == 0
    assert (root / "embeddings" / "cat-ti" / "learned_embeds.bin").read_bytes() == b"vectors"
    assert (out / "checkpoint-10").is_dir()         # deleting checkpoints defaults to no


async def test_detaching_prints_how_to_reattach(root):
    runner = FakeRunner()
    app = app_for(root, runner, outcome="detached", restore=False)
    async with app.run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        await type_into(pilot, form, "placeholder_token", "cat")
        await pilot.press("ctrl+s")
        await started(pilot, runner)
        await pilot.press("d")
        await until(pilot, lambda: app.return_value is not None, "the app's exit")
    assert app.return_value == "detached"
    assert app.watch_hint().endswith(f"ti-tui watch {root / 'text-inversion-output' / 'cat'}")


# --- the derived line -------------------------------------------------------------------------


def test_derived_facts_arithmetic():
    values = {"train_batch_size": "2", "gradient_accumulation_steps": "3", "num_processes": "1",
              "max_train_steps": "100", "learning_rate": "5e-4", "scale_lr": True,
              "early_stopping": "dvar", "dvar_window": "50", "num_train_epochs": "100"}
    facts = derive_facts(values, 6)
    assert facts.images_per_update == 6 and facts.full_cycle
    assert facts.effective_lr == pytest.approx(3e-3)
    # 100 passes over the 6 images = 1 epoch of the default 100 repeats (--num_train_epochs' unit)
    assert facts.epochs == pytest.approx(1.0) and facts.earliest_stop == 51
    text = describe_facts(facts)
    assert "6 images" in text and "full-cycle" in text and "DVAR can stop from step 51" in text
    assert "lr 5e-4×6 = 3e-3" in text
    half = derive_facts({**values, "max_train_steps": "7", "early_stopping": "none"}, 4)
    assert half.epochs == pytest.approx(0.105) and not half.full_cycle
    assert "no early stopping" in describe_facts(half)
    assert derive_facts({**values, "train_batch_size": "x"}, None).images_per_update is None
    short = derive_facts({**values, "learning_rate": "0.01:40, 0.001:60"}, 6)
    assert (short.steps, short.limited_by, short.base_lr) == (60, "schedule", 0.01)
    assert format_rate(0.0005) == "5e-4" and format_rate(0.016) == "0.016"


async def test_demo_opens_prefilled_and_starts(tmp_path):
    from ti_tui.demo_setup import demo_data_dir
    from trainer.toy.world import toy_model_dir

    runner = FakeRunner()
    app = app_for(tmp_path / "root", runner, demo=True)
    async with app.run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        assert form.controls["model"].value == str(toy_model_dir())
        assert form.text("train_data_dir") == str(demo_data_dir())
        assert form.text("placeholder_token") == "<green-star>"
        await pilot.press("shift+tab", "shift+tab")       # from the model, back round to Start
        assert pilot.app.focused.id == "start"
        await pilot.press("enter")
        await started(pilot, runner)
    config = runner.configs[0]
    assert config.resolution == 32 and config.output_path == \
        tmp_path / "root" / "text-inversion-output" / "green-star"
    assert not preferences_path(tmp_path / "root").exists()   # the demo keeps user settings
