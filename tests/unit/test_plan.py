"""The run plan (trainer/plan.py): one computation of images per update, the LR scale, the end
step and its limit, the rate and clip value of any step, and DVAR's earliest stop, shared by the
trainer, the form's derived line and the dashboard."""

from __future__ import annotations

import dataclasses

import pytest

from trainer import plan, rate_schedule
from trainer.config import TrainConfig
from trainer.events import RunStarted, StopReason
from ti_tui.state import RunState, fold
from ti_tui.widgets.derived import derive_facts


def config(**changes) -> TrainConfig:
    return TrainConfig(placeholder_token="cat", **changes)


def test_images_per_update_and_lr_scale():
    p = plan.make_plan(config(train_batch_size=2, gradient_accumulation_steps=3, scale_lr=True),
                       n_images=5, num_processes=2)
    assert p.images_per_update == 12 and p.lr_scale == 12.0
    assert plan.make_plan(config(scale_lr=False), n_images=5).lr_scale == 1.0
    assert config(train_batch_size=2, num_processes=3).effective_lr_scale == 6.0


@pytest.mark.parametrize("changes, n_images, end, limit", [
    ({"max_train_steps": 50}, 5, 50, StopReason.MAX_STEPS),
    ({"max_train_steps": 50}, None, 50, StopReason.MAX_STEPS),  # images unknown: no epochs
    ({"max_train_steps": 500, "num_train_epochs": 1, "repeats": 2, "train_batch_size": 2},
     3, 3, StopReason.EPOCHS),  # ceil(1 x 2 x 3 / 2)
    ({"max_train_steps": 5000, "learning_rate": "0.005:100, 1e-3:1000"}, 5, 1000,
     StopReason.SCHEDULE_END),
    ({"max_train_steps": 5000, "learning_rate": "0.005:100, 1e-3:1000", "num_train_epochs": 1,
      "repeats": 100, "train_batch_size": 1}, 5, 500, StopReason.EPOCHS),  # epochs come first
])
def test_end_step_and_the_limit_that_sets_it(changes, n_images, end, limit):
    p = plan.make_plan(config(**changes), n_images=n_images)
    assert (p.end_step, p.limit) == (end, limit)


@pytest.mark.parametrize("changes", [
    {"learning_rate": "5e-3"},
    {"learning_rate": "0.005:10, 1e-3:30, 1e-4", "lr_scheduler": "constant_with_warmup",
     "lr_warmup_steps": 7},
    {"learning_rate": "2e-3", "lr_scheduler": "cosine", "lr_warmup_steps": 5},
    {"learning_rate": "2e-3", "lr_scheduler": "polynomial", "lr_power": 2.0, "scale_lr": True,
     "train_batch_size": 2},
    {"learning_rate": "2e-3", "lr_scheduler": "cosine_with_restarts", "lr_num_cycles": 3.0},
])
@pytest.mark.parametrize("start", [0, 13])
def test_the_rate_of_every_step_is_the_schedule_modules_value_exactly(changes, start):
    cfg = config(max_train_steps=60, **changes)
    p = plan.make_plan(cfg, n_images=4, start_step=start)
    expected = rate_schedule.learning_rates(
        cfg.learning_rate, scheduler=cfg.lr_scheduler, warmup_steps=cfg.lr_warmup_steps,
        max_steps=60, num_cycles=cfg.lr_num_cycles, power=cfg.lr_power, cur_step=start,
        scale=cfg.effective_lr_scale)
    assert [p.rate_at(s) for s in range(start, p.end_step)] == expected
    with pytest.raises(IndexError):
        p.rate_at(p.end_step)


def test_clip_values_hold_their_last_value_and_are_none_when_off():
    p = plan.make_plan(config(max_train_steps=40, clip_grad_mode="norm",
                              clip_grad_value="1.0:10, 0.5:20"), n_images=4)
    assert [p.clip_at(s) for s in (0, 9, 10, 19, 20, 39)] == [1.0, 1.0, 0.5, 0.5, 0.5, 0.5]
    assert plan.make_plan(config(max_train_steps=40), n_images=4).clip_at(3) is None


