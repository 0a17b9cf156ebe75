"""SVG snapshots of the setup form and its companion screens at 80x24 and 120x40, and in
the small terminals people get over SSH (80x23 under tmux, splits).

Paths appear on screen, so every snapshot uses a fixed root, /tmp/ti-tui-snap-root, rebuilt
by the fixture (the tiny model is linked in; its own path never shows). Update with
`pytest tests/ui/test_form_snapshots.py --snapshot-update` and look at the report.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from textual.app import App

from textual.widgets import Input

from tests.form_pilot import app_for, until
from tests.form_pilot import ready as form_ready
from tests.helpers import fill_invokeai_root
from ti_tui import terminal
from ti_tui.screens.summary import SummaryScreen
from trainer.config import TrainConfig
from trainer.events import Stopped, StopReason

SNAP_ROOT = Path("/tmp/ti-tui-snap-root")
EMPTY_ROOT = Path("/tmp/ti-tui-snap-empty")


@pytest.fixture
def snap_root(tiny_model_dir, demo_images_dir) -> Path:
    shutil.rmtree(SNAP_ROOT, ignore_errors=True)
    yield fill_invokeai_root(SNAP_ROOT, tiny_model_dir, demo_images_dir, "star")
    shutil.rmtree(SNAP_ROOT, ignore_errors=True)


async def ready(pilot):
    """The form is up, and its text cursors do not blink: a blinking cursor is drawn or not
    depending on when the screenshot is taken (it made these snapshots flaky under load)."""
    form = await form_ready(pilot)
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()
    return form


def form_app(root: Path):
    return app_for(root, restore=False)


async def typed_trigger(pilot) -> None:
    await ready(pilot)
    await pilot.press("tab", *"star")
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_form_with_a_trigger(snap_compare, snap_root, size):
    assert snap_compare(form_app(snap_root), terminal_size=size, run_before=typed_trigger)


def test_form_refuses_to_start(snap_compare, snap_root):
    async def start_empty(pilot):
        await ready(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()

    assert snap_compare(form_app(snap_root), terminal_size=(80, 24), run_before=start_empty)


def test_form_bottom_at_80x24(snap_compare, snap_root):
    async def to_the_end(pilot):
        await typed_trigger(pilot)
        await pilot.press("shift+tab", "shift+tab")   # wraps to the last fields
        await pilot.pause()

    assert snap_compare(form_app(snap_root), terminal_size=(80, 24), run_before=to_the_end)


def test_form_without_models(snap_compare, tiny_model_dir):
    shutil.rmtree(EMPTY_ROOT, ignore_errors=True)
    EMPTY_ROOT.mkdir()
    try:
        assert snap_compare(form_app(EMPTY_ROOT), terminal_size=(80, 24), run_before=ready)
    finally:
        shutil.rmtree(EMPTY_ROOT, ignore_errors=True)


def test_help(snap_compare, snap_root):
    async def help_page(pilot):
        await ready(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(form_app(snap_root), terminal_size=(80, 24), run_before=help_page)


def test_too_small(snap_compare, snap_root):
    async def settle(pilot):
        from ti_tui.screens.too_small import TooSmallScreen

        await until(pilot, lambda: isinstance(pilot.app.screen, TooSmallScreen), "the notice")
        await pilot.pause()

    assert snap_compare(form_app(snap_root), terminal_size=(30, 8), run_before=settle)


@pytest.mark.parametrize("size", [(80, 23), (60, 20), (40, 12)])
def test_form_in_small_terminals(snap_compare, snap_root, size):
    """80x23 (an 80x24 window under tmux): the whole form; 60x20 (a split): labels stacked
    over their controls; 40x12: stacked, no help line, the derived line cut to two rows."""
    assert snap_compare(form_app(snap_root), terminal_size=size, run_before=typed_trigger)


class SummaryApp(App):
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = terminal.HORIZONTAL_BREAKPOINTS  # as TiTuiApp: -narrow, -short
    VERTICAL_BREAKPOINTS = terminal.VERTICAL_BREAKPOINTS

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.config = config

    def on_mount(self) -> None:
        self.push_screen(SummaryScreen(self.config))


def test_summary(snap_compare, snap_root):
    config = TrainConfig(root=str(snap_root), placeholder_token="<star>",
                         output_dir=str(snap_root / "text-inversion-output" / "star"))
    out = config.output_path
    (out / "checkpoint-100").mkdir(parents=True)
    (out / "checkpoint-100" / "meta.json").write_text("{}")
    names = ("star-ti.safetensors", "learned_embeds.safetensors", "learned_embeds.bin")
    for name in names:  # what a one-vector SD 1.x run writes (trainer/formats.py)
        (out / name).write_bytes(b"x")
    files = [str(out / n) for n in names]
    (out / "events.jsonl").write_text(json.dumps(Stopped(
        time=1, reason=StopReason.EARLY_STOP, step=412, files=files, ratio=0.37,
        threshold=0.39).to_dict()) + "\n")
    assert snap_compare(SummaryApp(config), terminal_size=(80, 24))


def test_summary_in_a_small_terminal(snap_compare, snap_root):
    """40x12: the summary scrolls; the outcome and the first choice stay in view."""
    config = TrainConfig(root=str(snap_root), placeholder_token="<star>",
                         output_dir=str(snap_root / "text-inversion-output" / "star"))
    out = config.output_path
    out.mkdir(parents=True)
    (out / "learned_embeds.bin").write_bytes(b"x")
    (out / "events.jsonl").write_text(json.dumps(Stopped(
        time=1, reason=StopReason.EARLY_STOP, step=412, files=[str(out / "learned_embeds.bin")],
        ratio=0.37, threshold=0.39).to_dict()) + "\n")
    assert snap_compare(SummaryApp(config), terminal_size=(40, 12))
