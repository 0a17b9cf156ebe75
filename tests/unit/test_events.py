"""The event schema read both ways (trainer/events.py): what is written parses back to the same
typed event; unknown fields, newer versions and unknown types are tolerated; stop reasons have
their words in one place."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from trainer.event_file import EventLog, load_events, read_events
from trainer.events import (EVENT_TYPES, CheckpointSaved, EmbeddingSaved, Error, Phase,
                            PreviewSaved, RunStarted, Step, Stopped, StopReason, Unknown, Warning,
                            parse_event, stop_sentence, stop_words)

SAMPLE = Path(__file__).parents[1] / "data" / "events_sample.jsonl"

EXAMPLES = [
    Phase(name="loading model", detail="/models/sd", time=1.0),
    RunStarted(config={"learning_rate": "5e-3", "max_train_steps": 10}, model={"path": "/m"},
               dataset={"n_images": 3}, device="cpu", precision="no", num_processes=1,
               start_step=0, max_steps=10, learning_rate=5e-3, lr_scale=1.0, trigger="<cat>",
               tokens=["<cat>"], output_dir="/runs/cat", pid=42, end_reason=StopReason.EPOCHS,
               time=2.0),
    Step(step=1, loss=0.25, lr=5e-3, images_seen=4, epoch=1.5, micro_batches=1, grad_norm=0.1,
         l_det=0.3, dvar_ratio=None, time=3.0),
    CheckpointSaved(step=1, path="/runs/cat/checkpoint-1", time=4.0),
    EmbeddingSaved(step=1, paths=["/runs/cat/a.bin", "/runs/cat/a.safetensors"], final=True,
                   time=5.0),
    PreviewSaved(step=1, path="/runs/cat/previews/1.png", prompt="a photo of <cat>", time=6.0),
    Warning(message="Skipped x.heic", file="/data/x.heic", time=7.0),
    Error(message="The disk is full.", hint="Free some space.", user_error=True, time=8.0),
    Stopped(reason=StopReason.EPOCHS, step=1, files=["/runs/cat/a.bin"], time=9.0),
]


def test_every_event_type_is_in_the_table_and_has_an_example():
    assert {type(e) for e in EXAMPLES} == set(EVENT_TYPES.values())


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.type)
def test_written_lines_parse_back_to_the_same_event(event):
    line = json.dumps(event.to_dict())
    assert parse_event(line) == event
    assert parse_event(json.loads(line)) == event


def test_the_event_log_round_trips(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    for event in EXAMPLES:
        log(event)
    log.close()
    assert list(load_events(tmp_path / "events.jsonl")) == EXAMPLES


def test_unknown_fields_and_newer_versions_are_tolerated():
    data = Step(step=2, loss=0.5, lr=1e-3, images_seen=8, epoch=2.0, micro_batches=2,
                time=1.0).to_dict()
    data.update(version=99, gpu_temperature=80, loss_components={"a": 1})
    assert parse_event(data) == Step(step=2, loss=0.5, lr=1e-3, images_seen=8, epoch=2.0,
                                     micro_batches=2, time=1.0)


def test_unknown_types_become_unknown_events():
    event = parse_event('{"type": "gpu_stats", "time": 5, "temp": 80}')
    assert isinstance(event, Unknown) and event.name == "gpu_stats" and event.time == 5.0
    assert event.data["temp"] == 80


@pytest.mark.parametrize("line", [
    "", "   ", '{"type": "step", "time": 1, "st', "[1, 2]", '{"time": 1}', '{"type": 3}',
    '{"type": "step", "step": 1}',  # no time
    '{"type": "step", "time": 1, "loss": 0.1}',  # required fields missing
    '{"type": "step", "time": 1, "step": "three", "loss": 0.1, "lr": 0.1, "images_seen": 1, '
    '"epoch": 1, "micro_batches": 1}',
])
def test_lines_that_are_not_events_give_none(line):
    assert parse_event(line) is None


def test_nan_is_written_as_null_and_read_back_as_nan():
    event = Step(step=1, loss=math.nan, lr=0.1, images_seen=1, epoch=0.1, micro_batches=1,
                 l_det=math.nan, time=1.0)
    data = json.loads(json.dumps(event.to_dict()))
    assert data["loss"] is None
    back = parse_event(data)
    assert math.isnan(back.loss) and back.l_det is None  # an optional null stays None


def test_optional_fields_of_the_wrong_kind_read_as_none():
    data = {"type": "step", "time": 1, "step": 1, "loss": 0.1, "lr": 0.1, "images_seen": 1,
            "epoch": 1, "micro_batches": 1, "grad_norm": "high"}
    assert parse_event(data).grad_norm is None


def test_stop_reasons_parse_to_the_enum_and_unknown_ones_stay_text():
    assert parse_event({"type": "stopped", "time": 1, "reason": "epochs", "step": 3}).reason \
        is StopReason.EPOCHS
    newer = parse_event({"type": "stopped", "time": 1, "reason": "divergence_watchdog", "step": 3})
    assert newer.reason == "divergence_watchdog"
    assert stop_words(newer.reason) == "divergence watchdog"
    assert stop_sentence("divergence_watchdog") == "divergence watchdog"


def test_every_stop_reason_has_words_for_people():
    for reason in StopReason:
        assert reason.words and reason.sentence and "_" not in reason.words
        assert stop_words(reason.value) == reason.words
        assert reason.value in (Stopped.__doc__ or "") + _field_doc("reason")
    # The drift this fixes: a run ended by --num_train_epochs said "epochs" raw.
    assert stop_words("epochs") == "reached the epoch limit"


def _field_doc(name: str) -> str:
    source = Path(__file__).parents[2].joinpath("trainer", "events.py").read_text()
    start = source.index(f"    {name}: StopReason | str\n")
    return source[start:start + 300]


def test_the_sample_file_of_an_older_trainer_still_reads():
    raw = list(read_events(SAMPLE))
    typed = list(load_events(SAMPLE))
    assert len(typed) == len(raw)
    assert [e.name if isinstance(e, Unknown) else e.type for e in typed] == \
        [e["type"] for e in raw]
    assert typed[-1].reason is StopReason.EARLY_STOP


@pytest.mark.parametrize("reason", list(StopReason))
def test_every_reader_shows_every_stop_reason_in_words(reason):
    from ti_tui.headless import event_line, summary_lines
    from ti_tui.screens.summary import RunOutcome
    from ti_tui.state import fold_all

    stopped = Stopped(reason=reason, step=5, time=9.0)
    state = fold_all([EXAMPLES[1], stopped])
    assert event_line(stopped, state, log_every=1) == f"stopped at step 5: {reason.words}"
    assert f"stopped: {reason.words}" in summary_lines(state)
    outcome = RunOutcome.from_state(state)
    assert outcome.describe().startswith(f"Stopped at step 5: {reason.sentence}")
    assert reason.value not in outcome.describe().replace(reason.sentence, "")
