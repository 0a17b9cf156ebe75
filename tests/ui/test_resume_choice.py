"""What Resume does with a folder that already holds a run, before Start (issue: a second
demo resumed the checkpoint DVAR had stopped at and stopped after one update): the form's note,
the trainer's preflight warning, and the demo's choice of folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.checkpoint_index import FILES, last_stop, stopped_by_dvar
from trainer.preflight import resume_stops_at_once
from ti_tui.demo_setup import DEMO_CONCEPT, demo_output_dir
from ti_tui.screens.form_checks import resume_note

from tests.helpers import make_config


def a_run(folder: Path, step: int, reason: str | None) -> Path:
    """A folder holding checkpoint-<step> and an event log whose last run stopped for
    `reason` (None: it never recorded a stop)."""
    (folder / f"checkpoint-{step}").mkdir(parents=True)
    for name in FILES:
        (folder / f"checkpoint-{step}" / name).write_text("x")
    lines = [{"type": "stopped", "reason": "user", "step": 3}, {"type": "run_started"}]
    if reason is not None:
        lines.append({"type": "stopped", "reason": reason, "step": step})
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return folder


def test_last_stop_reads_only_the_newest_run(tmp_path):
    assert last_stop(a_run(tmp_path / "a", 606, "early_stop")) == ("early_stop", 606)
    assert stopped_by_dvar(tmp_path / "a") == 606
    assert last_stop(a_run(tmp_path / "b", 40, None)) is None  # the older stop is not it
    assert stopped_by_dvar(tmp_path / "b") is None and last_stop(tmp_path / "none") is None


def test_the_form_says_a_dvar_stopped_run_stops_again_and_how_to_train_on(tmp_path):
    out = str(a_run(tmp_path / "out", 606, "early_stop"))
    note = resume_note(True, out, "dvar")
    assert note.level == "warning"
    for words in ("DVAR already stopped this run at step 606", "after one update",
                  "--early_stopping none", "new output directory"):
        assert words in note.text
    assert resume_note(True, out, "none").level == "info"  # DVAR off: it trains on


def test_the_form_refuses_a_fresh_run_over_a_run_and_allows_latest_without_one(tmp_path):
    out = str(a_run(tmp_path / "out", 40, "user"))
    refused = resume_note(False, out)
    assert refused.level == "error" and "already holds a run" in refused.text
    assert "checkpoint-40" in refused.text and "tick Resume" in refused.text
    assert resume_note(True, out).text == "continues from checkpoint-40."
    fresh = resume_note(True, str(tmp_path / "empty"))
    assert fresh.level == "info" and "fresh run" in fresh.text


def test_preflight_warns_when_resuming_where_dvar_stopped(tmp_path):
    out = a_run(tmp_path / "out", 606, "early_stop")
    config = make_config("m", "d", tmp_path, output_dir=str(out), early_stopping="dvar")
    (warning,) = resume_stops_at_once(config, out / "checkpoint-606")
    assert "stops again after one update" in warning and "--early_stopping none" in warning
    assert resume_stops_at_once(config.replace(early_stopping="none"),
                                out / "checkpoint-606") == []


@pytest.mark.parametrize("reason, expected", [
    ("early_stop", (f"{DEMO_CONCEPT}-2", False)),   # DVAR ended it: a new folder, no Resume
    ("max_steps", (f"{DEMO_CONCEPT}-2", False)),
    ("user", (DEMO_CONCEPT, True)),                  # stopped by its user: it goes on
    (None, (DEMO_CONCEPT, True)),
])
def test_the_demo_does_not_resume_a_run_that_ended_by_itself(tmp_path, reason, expected):
    a_run(tmp_path / DEMO_CONCEPT, 606, reason)
    folder, resume = demo_output_dir(tmp_path)
    assert (folder.name, resume) == expected
    assert demo_output_dir(tmp_path / "first") == (tmp_path / "first" / DEMO_CONCEPT, False)
