"""DVAR's slow-rate warning (trainer/dvar_advice.py): said exactly when the rate at DVAR's
earliest stop is below the rate it was measured to work at, and DVAR can stop before the end."""

from __future__ import annotations

import pytest

from trainer.config import TrainConfig
from trainer.dvar_advice import (DVAR_MIN_RATE, MEASURED, advice_for_plan, preset_advice,
                                 recommended_setting, slow_rate_advice)
from trainer.plan import make_plan


@pytest.mark.parametrize("rate, earliest, end, said", [
    (5e-4, 283, 1000, True),
    (DVAR_MIN_RATE, 283, 1000, False),      # at the measured rate: fine
    (5e-3, 283, 1000, False),
    (5e-4, None, 1000, False),              # DVAR off
    (5e-4, 1000, 1000, False),              # DVAR cannot stop before the end anyway
])
def test_said_only_for_a_slow_rate_dvar_can_act_on(rate, earliest, end, said):
    advice = slow_rate_advice(rate, earliest, end)
    assert (advice is not None) is said
    if said:
        assert f"{rate:g}" in advice and "--early_stopping none" in advice


@pytest.mark.parametrize("changes, said", [
    (dict(learning_rate="5e-4", scale_lr=False, train_batch_size=4), True),
    (dict(learning_rate="5e-4", scale_lr=True, train_batch_size=8), False),  # 4e-3 scaled
    (dict(learning_rate="5e-3:100, 5e-4", scale_lr=False), True),  # slow by the earliest stop
    (dict(learning_rate="5e-4:100, 5e-3", scale_lr=False), False),  # fast by then
    (dict(learning_rate="5e-4", scale_lr=False, early_stopping="none"), False),
    (dict(learning_rate="5e-4", scale_lr=False, max_train_steps=200), False),  # ends first
])
def test_the_plan_is_read_at_the_earliest_stop(changes, said):
    config = TrainConfig(**{"max_train_steps": 1000, **changes})
    assert (advice_for_plan(make_plan(config, n_images=5)) is not None) is said


def test_the_measured_table_is_the_saved_bench():
    """MEASURED restates bench/dvar_outcome.py's scored pairs (kept in bench/results): each
    rate's published settings, updates saved and best score kept, as docs/RESULTS.md shows."""
    import json
    from pathlib import Path

    from bench.dvar_report import summarise

    saved = Path(__file__).parents[2] / "bench" / "results" / "dvar-outcome"
    for rate, settings in MEASURED.items():
        folder = saved / f"{rate:.0e}".replace("e-0", "e-")  # 5e-4, as the bench names it
        pairs = {p.parent.name: json.loads(p.read_text())
                 for p in sorted(folder.glob("*/scores.json"))}
        assert len(pairs) == 6
        rows = {r["rule"]: r for r in summarise(pairs, 2000)}
        for (window, threshold), (saved_x, kept_x) in settings.items():
            name = {(282, 0.39): "dvar-paper-v1", (310, 0.15): "dvar-ti-v2"}[(window, threshold)]
            assert rows[name]["steps_saved_x"] == pytest.approx(saved_x, abs=0.05)
            assert rows[name]["score_kept_x"] == pytest.approx(kept_x, abs=0.005)


@pytest.mark.parametrize("rate, window, threshold, recommended", [
    (5e-3, 282, 0.39, (310, 0.15)),
    (4e-3, 282, 0.39, (310, 0.15)),      # nearer 5e-3 than 2e-3 on a log scale
    (2e-3, 282, 0.39, (310, 0.15)),
    (5e-3, 310, 0.15, None),             # already the recommended setting
    (1e-3, 282, 0.39, None),             # below DVAR_MIN_RATE: the warning speaks instead
])
def test_the_setting_that_kept_more_is_recommended(rate, window, threshold, recommended):
    advice = preset_advice(rate, window, threshold)
    if recommended is None:
        assert advice is None
        return
    nearest, best = recommended_setting(rate)
    assert best == recommended
    saved_x, kept_x = MEASURED[nearest][best]
    assert f"--dvar_window {best[0]} --dvar_threshold {best[1]:g}" in advice
    assert f"kept {kept_x:.2f}" in advice and f"{saved_x:.1f}x fewer" in advice
    assert f"measured at {nearest:g}" in advice


def test_the_help_names_the_recommended_setting():
    help_words = " ".join(TrainConfig.__dataclass_fields__["early_stopping"].metadata["help"]
                          .split())
    rate = max(MEASURED)
    _, (window, threshold) = recommended_setting(rate)
    assert f"--dvar_window {window} --dvar_threshold {threshold:g}" in help_words
    assert f"{DVAR_MIN_RATE:g} or more per update" in help_words
