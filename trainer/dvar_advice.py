"""When DVAR's stop can be trusted: the learning rates it was measured to work at.

DVAR stops when the deterministic loss L_det has stopped moving relative to its own noise
(DVAR paper, "Is This Loss Informative?", section 4; specs/dvar-and-schedules.md). At a slow
learning rate L_det moves little per update while the embedding is still far from done, so the
ratio falls under the threshold as soon as the window fills, and the run stops at DVAR's floor
(window + 1 updates) whatever the embedding has learned.

Measured in the toy world (docs/RESULTS.md, `bench/dvar_outcome.py`; batch 4, 5 images, rate as
used, constant schedule; score = the fraction of 32 generated images showing the concept):
- 5e-3: the paper's setting (282 / 0.39) stopped 4 of 4 concepts at 288-299 updates; the
  later one (310 / 0.15) kept 0.97 of the 1000-update baseline's mean score (0.96).
- 2e-3 (the demo): green-star scored 0.94 by update 150; DVAR stopped at 606.
- 1e-3: green-star stopped at 297 with a score of 0.5.
- 5e-4: both settings stopped at 298-619 updates; the two slower concepts then scored 0.06-0.22
  where the 2000-update baseline reached 0.66-0.84 (the two quick ones kept 0.94-1.00).
So below about 2e-3 per update DVAR cannot tell "done" from "slow", and the form and the
trainer say so. The rule is this project's reading of its own bench, not the paper's.
"""

from __future__ import annotations

DVAR_MIN_RATE = 2e-3
"""The learning rate per update (after --scale_lr) below which DVAR stopped slower concepts
long before they were learned (toy-world measurements above)."""


def slow_rate_advice(rate: float, earliest_stop: int | None, end_step: int) -> str | None:
    """The warning for a run DVAR may stop too early, or None.

    `rate`: the learning rate of the update at `earliest_stop` (scaled, as the optimizer
    uses it); `earliest_stop`: the first step DVAR can stop at (trainer/plan.py), None when
    DVAR is off; `end_step`: the step the run ends at. Nothing is said when DVAR is off, when
    it cannot stop before the end anyway, or when the rate is at least DVAR_MIN_RATE.
    """
    if earliest_stop is None or earliest_stop >= end_step or rate >= DVAR_MIN_RATE:
        return None
    return (f"at a learning rate of {rate:g} per update DVAR tends to stop before slower "
            f"concepts are learned (measured below {DVAR_MIN_RATE:g}, docs/RESULTS.md); raise "
            "the rate (or turn --scale_lr on) or train a fixed number of steps with "
            "--early_stopping none.")


def advice_for_plan(plan) -> str | None:
    """`slow_rate_advice` for a trainer.plan.RunPlan: the rate at its earliest DVAR stop."""
    stop = plan.earliest_stop
    if stop is None or stop >= plan.end_step:
        return None
    try:
        rate = plan.rate_at(stop - 1)  # the update that ends at the earliest stop
    except IndexError:
        return None
    return slow_rate_advice(rate, stop, plan.end_step)
