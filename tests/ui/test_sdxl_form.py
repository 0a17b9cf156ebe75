"""An SDXL model from the setup form: found in an InvokeAI root, its family and both token
widths shown, the native size offered, and the config the form hands over trains."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from trainer import train

from tests.form_pilot import SIZE, FakeRunner, app_for, message, ready, started, type_into


@pytest.fixture
def sdxl_root(tiny_sdxl_dir, demo_images_dir):
    """An InvokeAI 3.x root holding only the tiny SDXL model, and a data folder `cat`."""
    root = Path(tempfile.mkdtemp(prefix="ti", dir="/tmp"))
    models = root / "models" / "sdxl" / "main"
    models.mkdir(parents=True)
    (models / "tiny-xl").symlink_to(tiny_sdxl_dir, target_is_directory=True)
    shutil.copytree(demo_images_dir, root / "text-inversion-training-data" / "cat")
    yield root
    shutil.rmtree(root, ignore_errors=True)


async def test_an_sdxl_model_from_the_form_shows_its_widths_and_trains(sdxl_root):
    runner = FakeRunner()
    async with app_for(sdxl_root, runner, restore=False).run_test(size=SIZE) as pilot:
        form = await ready(pilot)
        assert message(form, "model").startswith("SDXL, 768 + 1280-wide tokens, native 64 px")
        assert form.resolution_picker.value == "64"        # the model's native size
        await type_into(pilot, form, "placeholder_token", "cat")
        await type_into(pilot, form, "initializer_token", "star")
        for name, text in [("max_train_steps", "2"), ("train_batch_size", "2"),
                           ("num_vectors", "2"), ("seed", "3")]:
            await type_into(pilot, form, name, text)
        assert form.check_notes()["placeholder_token"].text == "use <cat> in your prompts"
        await pilot.press("ctrl+s")
        await started(pilot, runner)
    assert len(runner.configs) == 1
    config = runner.configs[0]
    assert config.model == str(sdxl_root / "models" / "sdxl" / "main" / "tiny-xl")
    events: list = []
    result = train(config, emit=events.append)
    assert result.reason == "max_steps" and result.step == 2
    assert result.vectors.shape == (2, 2048)
    run_started = next(e for e in events if e.type == "run_started")
    assert run_started.model["family"] == "sdxl" and run_started.trigger == "<cat>"


def test_the_dashboard_header_names_the_family_and_both_widths():
    import dataclasses
    import io
    from pathlib import Path

    from rich.console import Console

    from ti_tui.text_panels import header_panel
    from ti_tui.state import RunState, fold_all
    from trainer.event_file import load_events
    from trainer.events import RunStarted

    sample = Path(__file__).parents[1] / "data" / "events_sample.jsonl"
    started = next(e for e in load_events(sample) if isinstance(e, RunStarted))
    started = dataclasses.replace(started, model={
        **started.model, "path": "/m/xl", "family": "sdxl",
        "parts": {"clip_l": 768, "clip_g": 1280}})
    state = RunState()
    fold_all([started], state)
    console = Console(width=140, record=True, file=io.StringIO(), color_system=None)
    console.print(header_panel(state, 140, 4))
    assert "/m/xl (SDXL, 768 + 1280-wide tokens," in console.export_text()
