"""What the form's derived line and the dashboard panels say about DVAR, epochs and the limit
that ends a run (trainer/plan.py facts; ti_tui/widgets/derived.py, ti_tui/text_panels.py,
ti_tui/chart_panels.py, ti_tui/charts.py words). The recorded run of tests/data is reused."""

from __future__ import annotations

import pytest

from tests.unit.test_panels import show, state_at, text
from ti_tui import chart_panels, text_panels
from ti_tui.charts import Line, chart, flat_range
from ti_tui.widgets.derived import derive_facts, describe_facts
from trainer import plan

DEMO_FORM = {"train_batch_size": "4", "gradient_accumulation_steps": "1", "num_processes": "1",
             "max_train_steps": "1000", "learning_rate": "2e-3", "scale_lr": False,
             "early_stopping": "dvar", "dvar_window": "282", "dvar_eval_every": "1",
             "num_train_epochs": "100", "repeats": "100"}
"""The demo's form values (ti_tui/demo_setup.py) with its 5 images."""


@pytest.mark.parametrize("earliest, end, can", [
    (283, 1000, True), (283, 250, False), (283, 283, False), (None, 1000, False),
    (283, 0, True),   # the end not known yet: no claim that it cannot
])
def test_dvar_can_stop_only_before_the_end(earliest, end, can):
    assert plan.dvar_can_stop(earliest, end) is can


def test_epochs_count_repeats_as_num_train_epochs_does():
    # 1000 updates of 4 of 5 images = 800 passes = 8 epochs of 100 repeats: the epoch limit
    # (100 epochs = 12,500 updates) is far off, so the step limit ends the demo.
    assert plan.run_epochs(plan.epochs(1000, 4, 5), 100) == pytest.approx(8.0)
    assert plan.run_limit(1000, 100, 100, 5, 4)[1] == plan.StopReason.MAX_STEPS
    steps = plan.epoch_limit_steps(100, 100, 5, 4)
    assert plan.run_epochs(plan.epochs(steps, 4, 5), 100) == pytest.approx(100.0)
    assert plan.run_epochs(12.0, None) is None


def test_the_demo_derived_line_names_the_limit_and_the_repeats():
    line = describe_facts(derive_facts(DEMO_FORM, 5))
    assert "1000 steps (max steps) = 8.0 epochs of 100 repeats" in line   # was 800.0 epochs
    assert "DVAR can stop from step 283" in line
    by_epochs = describe_facts(derive_facts({**DEMO_FORM, "num_train_epochs": "2"}, 5))
    assert "250 steps (epochs) = 2.0 epochs of 100 repeats" in by_epochs


def test_the_derived_line_says_dvar_cannot_stop_a_short_run():
    line = describe_facts(derive_facts({**DEMO_FORM, "max_train_steps": "250"}, 5))
    assert "DVAR cannot stop this run before its end" in line
    assert "DVAR can stop from" not in line


def test_progress_says_dvar_cannot_stop_a_run_that_ends_first():
    # The recorded run with --max_train_steps 250: its window of 282 fills after the end.
    state = state_at(40)
    state.max_steps = 250
    out = show(text_panels.progress_panel, state, 100, 8)
    assert "DVAR cannot stop this run before its end" in out and "can stop from" not in out
    dvar = show(chart_panels.dvar_panel, state, 60, 12)
    assert "cannot stop" in " ".join(dvar.split()) and "can stop from" not in dvar


def test_progress_shows_the_ratio_once_the_window_is_full():
    early = show(text_panels.progress_panel, state_at(100), 100, 8)
    assert "DVAR can stop from step 283" in early
    state = state_at(380)
    assert state.ldet_count > state.window and state.dvar_ratio is not None
    out = show(text_panels.progress_panel, state, 100, 8)
    assert f"DVAR ratio {state.dvar_ratio:.2f}, stops below 0.39" in out
    assert "can stop from step" not in out


def test_progress_shows_epochs_with_their_repeats_and_the_limit():
    # Step 150 of 4 images over 5 = 120 passes: epoch 1.20 of the run's 8.00, not "epoch 120".
    out = show(text_panels.progress_panel, state_at(150), 100, 8)
    assert "150 / 1,000 (max steps)" in out
    assert "epoch 1.20 / 8.00" in out and "(100 repeats)" in out
    assert "epoch 120" not in out


def test_a_flat_series_frames_its_value():
    assert flat_range([0.5]) == pytest.approx((0.45, 0.5, 0.55))
    assert flat_range([0.0, 0.0]) == pytest.approx((-0.1, 0.0, 0.1))
    assert flat_range([0.2, 0.3]) is None and flat_range([]) is None


@pytest.mark.parametrize("ys", [[0.2788], [0.2788, 0.2788, 0.2788]])
def test_one_point_or_a_flat_line_has_a_meaningful_axis(ys):
    # A resumed run's first update (607 -> 608) drew one dot on a -1.0..1.0 axis.
    xs = list(range(608, 608 + len(ys)))
    out = text(chart([Line(xs, ys, "cyan")], 40, 8, xlim=(607, 608 + len(ys))), 40)
    assert "0.279" in out and "-1" not in out and "1.0" not in out


def test_the_loss_chart_of_one_step():
    out = show(chart_panels.loss_panel, state_at(1), 50, 14)
    axis = [line for line in out.splitlines() if "┤" in line]
    assert any("0.413┤" in line for line in axis)       # the loss itself labels the axis
    assert any("├0.141" in line for line in axis)       # and L_det on the right
    assert "-0." not in out                            # not a -1..1 frame around one dot


def test_a_known_ratio_replaces_the_earliest_stop_even_with_a_short_count():
    # `ti-tui watch` of a run resumed at 362 said "DVAR can stop from step 363" while the ratio
    # was already 0.66: its count of L_det values was short, the ratio was not.
    state = state_at(380)
    state.ldet_count = 5
    out = show(text_panels.progress_panel, state, 100, 8)
    assert f"DVAR ratio {state.dvar_ratio:.2f}, stops below 0.39" in out
    dvar = show(chart_panels.dvar_panel, state, 60, 12)
    assert "collecting window" not in dvar and "window 282/282" in dvar


def test_a_run_stopped_before_the_window_filled_no_longer_promises_a_stop():
    # After "q" at step 11 the DVAR panel kept saying "DVAR can stop from step 283".
    from ti_tui.state import fold_all
    from trainer.events import Stopped, StopReason

    state = state_at(11)
    assert "DVAR can stop from step" in show(text_panels.progress_panel, state, 100, 8)
    fold_all([Stopped(reason=StopReason.USER, step=11, files=[], time=1e9)], state)
    dvar = show(chart_panels.dvar_panel, state, 60, 12)
    assert "can stop from" not in dvar and "starts after" not in dvar
    assert "window never filled" in dvar
    assert f"ended before DVAR's window filled ({state.ldet_count} of 282" in " ".join(dvar.split())
