"""RunState folding (ti_tui/state.py) and incremental reading of events.jsonl (ti_tui/tail.py).

Events are built from the trainer's own dataclasses (trainer/events.py); the recorded sample
file stays as the compatibility fixture for reading an older trainer's file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import pytest

from trainer.event_file import load_events
from trainer.events import (CheckpointSaved, EmbeddingSaved, Error, Event, Phase, PreviewSaved,
                            RunStarted, Step, Stopped, StopReason, Unknown, Warning)
from ti_tui.state import SERIES_CAP, RunState, Series, fold, fold_all
from ti_tui.tail import EventTail

SAMPLE = Path(__file__).parents[1] / "data" / "events_sample.jsonl"
T0 = 1000.0
CONFIG = {"placeholder_token": "<cat>", "model": "sd-1.5", "early_stopping": "dvar",
          "dvar_window": 3, "dvar_threshold": 0.4, "learning_rate": "5e-3", "log_every": 2,
          "max_train_steps": 10}


def started(**changes) -> RunStarted:
    event = RunStarted(time=T0, config=dict(CONFIG), model={"path": "/models/sd"},
                       dataset={"n_images": 3}, device="cpu", precision="no", num_processes=1,
                       start_step=0, max_steps=10, learning_rate=5e-3, lr_scale=1.0,
                       trigger="<cat>", tokens=["<cat>"], output_dir="/runs/cat", pid=4242)
    return dataclasses.replace(event, **changes)


def step(n: int, *, t: float | None = None, **fields) -> Step:
    event = Step(time=T0 + n if t is None else t, step=n, loss=0.2, lr=5e-3, images_seen=2 * n,
                 epoch=n / 5, micro_batches=n)
    return dataclasses.replace(event, **fields)


@pytest.fixture(scope="module")
def sample() -> RunState:
    return fold_all(load_events(SAMPLE))


# --- every event type -----------------------------------------------------------------------
def test_phase_marks_loading():
    state = fold(RunState(), Phase(time=T0, name="caching_latents", detail="5 images"))
    assert (state.status, state.phase, state.phase_detail) == ("loading", "caching_latents",
                                                               "5 images")
    assert state.first_time == T0 and state.events == 1


def test_run_started_takes_the_facts():
    state = fold(RunState(), started())
    assert state.status == "training"
    assert (state.trigger, state.max_steps, state.pid, state.started_time) == ("<cat>", 10, 4242, T0)
    assert state.window == 3 and state.threshold == 0.4 and state.earliest_stop == 4
    assert state.dvar_on and state.ldet_on


def test_step_updates_values_and_histories():
    state = fold_all([started(), step(1, loss=0.5, l_det=0.3, grad_norm=0.1, skipped_total=1),
                      step(2, loss=0.3, l_det=0.25, dvar_ratio=None)])
    assert state.step == 2 and state.loss == 0.3 and state.l_det == 0.25
    assert state.loss_hist.xs == [1, 2] and state.ldet_hist.ys == [0.3, 0.25]
    assert state.ldet_count == 2 and state.skipped_total == 0
    assert state.loss_smooth is not None and 0.3 < state.loss_smooth < 0.5
    assert state.steps_per_s == pytest.approx(1.0)


def test_smoothed_loss_of_a_constant_is_that_constant():
    state = fold_all([started()] + [step(n, loss=0.25) for n in range(1, 6)])
    assert state.loss_smooth == pytest.approx(0.25)


def test_ratio_below_threshold_converges_and_stays_converged():
    state = fold_all([started()] + [step(n, l_det=0.1, dvar_ratio=r) for n, r in
                                    ((3, 1.0), (4, 0.5), (5, 0.3), (6, 0.6))])
    assert state.converged_step == 5 and state.converged_ratio == 0.3
    assert state.ratio_hist.xs == [3, 4, 5, 6]


def test_files_warnings_and_errors():
    state = fold_all([
        started(),
        CheckpointSaved(time=T0 + 1, step=5, path="/runs/cat/checkpoint-5"),
        EmbeddingSaved(time=T0 + 2, step=5, paths=["/runs/cat/a.bin"]),
        PreviewSaved(time=T0 + 3, step=5, path="/runs/cat/p.png", prompt="a photo of <cat>"),
        Warning(time=T0 + 4, message="Skipped x.heic", file="/d/x.heic"),
        Error(time=T0 + 5, message="Out of memory.", hint="Lower the batch."),
    ])
    assert (state.last_checkpoint.step, state.last_checkpoint.path) == (5, "/runs/cat/checkpoint-5")
    assert state.last_embedding.paths == ["/runs/cat/a.bin"] and not state.last_embedding.final
    assert state.last_preview.prompt == "a photo of <cat>"
    assert state.warning_count == 1 and "x.heic" in state.warnings[-1]
    assert state.status == "failed" and state.error.hint == "Lower the batch."


def test_stopped_finishes_and_freezes_the_clock():
    state = fold_all([started(), step(1), step(2),
                      Stopped(time=T0 + 7, reason=StopReason.EARLY_STOP, step=2,
                              files=["/runs/cat/learned_embeds.bin"], ratio=0.3)])
    assert state.finished and state.status == "finished"
    assert state.stop_reason is StopReason.EARLY_STOP and state.converged_step == 2
    assert state.elapsed(now=T0 + 500) == 7.0  # a finished run ignores the wall clock
    assert state.eta() is None


def test_elapsed_and_eta_while_running():
    state = fold_all([started()] + [step(n) for n in range(1, 5)])
    assert state.elapsed() == 4.0 and state.elapsed(now=T0 + 10) == 10.0
    assert state.eta() == pytest.approx(6.0)  # 6 steps left at 1 step/s
    assert state.eta(now=T0 + 6) == pytest.approx(4.0)


def test_unknown_types_and_fields_are_ignored():
    state = fold_all([started(), Unknown(name="gpu_stats", data={"temp": 80}, time=T0 + 99),
                      step(1)])
    assert state.events == 2 and state.ignored == 1
    assert state.last_time == T0 + 1 and state.step == 1
    # A raw JSON object from a newer trainer is parsed first: its new field is ignored.
    raw = step(2).to_dict() | {"brand_new_field": {"x": 1}, "version": 7}
    fold(state, raw)
    fold(state, {"type": "gpu_stats", "time": T0 + 100, "temp": 80})
    assert state.step == 2 and state.events == 3 and state.ignored == 2


def test_a_nan_loss_is_shown_as_unknown_and_kept_out_of_the_charts():
    state = fold_all([started(), step(1, loss=0.5), step(2, loss=math.nan)])
    assert state.loss is None and state.loss_hist.ys == [0.5]
    assert state.loss_smooth == pytest.approx(0.5)


def test_a_run_ended_by_epochs_says_so():
    state = fold_all([started(end_reason=StopReason.EPOCHS), step(1),
                      Stopped(time=T0 + 2, reason=StopReason.EPOCHS, step=1)])
    assert state.status == "finished" and state.stop_reason is StopReason.EPOCHS


def test_a_resumed_run_fills_its_window_from_the_restored_history():
    state = fold_all([started(start_step=5, ldet_history=5), step(6, l_det=0.2)])
    assert state.ldet_count == 6  # window 3: the ratio is already due


def test_a_resumed_run_starts_a_new_end():
    state = fold_all([started(), step(1), Stopped(time=T0 + 2, reason=StopReason.USER, step=1),
                      started(start_step=1, time=T0 + 9)])
    assert not state.finished and state.step == 1 and state.status == "training"


def test_series_stays_bounded():
    series = Series(cap=100)
    for i in range(10_000):
        series.append(i, float(i))
    assert len(series) <= 100 and series.stride > 1
    assert series.xs[0] == 0 and series.xs == sorted(series.xs)
    assert SERIES_CAP >= 1000


def test_the_recorded_sample_folds(sample):
    assert sample.finished and sample.stop_reason is StopReason.EARLY_STOP
    assert sample.step == 437 == sample.converged_step
    assert sample.ldet_count == 437 and sample.warning_count == 2 and sample.ignored == 1
    assert sample.last_preview.step == 400 and sample.last_embedding.final


# --- the tail reader ------------------------------------------------------------------------
def _line(event: Event) -> str:
    return json.dumps(event.to_dict()) + "\n"


def test_tail_reads_only_what_is_new(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read_new() == []  # no file yet
    path.write_text(_line(started()) + _line(step(1)))
    assert tail.read_new() == [started(), step(1)]
    assert tail.read_new() == []
    with open(path, "a") as fh:
        fh.write(_line(step(2)))
    assert [e.step for e in tail.read_new()] == [2]
    assert tail.offset == path.stat().st_size


def test_tail_tolerates_a_partial_last_line(tmp_path):
    path = tmp_path / "events.jsonl"
    whole = _line(step(3))
    path.write_text(_line(step(1)) + whole[:20])  # the writer is mid-line
    tail = EventTail(path)
    assert [e.step for e in tail.read_new()] == [1]
    with open(path, "a") as fh:
        fh.write(whole[20:])
    assert [e.step for e in tail.read_new()] == [3]


def test_tail_skips_garbage_and_restarts_on_a_new_file(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("not json\n" + _line(step(1)) + "\n[1, 2]\n")
    tail = EventTail(path)
    assert len(tail.read_new()) == 1
    replacement = tmp_path / "new.jsonl"
    replacement.write_text(_line(started()))
    os.replace(replacement, path)
    assert tail.read_new() == [started()]