def test_next_change_comes_from_the_segments():
    p = plan.make_plan(config(max_train_steps=5000, learning_rate="0.005:100, 1e-3:1000, 1e-5",
                              scale_lr=False),
                       n_images=4)
    assert p.next_change(0) == (1e-3, 100)
    assert p.next_change(500) == (1e-5, 1000)
    assert p.next_change(1000) is None


def test_a_ten_million_step_run_is_planned_from_segments_not_lists(monkeypatch):
    def no_lists(self):
        raise AssertionError("a list per step was built")

    monkeypatch.setattr(rate_schedule.RateSchedule, "values", no_lists)
    cfg = config(max_train_steps=10_000_000, clip_grad_mode="value", clip_grad_value="0.1",
                 learning_rate="5e-3:200, 1e-3", scale_lr=False)  # validation reads both strings
    p = plan.make_plan(cfg, n_images=None)  # no epoch limit: all ten million steps
    assert len(p.learning_rates.segments) == 2 and p.rate_at(9_999_999) == 1e-3
    assert p.clip_at(9_999_999) == 0.1


def test_a_resume_past_the_end_gives_an_empty_schedule_not_a_schedule_error():
    p = plan.make_plan(config(max_train_steps=50, learning_rate="0.005:20"), n_images=4,
                       start_step=60)
    assert len(p.learning_rates) == 0 and p.limit == StopReason.MAX_STEPS


@pytest.mark.parametrize("window, every, start, earliest", [
    (282, 1, 0, 283), (3, 1, 0, 4), (10, 2, 0, 22), (10, 3, 0, 33),
    (10, 2, 100, 102),  # a resumed run past the first chance: its next evaluation
    (10, 0, 0, None),  # L_det off: DVAR cannot stop
])
def test_earliest_dvar_stop(window, every, start, earliest):
    assert plan.earliest_dvar_stop(window, every, start) == earliest


def test_form_dashboard_and_trainer_agree_on_the_earliest_stop():
    # The drift this fixes: the form said window + 1 and the dashboard (window + 1) x every.
    cfg = config(dvar_window=10, dvar_eval_every=3, max_train_steps=100)
    trainer_says = plan.make_plan(cfg, n_images=4).earliest_stop
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    form_says = derive_facts({k: str(v) if isinstance(v, int) else v for k, v in values.items()},
                             4).earliest_stop
    state = fold(RunState(), RunStarted(
        time=1.0, config=values, model={}, dataset={}, device="cpu", precision="no",
        num_processes=1, start_step=0, max_steps=100, learning_rate=5e-3, lr_scale=1.0,
        trigger="<cat>", tokens=["<cat>"], output_dir="/runs/cat"))
    assert trainer_says == form_says == state.earliest_stop == 33
    assert plan.make_plan(cfg.replace(early_stopping="none"), n_images=4).earliest_stop is None


def test_the_dashboard_reads_the_schedule_once_per_run(monkeypatch):
    from ti_tui import text_panels

    cfg = config(max_train_steps=1000, learning_rate="5e-3:200, 1e-3")
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    calls = []
    real = rate_schedule.learning_rate_schedule
    monkeypatch.setattr(rate_schedule, "learning_rate_schedule",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    state = fold(RunState(), RunStarted(
        time=1.0, config=values, model={}, dataset={}, device="cpu", precision="no",
        num_processes=1, start_step=0, max_steps=1000, learning_rate=5e-3, lr_scale=2.0,
        trigger="<cat>", tokens=["<cat>"], output_dir="/runs/cat"))
    for _ in range(5):
        text_panels.schedule_panel(state, 80, 6)
    assert len(calls) == 1
    # scaled, as the run uses it
    assert text_panels.next_change_words(state) == "2.00e-03 at step 200"
