"""DVAR's slow-rate warning (trainer/dvar_advice.py): said exactly when the rate at DVAR's
earliest stop is below the rate it was measured to work at, and DVAR can stop before the end."""

from __future__ import annotations

import pytest

from trainer.config import TrainConfig
from trainer.dvar_advice import DVAR_MIN_RATE, advice_for_plan, slow_rate_advice
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
