"""The dashboard panels (ti_tui/text_panels.py, chart_panels.py, declared in panels.py, laid out
by dashboard.py) rendered to plain text at 80 and 140 columns."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from rich.console import Console

from trainer.event_file import load_events
from trainer.events import Phase, RunStarted, Step, Stopped, StopReason, Warning
from ti_tui import chart_panels, dashboard, panel_format, panels, text_panels
from ti_tui.charts import Line, chart, downsample
from ti_tui.state import RunState, fold_all

DATA = Path(__file__).parents[1] / "data"
EVENTS = list(load_events(DATA / "events_sample.jsonl"))
"""The recorded run of an older trainer, read as typed events (the compatibility fixture)."""
WIDTHS = [80, 140]


def state_at(step: int | None = None, **config) -> RunState:
    """The recorded run folded up to `step` (all of it by default), config overridden."""
    events = EVENTS
    if step is not None:
        events = [e for e in EVENTS if isinstance(e, (Phase, RunStarted, Warning))
                  or getattr(e, "step", 0) <= step and not isinstance(e, Stopped)]
    state = RunState(base_dir=str(DATA))
    for event in events:
        if isinstance(event, RunStarted) and config:
            event = dataclasses.replace(event, config={**event.config, **config})
        fold_all([event], state)
    return state


def text(renderable, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def show(panel_fn, state: RunState, width: int, height: int = 16) -> str:
    out = text(panel_fn(state, width, height), width)
    lines = out.rstrip("\n").split("\n")
    assert len(lines) == height and all(len(line) <= width for line in lines)
    return out


@pytest.fixture(scope="module")
def final() -> RunState:
    return state_at()


@pytest.mark.parametrize("width", WIDTHS)
def test_header(final, width):
    out = show(text_panels.header_panel, final, width, 4)
    assert "<my-cat>" in out and "stable-diffusion-1.5" in out and "cuda:0" in out
    assert "fp16" in out and "1 process" in out and "stopped early by DVAR" in out
    if width >= 140:
        assert "output /home/ada/invokeai/text-inversion-output/my-cat" in out


@pytest.mark.parametrize("width", WIDTHS)
def test_progress_finished(final, width):
    out = show(text_panels.progress_panel, final, width, 7)
    assert "437 / 1,000" in out and "43.7%" in out and "epoch 3.50" in out
    assert "elapsed 4:14" in out and "steps/s" in out and "img/s" in out
    assert "finished at step 437: stopped early by DVAR" in out


@pytest.mark.parametrize("width", WIDTHS)
def test_progress_running_shows_eta_and_earliest_stop(width):
    out = show(text_panels.progress_panel, state_at(120), width, 7)
    assert "120 / 1,000" in out and "ETA 8:" in out and "DVAR can stop from step 283" in out


@pytest.mark.parametrize("width", WIDTHS)
def test_loss(final, width):
    out = show(chart_panels.loss_panel, final, width, 16)
    assert "loss 0.1629" in out and "smoothed 0.2205" in out and "L_det 0.12793" in out
    assert "200" in out and "400" in out  # x ticks in steps


@pytest.mark.parametrize("width", WIDTHS)
def test_dvar_converged(final, width):
    out = show(chart_panels.dvar_panel, final, width, 16)
    assert "converged at step 437" in out and "ratio 0.387" in out and "282/282" in out
    assert "ema_pct -3.24%" in out and "hall 0.106" in out and "trend -1.2e-05" in out
    assert "0.39" in out  # the threshold line is labelled on the axis


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("step, words", [
    (120, "collecting window 120/282"),
    (366, "ratio 0.56 > 0.39, still learning"),
])
def test_dvar_while_running(step, words, width):
    assert words in show(chart_panels.dvar_panel, state_at(step), width, 16)


@pytest.mark.parametrize("width", WIDTHS)
def test_dvar_off_and_ldet_off(width):
    assert "DVAR off" in show(chart_panels.dvar_panel, state_at(300, early_stopping="none"), width)
    assert "L_det off" in show(chart_panels.dvar_panel, state_at(300, dvar_eval_every=0), width)


@pytest.mark.parametrize("width", WIDTHS)
def test_schedule(final, width):
    out = show(text_panels.schedule_panel, final, width, 8)
    assert "lr 2.00e-03" in out and "next 1.00e-03 at step 600" in out
    assert "clip norm 1" in out and "grad norm 0.150" in out
    assert "skipped fp16 updates 2" in out


@pytest.mark.parametrize("width", WIDTHS)
def test_files(final, width):
    out = show(text_panels.files_panel, final, width, 9)
    assert "final: learned_embeds.safetensors" in out and "checkpoint-437" in out
    assert "previews/step-000400-0.png" in out and "warnings (2)" in out


@pytest.mark.parametrize("width", WIDTHS)
def test_preview_draws_the_picture(final, width):
    out = show(chart_panels.preview_panel, final, width // 3, 14)
    assert "Preview · step 400" in out and "a photo of <my-cat>" in out and "▀" in out


def test_preview_of_a_missing_file_says_so():
    state = state_at()
    state.base_dir = "/nowhere"
    assert "cannot read step-000400-0.png" in show(chart_panels.preview_panel, state, 40, 10)


@pytest.mark.parametrize("spec", panels.PANELS, ids=lambda spec: spec.name)
def test_every_panel_draws_an_empty_state(spec):
    show(spec.draw, RunState(), 80, 10)


def test_dashboard_80x24_has_only_progress_loss_and_dvar(final):
    out = text(dashboard.render_dashboard(final, 80, 24), 80)
    assert len(out.rstrip("\n").split("\n")) == 24
    assert "Loss" in out and "DVAR" in out and "437 / 1,000" in out
    assert "Schedule" not in out and "Files" not in out and "Preview" not in out


def test_dashboard_160x50_has_every_panel(final):
    out = text(dashboard.render_dashboard(final, 160, 50), 160)
    lines = out.rstrip("\n").split("\n")
    assert len(lines) == 50 and max(len(line) for line in lines) <= 160
    for title in ("ti-tui", "Schedule", "Files", "Loss", "DVAR", "Preview · step 400"):
        assert title in out


@pytest.mark.parametrize("width, height", [(80, 24), (160, 50)])
def test_dashboard_keeps_wrapped_panel_text(width, height):
    out = text(dashboard.render_dashboard(state_at(120), width, height), width)
    assert "The ratio chart starts after 282" in out
    # once in the progress panel, once at the end of the DVAR panel's wrapped sentence
    assert out.count("step 283") == 2


def test_live_frames_reuse_charts_for_a_second_but_not_the_progress():
    state = state_at(120)
    clock = [100.0]
    slow = dashboard.SlowPanels(every=1.0, clock=lambda: clock[0])
    first = text(dashboard.render_dashboard(state, 100, 30, slow=slow), 100)
    loss_at_120 = f"loss {panel_format.short_float(state.loss)}"
    assert "120 / 1,000" in first and loss_at_120 in first

    fold_all([e for e in EVENTS if isinstance(e, Step) and 120 < e.step <= 200], state)
    loss_at_200 = f"loss {panel_format.short_float(state.loss)}"
    assert loss_at_200 != loss_at_120
    clock[0] += 0.5
    second = text(dashboard.render_dashboard(state, 100, 30, slow=slow), 100)
    assert "200 / 1,000" in second and loss_at_120 in second and loss_at_200 not in second

    clock[0] += 0.6
    third = text(dashboard.render_dashboard(state, 100, 30, slow=slow), 100)
    assert "200 / 1,000" in third and loss_at_200 in third


def test_live_frames_draw_a_finished_run_afresh(final):
    slow = dashboard.SlowPanels(every=1e9, clock=lambda: 0.0)
    early = state_at(120)
    text(dashboard.render_dashboard(early, 100, 30, slow=slow), 100)
    out = text(dashboard.render_dashboard(final, 100, 30, slow=slow), 100)
    assert "converged at step 437" in out and f"loss {panel_format.short_float(final.loss)}" in out


def test_layout_modes():
    assert panels.layout_mode(40, 11) == panels.TINY
    assert panels.layout_mode(40, 12) == panels.COMPACT
    assert panels.layout_mode(80, 23) == panels.COMPACT
    assert panels.layout_mode(80, 24) == panels.COMPACT
    assert panels.layout_mode(120, 32) == panels.MEDIUM
    assert panels.layout_mode(140, 45) == panels.FULL


@pytest.mark.parametrize("width, height", [(30, 6), (57, 13), (120, 30)])
def test_chart_honours_its_size(width, height):
    xs = list(range(1000))
    out = chart([Line(xs, [x % 7 for x in xs], "cyan")], width, height)
    rows = out.plain.split("\n")
    assert len(rows) == height and max(len(r) for r in rows) <= width


def test_downsample_keeps_the_newest_point():
    xs, ys = downsample(list(range(100)), [float(i) for i in range(100)], 10)
    assert len(xs) <= 11 and (xs[-1], ys[-1]) == (99, 99.0)


def test_formatting_helpers():
    duration, short_float = panel_format.duration, panel_format.short_float
    assert duration(3725) == "1:02:05" and duration(65) == "1:05" and duration(None) == "-"
    assert short_float(0.002) == "2.00e-03" and short_float(0.21337) == "0.2134"
    assert short_float(None) == "-"


@pytest.mark.parametrize("reason", list(StopReason))
def test_every_stop_reason_is_shown_in_words(reason):
    # The drift this guards: a run ended by --num_train_epochs showed the raw word "epochs".
    state = state_at(200)
    fold_all([Stopped(time=state.last_time + 1, reason=reason, step=200)], state)
    out = show(text_panels.progress_panel, state, 80, 10)
    assert f"finished at step 200: {reason.words}" in out
    assert reason.words in show(text_panels.header_panel, state, 140, 4)


@pytest.mark.parametrize("width, height, names", [
    (80, 24, [["progress"], ["loss", "dvar"]]),
    (120, 32, [["header"], ["progress", "schedule", "files"], ["loss", "dvar"]]),
    (140, 45, [["header"], ["progress", "schedule", "files"], ["loss", "dvar", "preview"]]),
])
def test_arrange_fills_the_screen_with_the_panels_of_the_mode(width, height, names):
    rows = panels.arrange(width, height)
    assert [[spec.name for spec, _ in row] for _, row in rows] == names
    assert all(sum(w for _, w in row) == width for _, row in rows)
    assert sum(h for h, _ in rows) == height
    mode = panels.layout_mode(width, height)
    assert rows[-2 if len(rows) > 2 else 0][0] == panels.TOP_ROWS[mode]
    assert all(mode in spec.modes for _, row in rows for spec, _ in row)


def test_a_short_terminal_gets_the_progress_panel_alone(final):
    """Below CHARTS_MIN_HEIGHT rows the charts would be empty borders: progress takes all."""
    rows = panels.arrange(40, 10)
    assert [[spec.name for spec, _ in row] for _, row in rows] == [["progress"]]
    assert rows[0][0] == 10
    out = text(dashboard.render_dashboard(final, 40, 10), 40)
    assert "step 437" in out and "Loss" not in out


def test_every_panel_is_declared_once_with_its_redraw_cap():
    assert [spec.name for spec in panels.PANELS] == ["header", "progress", "schedule", "files",
                                                    "loss", "dvar", "preview"]
    costly = {spec.name for spec in panels.PANELS if spec.costly}
    assert costly == {"loss", "dvar", "preview"}
    assert all(spec.refresh_s == panels.CHART_REFRESH_S for spec in panels.PANELS if spec.costly)
